import { describe, expect, it } from 'vitest';
import { hrefFor, parseRoute } from '../src/router';

describe('routes', () => {
  it('parses deep links, keeping slashes in repository names', () => {
    expect(parseRoute('/')).toEqual({ page: 'namespaces' });
    expect(parseRoute('/ns/team')).toEqual({ page: 'namespace', ns: 'team' });
    expect(parseRoute('/ns/team/app')).toEqual({ page: 'repository', ns: 'team', repo: 'team/app' });
    expect(parseRoute('/ns/team/a/b/')).toEqual({ page: 'repository', ns: 'team', repo: 'team/a/b' });
    expect(parseRoute('/settings')).toEqual({ page: 'settings' });
    expect(parseRoute('/nope/x')).toEqual({ page: 'notfound', path: '/nope/x' });
  });
  it('survives bad percent-encoding', () => {
    expect(parseRoute('/ns/%E0%A4%A')).toEqual({ page: 'namespace', ns: '%E0%A4%A' });
  });
  it('round-trips', () => {
    for (const r of [{ page: 'namespaces' }, { page: 'namespace', ns: 'team' }, { page: 'repository', ns: 'team', repo: 'team/a/b' }, { page: 'audit' }] as const) {
      expect(parseRoute(hrefFor(r))).toEqual(r);
    }
  });
});
