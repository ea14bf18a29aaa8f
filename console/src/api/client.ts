// The typed API client. `schema.d.ts` is generated from the server's
// /api/v1/openapi.json (npm run gen:api), so a changed API shape breaks
// the type check instead of the page.
import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';
import * as session from '../session';

export type Schemas = components['schemas'];
export type Namespace = Schemas['Namespace'];
export type Repository = Schemas['Repository'];
export type RepositoryDetail = Schemas['RepositoryDetail'];
export type Artifact = Schemas['Artifact'];
export type Tag = Schemas['Tag'];
export type GcRun = Schemas['GcRun'];
export type Me = Schemas['Me'];
export type Token = Schemas['Token'];
export type Scope = Schemas['Scope'];
export type User = Schemas['User'];
export type Grant = Schemas['Grant'];
export type RetentionPolicy = Schemas['RetentionPolicy'];
export type RegistrySettings = Schemas['RegistrySettings'];

/** A failed call, with a sentence a person can act on. */
export class ApiError extends Error {
  constructor(
    message: string,
    public status: number,
    public code: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Words for an error answer of /api/v1 (`{error:{...}}`) or /v2 and /auth/token (`{errors:[...]}`). */
export function describeError(status: number, body: unknown): ApiError {
  let code = '';
  let message = '';
  if (body && typeof body === 'object') {
    const b = body as { error?: { code?: string; message?: string; details?: { field?: string } }; errors?: { code?: string; message?: string }[] };
    if (b.error) {
      code = b.error.code ?? '';
      message = b.error.message ?? '';
      if (b.error.details?.field && !message.includes(b.error.details.field)) {
        message = `${message} (field: ${b.error.details.field})`;
      }
    } else if (Array.isArray(b.errors) && b.errors.length > 0) {
      code = (b.errors[0].code ?? '').toLowerCase();
      message = b.errors.map((e) => e.message ?? e.code ?? '').join('; ');
    }
  }
  if (!message) message = statusWords(status);
  if (status === 401) message = `Not signed in or the session has ended: ${message}`;
  if (status === 403) message = `Not allowed: ${message}`;
  return new ApiError(message, status, code || String(status));
}

function statusWords(status: number): string {
  switch (status) {
    case 400: return 'the request was not valid';
    case 401: return 'authentication is required';
    case 403: return 'you may not do this';
    case 404: return 'it does not exist (any more)';
    case 409: return 'it conflicts with the current state; reload and try again';
    case 429: return 'too many requests; wait a little and try again';
    default: return status >= 500 ? `the registry failed (HTTP ${status}); see its log` : `HTTP ${status}`;
  }
}

const auth: Middleware = {
  onRequest({ request }) {
    const s = session.load();
    if (s) request.headers.set('Authorization', s.authorization);
    return request;
  },
};

// `credentials: 'omit'`: the console never uses cookies, and it keeps the
// browser from popping up its own password dialog on a 401 with a Basic
// challenge.
export const api = createClient<paths>({ baseUrl: '', credentials: 'omit' });
api.use(auth);

/** Unwraps an openapi-fetch result: the data, or an ApiError in words. */
export async function call<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let r;
  try {
    r = await p;
  } catch (e) {
    throw new ApiError(`Could not reach the registry: ${(e as Error).message}`, 0, 'network');
  }
  if (!r.response.ok) throw describeError(r.response.status, r.error);
  return r.data as T;
}

/**
 * Signs in with a user name and password, or (user empty) a scoped token's
 * secret: /auth/token checks the credentials once (a wrong password is
 * reported here, in words), then the tab keeps them in memory for its API
 * calls.
 */
export async function signIn(user: string, secret: string): Promise<void> {
  const authorization = user ? session.basic(user, secret) : `Bearer ${secret}`;
  let res: Response;
  try {
    res = await fetch('/auth/token', { headers: { Authorization: authorization }, credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    throw new ApiError(`Could not reach the registry: ${(e as Error).message}`, 0, 'network');
  }
  if (!res.ok) {
    const body = await res.json().catch(() => null);
    if (res.status === 401) throw new ApiError('Wrong user name, password or token.', 401, 'unauthorized');
    throw describeError(res.status, body);
  }
  session.save({ authorization });
}

export function signOut(): void {
  session.save(null);
}

/** One day's storage sample (GET /api/v1/usage/history, not in the OpenAPI document). */
export interface UsageSample {
  date: string;
  namespaces: Record<string, number>;
}

export async function usageHistory(): Promise<UsageSample[]> {
  const s = session.load();
  let res: Response;
  try {
    res = await fetch('/api/v1/usage/history', { credentials: 'omit', headers: s ? { Authorization: s.authorization } : {} });
  } catch (e) {
    throw new ApiError(`Could not reach the registry: ${(e as Error).message}`, 0, 'network');
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) throw describeError(res.status, body);
  const samples = (body as { samples?: UsageSample[] } | null)?.samples;
  if (!Array.isArray(samples)) throw new ApiError('The registry answered an unexpected shape for the usage history.', res.status, 'shape');
  return samples;
}
