import { describe, expect, it } from 'vitest';
import { describeError } from '../src/api/client';

describe('API errors in words', () => {
  it('uses the management API message and names the field', () => {
    const e = describeError(400, { error: { code: 'invalid_argument', message: 'name is not valid', details: { field: 'name' } } });
    expect(e.message).toBe('name is not valid');
    expect(e.code).toBe('invalid_argument');
    const f = describeError(400, { error: { code: 'invalid_argument', message: 'bad value', details: { field: 'page_size' } } });
    expect(f.message).toBe('bad value (field: page_size)');
  });
  it('reads the distribution error form', () => {
    const e = describeError(429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'too many failed logins; retry in 30 s' }] });
    expect(e.message).toBe('too many failed logins; retry in 30 s');
    expect(e.code).toBe('toomanyrequests');
  });
  it('says what a status means when the body says nothing', () => {
    expect(describeError(404, null).message).toMatch(/does not exist/);
    expect(describeError(502, 'x').message).toMatch(/registry failed \(HTTP 502\)/);
    expect(describeError(401, null).message).toMatch(/^Not signed in/);
    expect(describeError(403, { error: { code: 'forbidden', message: 'admins only' } }).message).toBe('Not allowed: admins only');
  });
});
