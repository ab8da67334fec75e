import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { batchedWriter } from '../src/cli-runner.js';

describe('batchedWriter', () => {
  it('writes the lines of one event-loop turn at once, in order, and an ERROR line without delay', async () => {
    const writes: string[] = [];
    const logger = createLogger({ name: 't', write: batchedWriter((text) => writes.push(text)) });
    logger.info('one');
    logger.info('two');
    expect(writes).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(/INFO  t: one\n.*INFO  t: two\n$/);
    logger.info('three');
    logger.error('four');
    expect(writes).toHaveLength(2); // the error took the line before it along
    expect(writes[1]).toMatch(/t: three\n.*ERROR t: four\n$/);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toHaveLength(2);
  });
});
