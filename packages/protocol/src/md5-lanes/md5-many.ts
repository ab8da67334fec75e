import { createHash } from 'node:crypto';
import { PADDING_ROOM, md5LanesWasmBytes } from './md5-lanes-wasm.js';

// The few WebAssembly types used here (the project's lib has no DOM, @types/node declares none).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
/** md5x4 or md5x8: (p0, l0, p1, l1, …, out). */
type LanesFunction = (...args: number[]) => void;
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: { md5x4: LanesFunction; md5x8: LanesFunction; memory: WasmMemory } };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const PAGE = 65_536;
/** Where the digests are written (16 bytes a lane); the lanes' messages follow. */
const OUT = 0;
const FIRST_SLOT = 128;
const MD5_BYTES = 16;
/** Fewer messages than this go to node:crypto: two of four lanes hash no faster than it does. */
const MIN_LANES = 3;
const EMPTY = new Uint8Array(0);

let compiled: object | undefined;

/** The compiled MD5 lanes module (compiled once per thread; it can be posted to a worker). */
export function md5LanesModule(): object {
  compiled ??= new wasm.Module(md5LanesWasmBytes());
  return compiled;
}

export interface Md5LanesInit {
  /** The compiled module, e.g. posted by another thread (default: compiled here). */
  module?: object;
  /**
   * Messages per wasm call: 4 (one set of lanes), or 8 (two sets, their steps interleaved). Both
   * measured alike on this machine (bench/md5-lanes.ts): the code is bound by instruction
   * throughput, not by the latency of MD5's chain.
   */
  widest?: 4 | 8;
}

/**
 * MD5 of many messages, four at a time in the lanes of WebAssembly SIMD (about twice node:crypto's
 * throughput, the copy into wasm memory included). Messages are grouped by length (a lane whose
 * message is shorter idles until its group's longest is done); a group of one or two goes to
 * node:crypto, which hashes one message faster than a quarter-filled call does.
 */
export class Md5Lanes {
  private readonly md5x4: LanesFunction;
  private readonly md5x8: LanesFunction;
  private readonly memory: WasmMemory;
  private readonly widest: 4 | 8;
  private bytes: Uint8Array;

  constructor({ module = md5LanesModule(), widest = 4 }: Md5LanesInit = {}) {
    this.widest = widest;
    const { exports } = new wasm.Instance(module);
    this.md5x4 = exports.md5x4;
    this.md5x8 = exports.md5x8;
    this.memory = exports.memory;
    this.bytes = new Uint8Array(this.memory.buffer);
  }

  /** The MD5 of each message, in order. */
  digests(messages: readonly Uint8Array[]): Uint8Array[] {
    const digests = new Array<Uint8Array>(messages.length);
    this.each(messages, (index, at) => {
      digests[index] = this.bytes.slice(at, at + MD5_BYTES);
    }, (index) => {
      digests[index] = createHash('md5').update(messages[index]!).digest();
    });
    return digests;
  }

  /** Whether each message's MD5 equals the one expected for it. */
  matches(messages: readonly Uint8Array[], expected: readonly Uint8Array[]): boolean[] {
    const ok = new Array<boolean>(messages.length);
    this.each(messages, (index, at) => {
      ok[index] = equal16(this.bytes, at, expected[index]!);
    }, (index) => {
      ok[index] = createHash('md5').update(messages[index]!).digest().equals(expected[index]!);
    });
    return ok;
  }

  private each(messages: readonly Uint8Array[], inLanes: (index: number, at: number) => void, alone: (index: number) => void): void {
    const order = messages.map((_, index) => index).sort((x, y) => messages[y]!.length - messages[x]!.length);
    const args: number[] = [];
    for (let first = 0; first < order.length; ) {
      const group = order.slice(first, first + this.widest);
      first += group.length;
      if (group.length < MIN_LANES) {
        for (const index of group) alone(index);
        continue;
      }
      const lanes = group.length > 4 ? 8 : 4;
      const slot = Math.ceil((messages[group[0]!]!.length + PADDING_ROOM) / 64) * 64;
      this.reserve(FIRST_SLOT + lanes * slot);
      args.length = 0;
      for (let lane = 0; lane < lanes; lane++) {
        const at = FIRST_SLOT + lane * slot;
        const message = lane < group.length ? messages[group[lane]!]! : EMPTY;
        this.bytes.set(message, at);
        args.push(at, message.length);
      }
      args.push(OUT);
      (lanes === 8 ? this.md5x8 : this.md5x4)(...args);
      group.forEach((index, lane) => inLanes(index, OUT + lane * MD5_BYTES));
    }
  }

  private reserve(bytes: number): void {
    if (bytes <= this.bytes.length) return;
    this.memory.grow(Math.ceil((bytes - this.bytes.length) / PAGE));
    this.bytes = new Uint8Array(this.memory.buffer);
  }
}

function equal16(bytes: Uint8Array, at: number, expected: Uint8Array): boolean {
  if (expected.length !== MD5_BYTES) return false;
  for (let i = 0; i < MD5_BYTES; i++) if (bytes[at + i] !== expected[i]) return false;
  return true;
}

let shared: Md5Lanes | undefined;

/** The MD5 of each message (see Md5Lanes). */
export function md5Many(messages: readonly Uint8Array[]): Uint8Array[] {
  shared ??= new Md5Lanes();
  return shared.digests(messages);
}
