/**
 * Checks on the numbers a transfer's parts are built with, made once in their constructors: a bad
 * one is a RangeError naming it, not a transfer that never ends or asks for nothing.
 */

/** `value` when it is an integer of at least `min`. */
export function integerOption(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be an integer of at least ${min} (got ${value})`);
  return value;
}

/** `value` when it is a number above 0 (Infinity included: never). */
export function positiveOption(name: string, value: number): number {
  if (!(value > 0)) throw new RangeError(`${name} must be a number above 0 (got ${value})`);
  return value;
}
