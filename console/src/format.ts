// Pure helpers, unit-tested in test/format.test.ts.

/** 1536 -> "1.5 KiB": powers of 1024, as `docker images` does not but registries' quotas do. */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n) || n < 0) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${n} B`;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`;
}

/** RFC 3339 -> "2026-12-01 20:03 UTC"; empty/absent -> "never". */
export function formatTime(s: string | null | undefined): string {
  if (!s) return 'never';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  const p = (x: number) => String(x).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())} UTC`;
}

/** "3 minutes ago" style, for the title attribute next to formatTime. */
export function ago(s: string | null | undefined, now = Date.now()): string {
  if (!s) return 'never';
  const t = new Date(s).getTime();
  if (Number.isNaN(t)) return s;
  const sec = Math.round((now - t) / 1000);
  if (sec < 0) return 'in the future';
  if (sec < 60) return 'just now';
  const steps: [number, string][] = [
    [60, 'minute'],
    [3600, 'hour'],
    [86400, 'day'],
    [86400 * 30, 'month'],
    [86400 * 365, 'year'],
  ];
  let label = 'minute';
  let size = 60;
  for (const [s2, l] of steps) if (sec >= s2) [size, label] = [s2, l];
  const n = Math.floor(sec / size);
  return `${n} ${label}${n === 1 ? '' : 's'} ago`;
}

/** `sha256:0123456789ab…` -> `sha256:0123456789ab`. */
export function shortDigest(d: string, n = 12): string {
  const [algo, hex] = d.includes(':') ? d.split(':', 2) : ['', d];
  return algo ? `${algo}:${hex.slice(0, n)}` : hex.slice(0, n);
}

/** `docker pull host/repo:tag`. */
export function pullByTag(host: string, repo: string, tag: string): string {
  return `docker pull ${host}/${repo}:${tag}`;
}

/** `docker pull host/repo@sha256:…`. */
export function pullByDigest(host: string, repo: string, digest: string): string {
  return `docker pull ${host}/${repo}@${digest}`;
}

export type SortDir = 'asc' | 'desc';

/** Stable sort by a key, strings by locale, numbers numerically, absent last. */
export function sortBy<T>(items: readonly T[], key: (t: T) => string | number | null | undefined, dir: SortDir): T[] {
  const sign = dir === 'asc' ? 1 : -1;
  return items
    .map((item, i) => ({ item, i, k: key(item) }))
    .sort((a, b) => {
      if (a.k === b.k) return a.i - b.i;
      if (a.k === null || a.k === undefined) return 1;
      if (b.k === null || b.k === undefined) return -1;
      const c = typeof a.k === 'number' && typeof b.k === 'number' ? a.k - b.k : String(a.k).localeCompare(String(b.k));
      return c === 0 ? a.i - b.i : sign * c;
    })
    .map((x) => x.item);
}

/** One page of `items` (page from 1) and the page count (at least 1). */
export function pageOf<T>(items: readonly T[], page: number, size: number): { rows: T[]; pages: number; page: number } {
  const pages = Math.max(1, Math.ceil(items.length / size));
  const p = Math.min(Math.max(1, page), pages);
  return { rows: items.slice((p - 1) * size, p * size), pages, page: p };
}

/** CIDR lines from a textarea: trimmed, blank lines and `#` comments dropped. */
export function parseCidrLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l.length > 0);
}

/** Quick client-side check (the server has the last word). */
export function looksLikeCidr(s: string): boolean {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  if (v4) return v4.slice(1, 5).every((o) => Number(o) <= 255) && Number(v4[5]) <= 32;
  const v6 = /^([0-9a-fA-F:]+)\/(\d{1,3})$/.exec(s);
  return !!v6 && v6[1].includes(':') && Number(v6[2]) <= 128;
}

/** The history line that created a layer, from whichever field the API gives. */
export function layerHistory(layer: Record<string, unknown>): string | undefined {
  const h = layer['created_by'] ?? layer['history'];
  if (typeof h === 'string') return h;
  if (h && typeof h === 'object') {
    const o = h as Record<string, unknown>;
    if (typeof o['created_by'] === 'string') return o['created_by'];
  }
  return undefined;
}

/** Artifacts whose subject is `digest`: its signatures, SBOMs, attestations. */
export function referrersOf<T extends { subject?: string | null }>(all: readonly T[], digest: string): T[] {
  return all.filter((a) => a.subject === digest);
}

/** A platform as `linux/arm64/v8`. */
export function platformLabel(p: { os: string; architecture: string; variant?: string | null }): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Chart series from daily samples: the `top` largest namespaces (by latest size) and the rest summed as "other". */
export function usageSeries(samples: { date: string; namespaces: Record<string, number> }[], top = 5): { names: string[]; dates: string[]; values: number[][] } {
  const dates = samples.map((s) => s.date);
  const last = samples.length ? samples[samples.length - 1].namespaces : {};
  const every = new Set<string>();
  for (const s of samples) for (const n of Object.keys(s.namespaces)) every.add(n);
  const ranked = [...every].sort((a, b) => (last[b] ?? 0) - (last[a] ?? 0) || a.localeCompare(b));
  const names = ranked.slice(0, top);
  const rest = ranked.slice(top);
  const values = names.map((n) => samples.map((s) => s.namespaces[n] ?? 0));
  if (rest.length > 0) {
    names.push('other');
    values.push(samples.map((s) => rest.reduce((sum, n) => sum + (s.namespaces[n] ?? 0), 0)));
  }
  return { names, dates, values };
}
