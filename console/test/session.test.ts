import { beforeEach, describe, expect, it } from 'vitest';
import { basic, load, save } from '../src/session';

describe('session', () => {
  beforeEach(() => save(null));
  it('keeps the credentials in memory and forgets them on sign-out', () => {
    save({ authorization: basic('admin', 'pw') });
    expect(load()?.authorization).toBe(`Basic ${btoa('admin:pw')}`);
    save(null);
    expect(load()).toBeNull();
  });
  it('never writes to web storage', () => {
    const writes: string[] = [];
    const spy = { setItem: (k: string) => writes.push(k) };
    Object.defineProperty(globalThis, 'sessionStorage', { value: spy, configurable: true });
    Object.defineProperty(globalThis, 'localStorage', { value: spy, configurable: true });
    save({ authorization: 'Bearer berth_x' });
    expect(writes).toEqual([]);
  });
  it('encodes Basic credentials as UTF-8', () => {
    expect(basic('admin', 'pw')).toBe(`Basic ${btoa('admin:pw')}`);
    expect(basic('jörg', 'ü')).toBe(`Basic ${Buffer.from('jörg:ü', 'utf8').toString('base64')}`);
  });
});
