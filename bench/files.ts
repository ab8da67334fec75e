/** Random-content test files, created on first use in the bench's temp dir. */
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MiB } from './measure.js';

export const FILE_SIZES = {
  '4 KiB': 4 * 1024,
  '1 MiB': MiB,
  '16 MiB': 16 * MiB,
  '64 MiB': 64 * MiB,
  '256 MiB': 256 * MiB,
  '1 GiB': 1024 * MiB,
  '4 GiB': 4096 * MiB,
} as const;

export type SizeName = keyof typeof FILE_SIZES;

export class BenchFiles {
  private readonly made = new Map<SizeName, Promise<string>>();

  constructor(
    readonly dir: string,
    private readonly progress: (text: string) => void,
  ) {}

  bytes(size: SizeName): number {
    return FILE_SIZES[size];
  }

  /** File name (relative to `dir`) of a file of `size`, writing it on first use. */
  ensure(size: SizeName): Promise<string> {
    let p = this.made.get(size);
    if (!p) {
      p = Promise.resolve().then(() => this.write(size));
      this.made.set(size, p);
    }
    return p;
  }

  private write(size: SizeName): string {
    const name = `rand-${size.replace(' ', '')}.bin`;
    const path = join(this.dir, name);
    const total = FILE_SIZES[size];
    this.progress(`writing ${size} test file`);
    const block = Buffer.allocUnsafe(Math.min(total, 8 * MiB));
    const fd = openSync(path, 'w', 0o644);
    try {
      for (let done = 0; done < total; ) {
        const n = Math.min(block.length, total - done);
        randomFillSync(block, 0, n);
        done += writeSync(fd, block, 0, n);
      }
    } finally {
      closeSync(fd);
    }
    if (statSync(path).size !== total) throw new Error(`short write of ${path}`);
    return name;
  }
}
