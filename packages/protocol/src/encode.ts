import { packr } from './codec.js';
import { sealFrame, type SealOptions } from './frame.js';
import type { Packet } from './packets.js';

/** Encodes a packet into one datagram; authenticated when `seal` is given. */
export function encode(packet: Packet, seal?: SealOptions): Buffer {
  return sealFrame(packr.pack(packet), seal);
}
