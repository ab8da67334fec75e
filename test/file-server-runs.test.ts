// A file server answering a chunk-request for a run of chunks (`count`), seen from a raw gateway.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chunkDigest, decode, encode, type Packet } from '@httpgw/protocol';
import { versionOfBytes } from '@httpgw/file-server';
import { useRoot } from './support/fixtures.js';
import { peer, serverFor } from './security-support.js';

const CHUNK = 1_000;
const data = randomBytes(5 * CHUNK + 10); // six chunks, the last one short
const version = versionOfBytes(data, CHUNK);
const root = useRoot({ 'f.bin': data });

/** A raw gateway with one real file server registered with it. */
async function registeredServer() {
  const gateway = await peer();
  const server = await serverFor(root.path, gateway.port);
  const hello = decode((await gateway.waitFor()).data);
  expect(hello.type).toBe('hello');
  const cookie = randomBytes(16);
  await gateway.send(encode({ type: 'challenge', cookie }), server.address.port);
  await gateway.waitFor((d) => decode(d.data).type === 'register');
  await gateway.send(encode({ type: 'registered', heartbeatMs: 60_000 }), server.address.port);
  await server.whenRegistered();
  /** Sends `request` and collects the next `n` answers (heartbeats aside). */
  const ask = async (request: Packet, n: number): Promise<Packet[]> => {
    const since = gateway.received.length;
    await gateway.send(encode(request), server.address.port);
    const answers: Packet[] = [];
    for (let seen = since; answers.length < n; ) {
      const next = await gateway.waitFor(() => true, seen);
      seen = gateway.received.indexOf(next) + 1;
      const packet = decode(next.data);
      if (packet.type === 'chunk' || packet.type === 'error') answers.push(packet);
    }
    return answers;
  };
  return { ask };
}

describe('a chunk-request with a count', () => {
  it('is answered with one chunk per id, in order, each with its own MD5', async () => {
    const { ask } = await registeredServer();
    const answers = await ask({ type: 'chunk-request', requestId: 1_000, path: 'f.bin', version, chunk: 2, chunkSize: CHUNK, count: 4 }, 4);
    expect(answers.map((a) => (a.type === 'chunk' ? [a.requestId, a.chunk, a.hasNext] : a.type))).toEqual([
      [1_000, 2, true],
      [1_001, 3, true],
      [1_002, 4, true],
      [1_003, 5, false],
    ]);
    for (const answer of answers) {
      if (answer.type !== 'chunk') throw new Error('expected chunks');
      const expected = data.subarray(answer.chunk * CHUNK, (answer.chunk + 1) * CHUNK);
      expect(Buffer.from(answer.data).equals(expected)).toBe(true);
      expect(Buffer.from(answer.md5).equals(chunkDigest(expected))).toBe(true);
    }
  });

  it('answers the ids past the end of the file with errors, and a stale version with an error per id', async () => {
    const { ask } = await registeredServer();
    const pastEnd = await ask({ type: 'chunk-request', requestId: 50, path: 'f.bin', version, chunk: 4, chunkSize: CHUNK, count: 4 }, 4);
    expect(pastEnd.map((a) => [a.type, 'requestId' in a ? a.requestId : undefined])).toEqual([
      ['chunk', 50],
      ['chunk', 51],
      ['error', 52],
      ['error', 53],
    ]);
    const stale = await ask({ type: 'chunk-request', requestId: 90, path: 'f.bin', version: 'not-it', chunk: 0, chunkSize: CHUNK, count: 3 }, 3);
    expect(stale).toEqual([90, 91, 92].map((requestId) => expect.objectContaining({ type: 'error', requestId, code: 'stale' })));
  });
});
