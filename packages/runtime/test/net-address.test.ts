import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { createFrameCodec, decode, encode, type Packet } from '@httpgw/protocol';
import { DatagramEndpoint, formatHostPort, normalizeAddress, parseHostPort, resolveHost, silentLogger, socketTypeFor, urlHost } from '@httpgw/runtime';

describe('normalizeAddress', () => {
  it('turns an IPv4-mapped IPv6 address into the IPv4 address it maps, and leaves the rest alone', () => {
    expect(normalizeAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeAddress('::FFFF:10.1.2.3')).toBe('10.1.2.3');
    expect(normalizeAddress('127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeAddress('::1')).toBe('::1');
    expect(normalizeAddress('2001:db8::ffff:1.2.3.4')).toBe('2001:db8::ffff:1.2.3.4');
    expect(normalizeAddress('::ffff:7f00:1')).toBe('::ffff:7f00:1');
    expect(normalizeAddress('::ffff:')).toBe('::ffff:');
    expect(normalizeAddress('::ffff:not-an-address')).toBe('::ffff:not-an-address');
  });
});

describe('formatHostPort and urlHost', () => {
  it('bracket IPv6 addresses only', () => {
    expect(formatHostPort('::1', 8080)).toBe('[::1]:8080');
    expect(formatHostPort('127.0.0.1', 8080)).toBe('127.0.0.1:8080');
    expect(formatHostPort('gw.example', 53)).toBe('gw.example:53');
    expect(urlHost('::')).toBe('[::]');
    expect(urlHost('127.0.0.1')).toBe('127.0.0.1');
  });
});

describe('parseHostPort', () => {
  it('reads HOST:PORT, IPV4:PORT and [IPV6]:PORT', () => {
    expect(parseHostPort('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(parseHostPort('[2001:db8::7]:1')).toEqual({ host: '2001:db8::7', port: 1 });
    expect(parseHostPort('127.0.0.1:65535')).toEqual({ host: '127.0.0.1', port: 65_535 });
    expect(parseHostPort('gw1.example.org:8080')).toEqual({ host: 'gw1.example.org', port: 8080 });
  });

  it('refuses an IPv6 address without brackets, with a hint, and anything without a valid port', () => {
    expect(() => parseHostPort('::1:8080')).toThrow(/brackets/);
    expect(() => parseHostPort('2001:db8::1:8080')).toThrow(/brackets/);
    for (const bad of ['127.0.0.1', 'gw:0', 'gw:65536', 'gw:', ':8080', '[::1]', '[::1]8080', '[gw]:8080', '[::1]:', 'gw:80a']) {
      expect(() => parseHostPort(bad), bad).toThrow(/HOST:PORT|brackets/);
    }
  });
});

describe('socketTypeFor and resolveHost', () => {
  it('choose udp6 for IPv6 addresses (:: included) and udp4 otherwise', () => {
    expect(socketTypeFor('::')).toBe('udp6');
    expect(socketTypeFor('::1')).toBe('udp6');
    expect(socketTypeFor('0.0.0.0')).toBe('udp4');
  });

  it('resolve literals of either family without the resolver, and names to either family', async () => {
    expect(await resolveHost('::1')).toEqual({ address: '::1', family: 6 });
    expect(await resolveHost('127.0.0.1')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(await resolveHost('::ffff:127.0.0.1')).toEqual({ address: '127.0.0.1', family: 4 });
    const local = await resolveHost('localhost');
    expect(['127.0.0.1', '::1']).toContain(local.address);
    expect(local.family).toBe(local.address === '::1' ? 6 : 4);
  });
});

describe('DatagramEndpoint on IPv6 and dual-stack addresses', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
  });

  async function endpoint(address: string) {
    const received: Array<{ packet: Packet; address: string; port: number }> = [];
    const labels: string[] = [];
    const opened = await DatagramEndpoint.open({
      address,
      port: 0,
      codec: createFrameCodec({}),
      socketBufferBytes: 1 << 16,
      maxDatagramRate: 1_000,
      logger: silentLogger,
      admit: (from, port) => {
        labels.push(formatHostPort(from, port));
        return formatHostPort(from, port);
      },
      onPacket: (packet, from, port) => received.push({ packet, address: from, port }),
    });
    closers.push(() => opened.close());
    return { endpoint: opened, received, labels };
  }

  async function peer(type: 'udp4' | 'udp6', address: string): Promise<{ socket: Socket; port: number; next: () => Promise<Packet> }> {
    const socket = createSocket(type);
    await new Promise<void>((resolve) => socket.bind(0, address, resolve));
    closers.push(() => new Promise((resolve) => socket.close(() => resolve())));
    const next = () => new Promise<Packet>((resolve) => socket.once('message', (data) => resolve(decode(data))));
    return { socket, port: socket.address().port, next };
  }

  const until = async (check: () => boolean) => {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(check()).toBe(true);
  };

  it('on ::, hears an IPv4 peer as its IPv4 address and answers it there', async () => {
    const { endpoint: ep, received, labels } = await endpoint('::');
    const v4 = await peer('udp4', '127.0.0.1');
    v4.socket.send(encode({ type: 'heartbeat' }), ep.address.port, '127.0.0.1');
    await until(() => received.length === 1);
    expect(received[0]).toMatchObject({ address: '127.0.0.1', port: v4.port });
    expect(labels[0]).toBe(`127.0.0.1:${v4.port}`);
    const answer = v4.next();
    ep.send({ type: 'heartbeat-ack', known: true }, '127.0.0.1', v4.port);
    expect(await answer).toEqual({ type: 'heartbeat-ack', known: true });
    expect(ep.counters.sendErrors).toBe(0);
  });

  it('on ::1, exchanges datagrams with an IPv6 peer and labels it [::1]:port', async () => {
    const { endpoint: ep, received, labels } = await endpoint('::1');
    expect(ep.address.address).toBe('::1');
    const v6 = await peer('udp6', '::1');
    v6.socket.send(encode({ type: 'leave' }), ep.address.port, '::1');
    await until(() => received.length === 1);
    expect(received[0]).toMatchObject({ address: '::1', port: v6.port });
    expect(labels[0]).toBe(`[::1]:${v6.port}`);
    const answer = v6.next();
    ep.send({ type: 'registered', heartbeatMs: 1_000 }, '::1', v6.port);
    expect(await answer).toEqual({ type: 'registered', heartbeatMs: 1_000 });
  });
});
