// The session: the credentials the user signed in with, kept in this tab's
// memory only (never a cookie, never localStorage or sessionStorage), so
// closing or reloading the tab signs out and no other origin or tab can read
// them. The console sends them with each API call rather than a bearer JWT
// from /auth/token: on /api/v1 a JWT acts only within its access claim and
// never administers (users, tokens, registry settings need the user's own
// credentials or a scoped token with `manage`), and /auth/token never
// renews a JWT, so a JWT-holding console would lose its rights within
// minutes. The registry caches successful logins, so this costs no password
// hash per request.

export interface Session {
  /** The `Authorization` header value: `Basic …` or `Bearer <scoped token>`. */
  authorization: string;
}

let current: Session | null = null;

export function load(): Session | null {
  return current;
}

export function save(s: Session | null): void {
  current = s;
}

/** `Basic` header value for a user name and password (UTF-8). */
export function basic(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}
