import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';

describe('the pino-backed logger', () => {
  it('writes JSON records with the child name and bound fields, never a second name key', () => {
    const lines: string[] = [];
    const logger = createLogger({ name: 'gw', format: 'json', write: (line) => lines.push(line) });
    logger.child('access').with({ reqId: 'r1' }).info('GET /a', { status: 200, name: 'server-name', skipped: undefined });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.match(/"name"/g)).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'info', name: 'gw:access', reqId: 'r1', status: 200, field_name: 'server-name', msg: 'GET /a' });
    expect(JSON.parse(lines[0]!)).not.toHaveProperty('skipped');
  });

  it('the readable form is one line: time, level, name, message, fields', () => {
    const lines: string[] = [];
    createLogger({ name: 'gw', write: (line) => lines.push(line) })
      .child('pool')
      .warn('server left', { server: '10.0.0.1:9', why: 'said goodbye' });
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z WARN  gw:pool: server left server=10\.0\.0\.1:9 why="said goodbye"\n$/);
  });

  it('setLevel reaches children made before and after', () => {
    const lines: string[] = [];
    const logger = createLogger({ name: 'gw', level: 'info', write: (line, level) => lines.push(`${level} ${line}`) });
    const early = logger.child('early');
    early.debug('hidden');
    logger.setLevel('debug');
    early.debug('shown early');
    logger.child('late').debug('shown late');
    expect(early.isEnabled('debug')).toBe(true);
    logger.setLevel('error');
    early.warn('hidden again');
    expect(lines.map((line) => line.split(' ')[0])).toEqual(['debug', 'debug']);
    expect(lines.join('')).toMatch(/shown early[\s\S]*shown late/);
  });
});
