import { packr } from './codec.js';
import { sealFrame, sealFrameParts, type SealOptions } from './frame.js';
import type { ChunkPacket, Packet } from './packets.js';

/** Encodes a packet into one datagram; authenticated when `seal` is given. */
export function encode(packet: Packet, seal?: SealOptions): Buffer {
  return sealFrame(packr.pack(packet), seal);
}

/** Below this, a chunk's data is copied into the datagram like any other field. */
const SCATTER_MIN_BYTES = 1_024;
const EMPTY = Buffer.alloc(0);

/**
 * The same datagram as `encode`, in parts to be sent with scatter/gather (`socket.send(parts)`):
 * a chunk's data is not copied into the frame but sent from where it was read.
 */
export function encodeParts(packet: Packet, seal?: SealOptions): Uint8Array[] {
  if (packet.type !== 'chunk' || packet.data.length < SCATTER_MIN_BYTES) return [encode(packet, seal)];
  return sealFrameParts([chunkPrefix(packet), packet.data], seal);
}

/**
 * msgpack of a chunk packet up to its data: the map with `data` last, packed with empty data
 * (`c4 00`, bin8 of length 0), whose last two bytes become the header of the real length.
 */
function chunkPrefix(packet: ChunkPacket): Buffer {
  const packed = packr.pack({ type: packet.type, requestId: packet.requestId, chunk: packet.chunk, hasNext: packet.hasNext, md5: packet.md5, data: EMPTY });
  const length = packet.data.length;
  const header = length < 0x100 ? [0xc4, length] : length < 0x10000 ? [0xc5, length >> 8, length & 0xff] : [0xc6, length >>> 24, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff];
  const prefix = Buffer.allocUnsafe(packed.length - 2 + header.length);
  prefix.set(packed.subarray(0, packed.length - 2), 0);
  prefix.set(header, packed.length - 2);
  return prefix;
}
