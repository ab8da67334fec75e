/**
 * How often each key was asked for lately, approximately, in a few kilobytes: a count-min sketch
 * (four counters per key, the smallest is the estimate) whose counters are halved every `sampleSize`
 * increments, so old popularity fades (TinyLFU, Einziger et al. 2017; Caffeine's FrequencySketch).
 * Counters saturate at 15 (4 bits' worth): beyond that, "popular" is all admission needs to know.
 */
export class FrequencySketch {
  private readonly table: Uint8Array;
  private readonly mask: number;
  private readonly sampleSize: number;
  private additions = 0;

  /** `expectedKeys`: about how many distinct keys matter at once (the cache's capacity in entries). */
  constructor(expectedKeys: number) {
    const width = nextPowerOfTwo(Math.max(64, expectedKeys));
    this.table = new Uint8Array(width * 4);
    this.mask = width - 1;
    this.sampleSize = 10 * width;
  }

  /** Counts one more request for `key`. */
  increment(key: string): void {
    const hash = hashOf(key);
    let added = false;
    for (let row = 0; row < 4; row++) {
      const index = this.indexOf(hash, row);
      if (this.table[index]! < 15) {
        this.table[index]!++;
        added = true;
      }
    }
    if (added && ++this.additions >= this.sampleSize) this.age();
  }

  /** About how many times `key` was counted lately (never less than the truth, before aging). */
  frequency(key: string): number {
    const hash = hashOf(key);
    let least = 15;
    for (let row = 0; row < 4; row++) least = Math.min(least, this.table[this.indexOf(hash, row)]!);
    return least;
  }

  /** Halves every counter: what was popular long ago counts for less than what is popular now. */
  private age(): void {
    for (let i = 0; i < this.table.length; i++) this.table[i]! >>= 1;
    this.additions = Math.floor(this.additions / 2);
  }

  private indexOf(hash: number, row: number): number {
    // One 32-bit hash, remixed per row with an odd multiplier: four nearly independent positions.
    const mixed = Math.imul(hash ^ (hash >>> 15), ROW_SEEDS[row]!) >>> 0;
    return row * (this.mask + 1) + ((mixed ^ (mixed >>> 13)) & this.mask);
  }
}

const ROW_SEEDS = [0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f];

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

/** FNV-1a over the key's UTF-16 code units: cheap, and good enough spread for a sketch. */
function hashOf(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}
