import { Code, I32, V128, concat, section, uleb, vec } from './wasm-encoding.js';

/**
 * A WebAssembly module that hashes several messages at once, one per 32-bit lane of a v128: MD5 is
 * a chain of dependent 32-bit steps, so one message leaves most of a core idle, while independent
 * messages run side by side in the same instructions (the multi-buffer technique of isa-l and
 * md5-simd). Two exports: `md5x4` (one v128 per state word) and `md5x8` (two, whose steps are
 * interleaved so that one's chain runs while the other's waits).
 *
 * `md5xN(p0, l0, …, pN−1, lN−1, out)`: message i is the l_i bytes at p_i, followed by at least
 * PADDING_ROOM writable bytes where its padding is written. Every lane reads as many blocks as the
 * longest message has (a lane that is done keeps its state, through a mask), so the bytes from p_i
 * to p_i + 64·blocks(longest) must be in memory. The digests go to out, 16 bytes per lane.
 * Export `memory`: one page to start with, grown by the caller.
 */

/** Bytes a lane needs after its message: the 0x80, up to 63 zeros, the 8-byte length. */
export const PADDING_ROOM = 72;

// MD5's constants (RFC 1321): the sines, the rotations and the message word each step adds.
const SINES = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);
const ROTATIONS = [
  [7, 12, 17, 22],
  [5, 9, 14, 20],
  [4, 11, 16, 23],
  [6, 10, 15, 21],
] as const;
const WORD = (step: number): number => {
  const round = step >> 4;
  if (round === 0) return step;
  if (round === 1) return (5 * step + 1) % 16;
  if (round === 2) return (3 * step + 5) % 16;
  return (7 * step) % 16;
};
const INITIAL = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476] as const;

/** Local indices of one function: the parameters first, then i32 locals, then v128 locals. */
class Locals {
  private next: number;
  private readonly v128: number[] = [];
  readonly i32: number[] = [];
  constructor(params: number) {
    this.next = params;
  }
  addI32(): number {
    this.i32.push(this.next);
    return this.next++;
  }
  /** v128 locals are numbered after every i32 one: call after the last addI32. */
  addV128(): number {
    this.v128.push(this.next);
    return this.next++;
  }
  declarations(): number[] {
    return vec([[...uleb(this.i32.length), I32], [...uleb(this.v128.length), V128]]);
  }
}

/** The body of md5x{4·groups}. */
function lanesBody(groups: number): number[] {
  const lanes = 4 * groups;
  const P = (lane: number): number => 2 * lane;
  const L = (lane: number): number => 2 * lane + 1;
  const locals = new Locals(2 * lanes + 1);
  const out = 2 * lanes;
  const block = locals.addI32();
  const maxBlocks = locals.addI32();
  const laneBlocks = locals.addI32();
  const q = Array.from({ length: lanes }, () => locals.addI32()); // where the lane's current block is
  const perGroup = () => ({
    blocks: locals.addV128(),
    state: [locals.addV128(), locals.addV128(), locals.addV128(), locals.addV128()] as [number, number, number, number],
    saved: [locals.addV128(), locals.addV128(), locals.addV128(), locals.addV128()],
    t: locals.addV128(),
    mask: locals.addV128(),
    w: Array.from({ length: 16 }, () => locals.addV128()),
  });
  const g = Array.from({ length: groups }, perGroup);

  const code = new Code();
  for (let lane = 0; lane < lanes; lane++) {
    // The lane's padding after its message, and its count of blocks (in its group's vector, and the most).
    const [p, l] = [P(lane), L(lane)];
    code.get(l).i32Const(8).i32Add().i32Const(6).i32ShrU().i32Const(1).i32Add().set(laneBlocks);
    code.get(p).get(l).i32Add().i32Const(0x80).i32Store8();
    // Zeros from after the 0x80 to the length field: blocks·64 − 8 − (length + 1) bytes.
    code.get(p).get(l).i32Add().i32Const(1).i32Add().i32Const(0);
    code.get(laneBlocks).i32Const(6).i32Shl().i32Const(9).i32Sub().get(l).i32Sub().memoryFill();
    // The length in bits, little-endian, in the last block's last 8 bytes.
    code.get(p).get(laneBlocks).i32Const(6).i32Shl().i32Add().i32Const(8).i32Sub();
    code.get(l).i64ExtendI32U().i64Const(3).i64Shl().i64Store();
    const blocks = g[lane >> 2]!.blocks;
    if (lane % 4 === 0) code.get(laneBlocks).i32x4Splat().set(blocks);
    else code.get(blocks).get(laneBlocks).i32x4ReplaceLane(lane % 4).set(blocks);
    code.get(laneBlocks).get(maxBlocks).get(laneBlocks).get(maxBlocks).i32GtU().select().set(maxBlocks);
    code.get(p).set(q[lane]!);
  }
  for (const { state } of g) INITIAL.forEach((word, i) => code.v128Const([word, word, word, word]).set(state[i]!));
  code.i32Const(0).set(block);
  code.block().loop();
  code.get(block).get(maxBlocks).i32GeU().brIf(1);
  g.forEach(({ w, state, saved }, group) => {
    // Word j of the group's four lanes into one vector.
    const [q0, q1, q2, q3] = q.slice(4 * group, 4 * group + 4) as [number, number, number, number];
    for (let j = 0; j < 16; j++) {
      code.get(q3).get(q2).get(q1).get(q0).v128Load32Zero(4 * j);
      code.v128Load32Lane(4 * j, 1).v128Load32Lane(4 * j, 2).v128Load32Lane(4 * j, 3).set(w[j]!);
    }
    for (let i = 0; i < 4; i++) code.get(state[i]!).set(saved[i]!);
  });
  // The 64 steps, each group's in turn; the roles of a, b, c, d rotate by renaming, not by moving values.
  const roles = g.map(({ state }) => [...state]);
  for (let step = 0; step < 64; step++) {
    const round = step >> 4;
    const shift = ROTATIONS[round]![step & 3]!;
    g.forEach(({ w, t }, group) => {
      const [a, b, c, d] = roles[group] as [number, number, number, number];
      // a + word + sine first: they do not wait on the previous step, the mixing of b, c, d does.
      const k = SINES[step]!;
      code.get(a).get(w[WORD(step)]!).i32x4Add().v128Const([k, k, k, k]).i32x4Add();
      mixing(code, round, b, c, d);
      code.i32x4Add().set(t);
      code.get(t).i32Const(shift).i32x4Shl().get(t).i32Const(32 - shift).i32x4ShrU().v128Or();
      code.get(b).i32x4Add().set(a);
      roles[group] = [d, a, b, c];
    });
  }
  // Lanes whose message has this block add it in; the others keep their state.
  for (const { blocks, mask, state, saved } of g) {
    code.get(blocks).get(block).i32x4Splat().i32x4GtU().set(mask);
    for (let i = 0; i < 4; i++) {
      code.get(state[i]!).get(saved[i]!).i32x4Add().get(saved[i]!).get(mask).v128Bitselect().set(state[i]!);
    }
  }
  for (const lane of q) code.get(lane).i32Const(64).i32Add().set(lane);
  code.get(block).i32Const(1).i32Add().set(block);
  code.br(0).end().end();
  for (let lane = 0; lane < lanes; lane++) {
    const { state } = g[lane >> 2]!;
    for (let i = 0; i < 4; i++) code.get(out).get(state[i]!).i32x4ExtractLane(lane % 4).i32Store(16 * lane + 4 * i);
  }
  code.end();
  return concat([locals.declarations(), code.bytes]);
}

/** F, G, H or I of b, c, d, on the stack. */
function mixing(code: Code, round: number, b: number, c: number, d: number): void {
  if (round === 0) code.get(c).get(d).get(b).v128Bitselect(); // (b & c) | (~b & d)
  else if (round === 1) code.get(b).get(c).get(d).v128Bitselect(); // (d & b) | (~d & c)
  else if (round === 2) code.get(b).get(c).v128Xor().get(d).v128Xor();
  else code.get(c).get(b).get(d).v128Not().v128Or().v128Xor(); // c ^ (b | ~d)
}

/** The module's bytes: md5x4 and md5x8, and the memory. */
export function md5LanesWasmBytes(): Uint8Array {
  const signature = (lanes: number) => [0x60, ...vec(Array.from({ length: 2 * lanes + 1 }, () => [I32])), ...vec([])];
  const name = (text: string): number[] => vec([...text].map((char) => [char.charCodeAt(0)]));
  const bodies = [lanesBody(1), lanesBody(2)];
  return new Uint8Array(
    concat([
      [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
      section(1, vec([signature(4), signature(8)])),
      section(3, vec([uleb(0), uleb(1)])),
      section(5, vec([[0x00, ...uleb(1)]])),
      section(7, vec([
        [...name('md5x4'), 0x00, ...uleb(0)],
        [...name('md5x8'), 0x00, ...uleb(1)],
        [...name('memory'), 0x02, ...uleb(0)],
      ])),
      section(10, vec(bodies.map((body) => concat([uleb(body.length), body])))),
    ]),
  );
}
