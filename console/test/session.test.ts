import { beforeEach, describe, expect, it } from 'vitest';
import { basic, fromAnswer, load, needsRefresh, save, type KV } from '../src/session';

class Mem implements KV {
  m = new Map<string, string>();
  getItem(k: string) { return this.m.get(k) ?? null; }
  setItem(k: string, v: string) { this.m.set(k, v); }
  removeItem(k: string) { this.m.delete(k); }
}

describe('session', () => {
  let kv: Mem;
  beforeEach(() => {
    kv = new Mem();
    save(null, kv);
  });
  it('keeps the token from the token endpoint with its expiry', () => {
    const s = fromAnswer({ token: 't', expires_in: 300 }, 1000);
    expect(s).toEqual({ token: 't', expiresAt: 301_000 });
    expect(fromAnswer({ access_token: 'a' }, 0).token).toBe('a');
    expect(() => fromAnswer({}, 0)).toThrow(/without a token/);
  });
  it('stores in the given session storage and forgets on sign-out', () => {
    save({ token: 't', expiresAt: Date.now() + 60_000 }, kv);
    expect(JSON.parse(kv.getItem('berth.session') ?? '{}').token).toBe('t');
    save(null, kv);
    expect(kv.getItem('berth.session')).toBeNull();
    expect(load(kv)).toBeNull();
  });
  it('drops expired or damaged entries', () => {
    kv.setItem('berth.session', JSON.stringify({ token: 't', expiresAt: 5 }));
    expect(load(kv, 10)).toBeNull();
    expect(kv.getItem('berth.session')).toBeNull();
    kv.setItem('berth.session', '{not json');
    expect(load(kv)).toBeNull();
  });
  it('asks for renewal shortly before expiry', () => {
    expect(needsRefresh({ token: 't', expiresAt: 300_000 }, 0)).toBe(false);
    expect(needsRefresh({ token: 't', expiresAt: 300_000 }, 250_000)).toBe(true);
  });
  it('encodes Basic credentials as UTF-8', () => {
    expect(basic('admin', 'pw')).toBe(`Basic ${btoa('admin:pw')}`);
    expect(basic('jörg', 'ü')).toBe(`Basic ${Buffer.from('jörg:ü', 'utf8').toString('base64')}`);
  });
});
