/**
 * The MD5 worker's code: CommonJS, evaluated in the worker, so there is no file to locate whether the
 * gateway runs from dist or from its TypeScript sources. It gets the MD5 lanes' compiled wasm module
 * (`workerData.md5Lanes`, from @httpgw/protocol's md5LanesModule) and drives it as Md5Lanes.matches
 * does: messages grouped by length, four per call, groups of fewer than three to node:crypto. Each
 * message is a list of chunks as {buffer, dataOffset, dataLength, md5Offset}, whose buffers are
 * transferred; the answer is {ok, items}, the buffers transferred back.
 */
export const MD5_WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const MIN_LANES = 3, PADDING_ROOM = 72, FIRST_SLOT = 128, PAGE = 65536;
const lanes = new WebAssembly.Instance(workerData.md5Lanes).exports;
let memory = new Uint8Array(lanes.memory.buffer);
const data = (item) => new Uint8Array(item.buffer, item.dataOffset, item.dataLength);
const md5 = (item) => new Uint8Array(item.buffer, item.md5Offset, 16);
const alone = (item) => createHash('md5').update(data(item)).digest().equals(md5(item));

function check(items) {
  const ok = new Array(items.length);
  const order = items.map((_, i) => i).sort((x, y) => items[y].dataLength - items[x].dataLength);
  for (let first = 0; first < order.length; first += 4) {
    const group = order.slice(first, first + 4);
    if (group.length < MIN_LANES) {
      for (const i of group) ok[i] = alone(items[i]);
      continue;
    }
    const slot = Math.ceil((items[group[0]].dataLength + PADDING_ROOM) / 64) * 64;
    const needed = FIRST_SLOT + 4 * slot;
    if (needed > memory.length) {
      lanes.memory.grow(Math.ceil((needed - memory.length) / PAGE));
      memory = new Uint8Array(lanes.memory.buffer);
    }
    const args = [];
    for (let lane = 0; lane < 4; lane++) {
      const item = items[group[lane]];
      const at = FIRST_SLOT + lane * slot;
      if (item) memory.set(data(item), at);
      args.push(at, item ? item.dataLength : 0);
    }
    lanes.md5x4(...args, 0);
    group.forEach((i, lane) => {
      ok[i] = Buffer.compare(memory.subarray(16 * lane, 16 * lane + 16), md5(items[i])) === 0;
    });
  }
  return ok;
}

parentPort.on('message', (items) => {
  const ok = check(items);
  parentPort.postMessage({ ok, items }, [...new Set(items.map((item) => item.buffer))]);
});
`;
