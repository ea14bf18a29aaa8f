import { useState } from 'react';
import { signIn } from '../api/client';
import { ErrorNote, useAction } from '../components';

export function SignIn({ onSignedIn, reason }: { onSignedIn: () => Promise<void>; reason?: string }) {
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [user, setUser] = useState('');
  const [secret, setSecret] = useState('');
  const act = useAction();
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const ok = await act.run(() => signIn(mode === 'password' ? user.trim() : '', secret));
    setSecret('');
    if (ok) await onSignedIn();
  };
  return (
    <main className="center signin">
      <h1>
        <img src="/favicon.svg" alt="" width="32" height="32" /> Berth
      </h1>
      <p className="muted">Sign in to browse and manage this registry.</p>
      {reason ? <p role="status">{reason}</p> : null}
      <div className="tabs" role="group" aria-label="Sign in with">
        <button type="button" aria-pressed={mode === 'password'} onClick={() => setMode('password')}>User and password</button>
        <button type="button" aria-pressed={mode === 'token'} onClick={() => setMode('token')}>Scoped token</button>
      </div>
      <form onSubmit={submit} className="card">
        {mode === 'password' ? (
          <>
            <label htmlFor="user">User name</label>
            <input id="user" name="username" autoComplete="username" value={user} onChange={(e) => setUser(e.target.value)} required autoFocus />
            <label htmlFor="password">Password</label>
            <input id="password" name="password" type="password" autoComplete="current-password" value={secret} onChange={(e) => setSecret(e.target.value)} required />
          </>
        ) : (
          <>
            <label htmlFor="token">Token secret</label>
            <input id="token" name="token" type="password" autoComplete="off" value={secret} onChange={(e) => setSecret(e.target.value)} required autoFocus />
            <p className="hint">The secret shown once when the token was created (it starts with <code>berth_</code>).</p>
          </>
        )}
        <ErrorNote error={act.error} what="Sign-in" />
        <button type="submit" className="primary" disabled={act.busy}>{act.busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
      <p className="hint">The session lasts while this tab is open; closing it signs you out.</p>
    </main>
  );
}
