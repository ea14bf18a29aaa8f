import { describe, expect, it } from 'vitest';
import { ago, formatBytes, formatTime, layerHistory, looksLikeCidr, pageOf, parseCidrLines, platformLabel, pullByDigest, pullByTag, referrersOf, shortDigest, sortBy } from '../src/format';

describe('formatBytes', () => {
  it('uses powers of 1024 with sensible precision', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.00 KiB');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(15 * 1024 * 1024)).toBe('15.0 MiB');
    expect(formatBytes(300 * 1024 ** 3)).toBe('300 GiB');
  });
  it('shows a dash for what is not a size', () => {
    expect(formatBytes(undefined)).toBe('—');
    expect(formatBytes(-1)).toBe('—');
    expect(formatBytes(Number.NaN)).toBe('—');
  });
});

describe('times', () => {
  it('formats RFC 3339 in UTC', () => {
    expect(formatTime('2026-12-01T20:03:09.5Z')).toBe('2026-12-01 20:03 UTC');
    expect(formatTime(null)).toBe('never');
    expect(formatTime('garbage')).toBe('garbage');
  });
  it('says how long ago', () => {
    const now = Date.parse('2026-12-01T12:00:00Z');
    expect(ago('2026-12-01T11:59:30Z', now)).toBe('just now');
    expect(ago('2026-12-01T11:58:00Z', now)).toBe('2 minutes ago');
    expect(ago('2026-12-01T11:00:00Z', now)).toBe('1 hour ago');
    expect(ago('2026-11-28T12:00:00Z', now)).toBe('3 days ago');
    expect(ago(undefined, now)).toBe('never');
  });
});

describe('pull commands', () => {
  const d = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
  it('are exactly what docker takes', () => {
    expect(pullByTag('reg.example:5000', 'team/app', '1.0')).toBe('docker pull reg.example:5000/team/app:1.0');
    expect(pullByDigest('reg.example:5000', 'team/a/b', d)).toBe(`docker pull reg.example:5000/team/a/b@${d}`);
  });
  it('shortens digests but keeps the algorithm', () => {
    expect(shortDigest(d)).toBe('sha256:e3b0c44298fc');
    expect(shortDigest('abcdef0123456789')).toBe('abcdef012345');
  });
});

describe('sortBy and pageOf', () => {
  const rows = [
    { n: 'b', s: 2 },
    { n: 'a', s: null },
    { n: 'c', s: 1 },
  ];
  it('sorts both ways and keeps absent values last', () => {
    expect(sortBy(rows, (r) => r.n, 'asc').map((r) => r.n)).toEqual(['a', 'b', 'c']);
    expect(sortBy(rows, (r) => r.n, 'desc').map((r) => r.n)).toEqual(['c', 'b', 'a']);
    expect(sortBy(rows, (r) => r.s, 'asc').map((r) => r.n)).toEqual(['c', 'b', 'a']);
    expect(sortBy(rows, (r) => r.s, 'desc').map((r) => r.n)).toEqual(['b', 'c', 'a']);
  });
  it('sorts numbers as numbers', () => {
    expect(sortBy([{ v: 10 }, { v: 9 }], (r) => r.v, 'asc').map((r) => r.v)).toEqual([9, 10]);
  });
  it('pages and clamps the page number', () => {
    const items = Array.from({ length: 45 }, (_, i) => i);
    expect(pageOf(items, 1, 20).rows).toHaveLength(20);
    expect(pageOf(items, 3, 20)).toEqual({ rows: [40, 41, 42, 43, 44], pages: 3, page: 3 });
    expect(pageOf(items, 9, 20).page).toBe(3);
    expect(pageOf([], 1, 20)).toEqual({ rows: [], pages: 1, page: 1 });
  });
});

describe('allow-list input', () => {
  it('drops blanks and comments', () => {
    expect(parseCidrLines(' 10.0.0.0/8 \n\n# office\n2001:db8::/32 # lab\n')).toEqual(['10.0.0.0/8', '2001:db8::/32']);
  });
  it('recognises IPv4 and IPv6 CIDRs', () => {
    expect(looksLikeCidr('10.0.0.0/8')).toBe(true);
    expect(looksLikeCidr('::1/128')).toBe(true);
    expect(looksLikeCidr('10.0.0.0')).toBe(false);
    expect(looksLikeCidr('300.0.0.0/8')).toBe(false);
    expect(looksLikeCidr('10.0.0.0/33')).toBe(false);
    expect(looksLikeCidr('fe80::/129')).toBe(false);
  });
});

describe('artifact details', () => {
  it('finds the history line wherever the API puts it', () => {
    expect(layerHistory({ created_by: 'RUN make' })).toBe('RUN make');
    expect(layerHistory({ history: { created_by: 'COPY . /' } })).toBe('COPY . /');
    expect(layerHistory({ history: 'ADD x /' })).toBe('ADD x /');
    expect(layerHistory({ digest: 'sha256:x' })).toBeUndefined();
  });
  it('lists referrers of a digest', () => {
    const all = [{ digest: 'a' }, { digest: 'sig', subject: 'a' }, { digest: 'sbom', subject: 'a' }, { digest: 'x', subject: 'b' }];
    expect(referrersOf(all, 'a').map((r) => r.digest)).toEqual(['sig', 'sbom']);
  });
  it('labels platforms', () => {
    expect(platformLabel({ os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe('linux/arm64/v8');
    expect(platformLabel({ os: 'linux', architecture: 'amd64', variant: null })).toBe('linux/amd64');
  });
});

import { usageSeries } from '../src/format';

describe('usageSeries', () => {
  it('keeps the largest namespaces and sums the rest, zero where absent', () => {
    const samples: { date: string; namespaces: Record<string, number> }[] = [
      { date: '2026-11-30', namespaces: { a: 1, b: 5 } },
      { date: '2026-12-01', namespaces: { a: 10, b: 5, c: 1, d: 2 } },
    ];
    expect(usageSeries(samples, 2)).toEqual({
      names: ['a', 'b', 'other'],
      dates: ['2026-11-30', '2026-12-01'],
      values: [[1, 10], [5, 5], [0, 3]],
    });
    expect(usageSeries([], 3)).toEqual({ names: [], dates: [], values: [] });
  });
});
