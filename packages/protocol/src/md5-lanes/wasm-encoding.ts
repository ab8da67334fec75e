/**
 * Just enough of the WebAssembly binary format to write one module of straight-line SIMD code: the
 * MD5 lanes are generated here rather than assembled by a tool, so the wasm is rebuilt from this
 * source wherever the TypeScript runs, with no build step and no committed binary.
 */

export const I32 = 0x7f;
export const I64 = 0x7e;
export const V128 = 0x7b;

/** Unsigned LEB128. */
export function uleb(value: number): number[] {
  const out: number[] = [];
  let rest = value >>> 0;
  do {
    const byte = rest & 0x7f;
    rest >>>= 7;
    out.push(rest === 0 ? byte : byte | 0x80);
  } while (rest !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer. */
export function sleb(value: number): number[] {
  const out: number[] = [];
  let rest = value | 0;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    const done = (rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** The parts one after the other (a loop: spreads and Array.prototype.flat are slow on 30 KB). */
export function concat(parts: readonly (readonly number[])[]): number[] {
  const out: number[] = [];
  for (const part of parts) for (const byte of part) out.push(byte);
  return out;
}

/** A vector: its length, then its items. */
export function vec(items: readonly (readonly number[])[]): number[] {
  return concat([uleb(items.length), ...items]);
}

export function section(id: number, content: readonly number[]): number[] {
  return concat([[id], uleb(content.length), content]);
}

/** Instructions, as bytes; methods are named after the text format's mnemonics. */
export class Code {
  readonly bytes: number[] = [];

  private op(...bytes: number[]): this {
    for (const byte of bytes) this.bytes.push(byte);
    return this;
  }

  private simd(opcode: number, ...immediates: number[]): this {
    this.op(0xfd, ...uleb(opcode));
    for (const byte of immediates) this.bytes.push(byte);
    return this;
  }

  get(local: number): this { return this.op(0x20, ...uleb(local)); }
  set(local: number): this { return this.op(0x21, ...uleb(local)); }
  tee(local: number): this { return this.op(0x22, ...uleb(local)); }
  block(): this { return this.op(0x02, 0x40); }
  loop(): this { return this.op(0x03, 0x40); }
  end(): this { return this.op(0x0b); }
  br(depth: number): this { return this.op(0x0c, ...uleb(depth)); }
  brIf(depth: number): this { return this.op(0x0d, ...uleb(depth)); }
  select(): this { return this.op(0x1b); }

  i32Const(value: number): this { return this.op(0x41, ...sleb(value)); }
  i32Add(): this { return this.op(0x6a); }
  i32Sub(): this { return this.op(0x6b); }
  i32Shl(): this { return this.op(0x74); }
  i32ShrU(): this { return this.op(0x76); }
  i32GeU(): this { return this.op(0x4f); }
  i32GtU(): this { return this.op(0x4b); }
  i32Store(offset: number): this { return this.op(0x36, 0, ...uleb(offset)); }
  i32Store8(): this { return this.op(0x3a, 0, 0); }
  i64ExtendI32U(): this { return this.op(0xad); }
  i64Const(value: number): this { return this.op(0x42, ...sleb(value)); }
  i64Shl(): this { return this.op(0x86); }
  i64Store(): this { return this.op(0x37, 0, 0); }
  memoryFill(): this { return this.op(0xfc, ...uleb(11), 0); }

  v128Const(lanes: readonly [number, number, number, number]): this {
    const bytes = new Uint8Array(new Uint32Array(lanes.map((lane) => lane >>> 0)).buffer);
    return this.simd(0x0c, ...Array.from(bytes));
  }
  v128Load32Zero(offset: number): this { return this.simd(0x5c, 0, ...uleb(offset)); }
  v128Load32Lane(offset: number, lane: number): this { return this.simd(0x56, 0, ...uleb(offset), lane); }
  i32x4Splat(): this { return this.simd(0x11); }
  i32x4ReplaceLane(lane: number): this { return this.simd(0x1c, lane); }
  i32x4ExtractLane(lane: number): this { return this.simd(0x1b, lane); }
  i32x4GtU(): this { return this.simd(0x3c); }
  i32x4Add(): this { return this.simd(0xae); }
  i32x4Shl(): this { return this.simd(0xab); }
  i32x4ShrU(): this { return this.simd(0xad); }
  v128Not(): this { return this.simd(0x4d); }
  v128Or(): this { return this.simd(0x50); }
  v128Xor(): this { return this.simd(0x51); }
  v128Bitselect(): this { return this.simd(0x52); }
}
