import { Packr } from 'msgpackr';

/**
 * One msgpack codec for the whole protocol: plain maps, no records or custom extensions
 * (so nothing in a datagram can name a type to instantiate), 64-bit integers as numbers.
 */
export const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  moreTypes: false,
  bundleStrings: false,
  int64AsType: 'number',
});
