import type { ListEntry, ListPacket, Packet } from '@httpgw/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { DirectoryLister } from '../src/lookup/directory-lister.js';
import { RequestTracker } from '../src/udp/request-tracker.js';
import { ServerPool } from '../src/pool/server-pool.js';

// DirectoryLister over a real pool and request tracker, with servers simulated in-process: each
// answers a list-request (or not) as its behaviour says, on the next turn of the event loop.

type Behaviour = (request: { path: string; cursor: number }, asked: number) => Omit<ListPacket, 'requestId' | 'type'> | { error: 'not-found' | 'busy' | 'io' } | undefined;

const MTIME = Date.UTC(2026, 0, 2);
const file = (name: string, size = 1, mtimeMs = MTIME): ListEntry => ({ name, kind: 'file', size, mtimeMs });

/** A server holding `entries` at `path`, answering pages of `pageSize`. */
function holding(path: string, entries: ListEntry[], pageSize = 500): Behaviour {
  return (request) => {
    if (request.path !== path) return { error: 'not-found' };
    const next = request.cursor + pageSize;
    return { entries: entries.slice(request.cursor, next), next: next < entries.length ? next : -1 };
  };
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function setUp(behaviours: Behaviour[], cacheMs = 0) {
  // Short RTOs: a silent server is given up on in a few hundred milliseconds.
  const pool = new ServerPool({ rtt: { initialRtoMs: 20, minRtoMs: 5 } });
  const asked = new Map<string, number>();
  const tracker: RequestTracker = new RequestTracker({
    pool,
    transmit: (server, packet: Packet) => {
      if (packet.type !== 'list-request') return;
      const count = (asked.get(server.key) ?? 0) + 1;
      asked.set(server.key, count);
      const behaviour = behaviours[server.port - 1]!;
      const answer = behaviour({ path: packet.path, cursor: packet.cursor }, count);
      if (!answer) return;
      const reply: Packet = 'error' in answer ? { type: 'error', requestId: packet.requestId, code: answer.error, message: answer.error } : { type: 'list', requestId: packet.requestId, ...answer };
      setImmediate(() => tracker.onAnswer(reply, server.key));
    },
  });
  behaviours.forEach((_, i) => pool.admit('127.0.0.1', i + 1, `s${i + 1}`));
  cleanups.push(() => {
    tracker.close();
    pool.close();
  });
  const lister = new DirectoryLister({ pool, tracker, cacheMs });
  return { lister, asked, total: () => [...asked.values()].reduce((sum, n) => sum + n, 0) };
}

describe('DirectoryLister', () => {
  it('pages through every server by cursor and merges by name', async () => {
    const many = Array.from({ length: 1_234 }, (_, i) => file(`f${String(i).padStart(4, '0')}`));
    const { lister, asked } = setUp([holding('d', many), holding('d', [...many.slice(0, 10), file('only-two')], 4)]);
    const result = await lister.list('d');
    expect(result.kind).toBe('directory');
    if (result.kind !== 'directory') return;
    expect(result.incomplete).toBe(false);
    expect(result.entries.map((entry) => entry.name)).toEqual([...many.map((entry) => entry.name), 'only-two']);
    expect([...asked.values()]).toEqual([3, 3]);
  });

  it('404 when every server lacks the directory; no-servers without any', async () => {
    expect(await setUp([holding('x', []), holding('y', [])]).lister.list('d')).toEqual({ kind: 'none' });
    expect(await setUp([]).lister.list('d')).toEqual({ kind: 'no-servers' });
  });

  it('an empty directory on one server is a directory', async () => {
    expect(await setUp([holding('d', []), holding('x', [])]).lister.list('d')).toEqual({ kind: 'directory', entries: [], incomplete: false });
  });

  it('drops entries the gateway would not serve or could not print', async () => {
    const bad = [file(''), file('.'), file('..'), file('.hidden'), file('a/b'), file('nul\0'), file('ok.txt'), file('bad-date', 1, 9e15)];
    const result = await setUp([holding('d', bad)]).lister.list('d');
    expect(result).toEqual({ kind: 'directory', entries: [file('ok.txt')], incomplete: false });
  });

  it('a cursor that does not move on ends that server’s listing, marked incomplete', async () => {
    const stuck: Behaviour = (request) => (request.path === 'd' ? { entries: [file(`at-${request.cursor}`)], next: 5 } : { error: 'not-found' });
    const { lister, total } = setUp([stuck]);
    const result = await lister.list('d');
    expect(result).toEqual({ kind: 'directory', entries: [file('at-0'), file('at-5')], incomplete: true });
    expect(total()).toBe(2);
  });

  it('asks again after busy', async () => {
    const busyFirst: Behaviour = (request, asked) => (asked === 1 ? { error: 'busy' } : holding('d', [file('a')])(request, asked));
    expect(await setUp([busyFirst]).lister.list('d')).toEqual({ kind: 'directory', entries: [file('a')], incomplete: false });
  });

  it('a silent server: the others list, marked incomplete; all silent is no-servers', async () => {
    const silent: Behaviour = () => undefined;
    const { lister, asked } = setUp([holding('d', [file('a')]), silent]);
    expect(await lister.list('d')).toEqual({ kind: 'directory', entries: [file('a')], incomplete: true });
    expect(asked.get('127.0.0.1:2')).toBeGreaterThan(1);
    expect(await setUp([silent]).lister.list('d')).toEqual({ kind: 'no-servers' });
  });

  it('a server failing midway keeps what it sent, marked incomplete', async () => {
    const failing: Behaviour = (request, asked) => (asked === 1 ? holding('d', [file('a'), file('b')], 1)(request, asked) : { error: 'io' });
    expect(await setUp([failing]).lister.list('d')).toEqual({ kind: 'directory', entries: [file('a')], incomplete: true });
  });

  it('concurrent requests share one fetch; a cached result is reused for cacheMs', async () => {
    const { lister, total } = setUp([holding('d', [file('a')])], 60_000);
    const [first, second] = await Promise.all([lister.list('d'), lister.list('d')]);
    expect(second).toBe(first);
    expect(await lister.list('d')).toBe(first);
    expect(total()).toBe(1);
  });
});
