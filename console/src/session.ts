// The session: a short-lived bearer token from /auth/token, kept in memory
// and in sessionStorage (so a reload keeps the tab signed in). Never a
// cookie, never localStorage: closing the tab ends the session, and no
// other origin or tab can read it. Passwords are sent once, to
// /auth/token, and not kept.

export interface Session {
  token: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

const KEY = 'berth.session';

export interface TokenAnswer {
  token?: string;
  access_token?: string;
  expires_in?: number;
}

/** Minimal storage interface, so tests can give their own. */
export interface KV {
  getItem(k: string): string | null;
  setItem(k: string, v: string): void;
  removeItem(k: string): void;
}

function storage(): KV | undefined {
  try {
    return globalThis.sessionStorage;
  } catch {
    return undefined;
  }
}

let current: Session | null = null;

export function load(kv: KV | undefined = storage(), now = Date.now()): Session | null {
  if (current) return current.expiresAt > now ? current : null;
  const raw = kv?.getItem(KEY);
  if (!raw) return null;
  try {
    const s = JSON.parse(raw) as Session;
    if (typeof s.token === 'string' && typeof s.expiresAt === 'number' && s.expiresAt > now) {
      current = s;
      return s;
    }
  } catch {
    /* a damaged entry is as good as none */
  }
  kv?.removeItem(KEY);
  return null;
}

export function save(s: Session | null, kv: KV | undefined = storage()): void {
  current = s;
  if (s) kv?.setItem(KEY, JSON.stringify(s));
  else kv?.removeItem(KEY);
}

/** Turns the token endpoint's answer into a session. */
export function fromAnswer(a: TokenAnswer, now = Date.now()): Session {
  const token = a.token ?? a.access_token;
  if (!token) throw new Error('the token endpoint answered without a token');
  const ttl = typeof a.expires_in === 'number' && a.expires_in > 0 ? a.expires_in : 60;
  return { token, expiresAt: now + ttl * 1000 };
}

/** Whether the token should be renewed now (less than a third of 5 minutes left). */
export function needsRefresh(s: Session, now = Date.now()): boolean {
  return s.expiresAt - now < 100_000;
}

/** `Basic` header value for a user name and password (UTF-8). */
export function basic(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}
