/**
 * A child of the `pools` bench scenario: COUNT fastfilesrv file servers (library instances, one UDP
 * socket each) in this one process, all serving ROOT to the gateway at 127.0.0.1:PORT.
 *
 *   node bench/pool-servers.mjs PORT COUNT ROOT
 *
 * Prints `registered COUNT in MS ms` once every one is admitted, `refused N` when the gateway refused
 * some; stops them all on SIGTERM.
 */
import { createFileServer } from '../packages/file-server/dist/index.js';

const [port, count, root] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
const started = performance.now();
const servers = [];
// Opened in batches: 250 sockets and first catalogue walks at once would only queue in the kernel.
for (let i = 0; i < count; i += 50) {
  const batch = Array.from({ length: Math.min(50, count - i) }, () =>
    // Walks every 60 s rather than 10: 10,000 simulated servers share the bench machine's cores with
    // the gateway they are measuring, where real ones would each have their own.
    createFileServer({ gateways: [{ host: '127.0.0.1', port }], root, bindAddress: '127.0.0.1', socketBufferBytes: 256 * 1024, catalogRescanMs: 60_000 }),
  );
  servers.push(...(await Promise.all(batch)));
}
await Promise.all(servers.map((server) => server.whenRegistered()));
console.log(`registered ${servers.length} in ${Math.round(performance.now() - started)} ms`);

const stop = async () => {
  await Promise.all(servers.map((server) => server.stop()));
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
