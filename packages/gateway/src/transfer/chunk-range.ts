import { integerOption } from './options.js';

/**
 * The chunks that hold one byte range of a file: which they are, what size a server's answer for
 * each must have, and how the first and last are cut down to the range.
 */
export class ChunkRange {
  readonly firstChunk: number;
  /** firstChunk - 1 for an empty range. */
  readonly lastChunk: number;

  /** Bytes `firstByte..lastByte` (inclusive at both ends, HTTP's convention; lastByte = firstByte - 1: none) of `size`. */
  constructor(
    readonly firstByte: number,
    readonly lastByte: number,
    readonly chunkSize: number,
    readonly size: number,
  ) {
    integerOption('chunkSize', chunkSize, 1);
    integerOption('firstByte', firstByte, 0);
    if (!Number.isInteger(lastByte) || lastByte < firstByte - 1 || lastByte >= size) {
      throw new RangeError(`lastByte must be an integer in ${firstByte - 1}..${size - 1} (got ${lastByte})`);
    }
    this.firstChunk = Math.floor(firstByte / chunkSize);
    this.lastChunk = lastByte < firstByte ? this.firstChunk - 1 : Math.floor(lastByte / chunkSize);
  }

  /** Whether a chunk's data and its `hasNext` flag are what the file's size makes them. */
  fits(chunk: number, data: Uint8Array, hasNext: boolean): boolean {
    const offset = chunk * this.chunkSize;
    const expected = Math.min(this.chunkSize, this.size - offset);
    return data.length === expected && hasNext === offset + expected < this.size;
  }

  /** Cuts the first and last chunk down to the range. */
  trim(chunk: number, data: Buffer): Buffer {
    const chunkStart = chunk * this.chunkSize;
    const from = chunk === this.firstChunk ? this.firstByte - chunkStart : 0;
    const to = chunk === this.lastChunk ? this.lastByte - chunkStart + 1 : data.length;
    return from === 0 && to === data.length ? data : data.subarray(from, to);
  }
}
