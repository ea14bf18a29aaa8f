import { useState } from 'react';
import { useMe } from '../App';
import { api, call, type Scope } from '../api/client';
import { Badge, ConfirmDelete, CopyLine, ErrorNote, Pager, Time, useAction, useLoad } from '../components';

export function Access() {
  const me = useMe();
  return (
    <section>
      <h1>{me?.admin ? 'Users and tokens' : 'Tokens'}</h1>
      <WhoAmI />
      {me?.admin ? <Users /> : null}
      <Tokens />
    </section>
  );
}

function WhoAmI() {
  const me = useMe();
  if (!me) return null;
  return (
    <div className="card" aria-labelledby="whoami-h">
      <h2 id="whoami-h">Who am I</h2>
      <dl className="facts">
        <div><dt>Signed in as</dt><dd>{me.kind === 'open' ? 'nobody (authentication is off)' : me.name}</dd></div>
        <div><dt>Kind</dt><dd>{me.kind}</dd></div>
        <div><dt>Registry administrator</dt><dd>{me.admin ? 'yes' : 'no'}</dd></div>
        <div><dt>Authentication</dt><dd>{me.auth_mode}</dd></div>
      </dl>
      {me.roles.length > 0 ? <p>Roles: {me.roles.map((r) => <Badge key={r.namespace} kind="plain">{r.namespace}: {r.role}</Badge>)}</p> : null}
      {me.scopes.length > 0 ? <p>Scopes: {me.scopes.map((s) => <Badge key={s.repository} kind="plain">{s.repository}: {s.actions.join(',')}</Badge>)}</p> : null}
    </div>
  );
}

function Users() {
  const [page, setPage] = useState(1);
  const users = useLoad(() => call(api.GET('/api/v1/users', { params: { query: { page, page_size: 20 } } })), [page]);
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [admin, setAdmin] = useState(false);
  const create = useAction();
  const change = useAction();
  const total = users.data?.total_count ?? 0;
  return (
    <div className="card">
      <h2>Users</h2>
      <ErrorNote error={users.error} what="Loading the users" />
      {users.data ? (
        <div className="scroll">
          <table>
            <thead><tr><th>User</th><th>Administrator</th><th className="opt">Created</th><th><span className="sr">Actions</span></th></tr></thead>
            <tbody>
              {users.data.users.map((u) => (
                <tr key={u.name}>
                  <td>{u.name}</td>
                  <td>
                    <label className="check"><input type="checkbox" checked={u.admin} onChange={(e) => change.run(async () => {
                      await call(api.PATCH('/api/v1/users/{user}', { params: { path: { user: u.name } }, body: { admin: e.target.checked } }));
                      users.reload();
                    })} /> <span className="sr">{u.name} is a registry administrator</span></label>
                  </td>
                  <td className="opt"><Time at={u.created_at} /></td>
                  <td><ConfirmDelete name={u.name} what="user" consequence="Their namespace roles go too; tokens they created keep working until deleted." onConfirm={async () => {
                    await call(api.DELETE('/api/v1/users/{user}', { params: { path: { user: u.name } } }));
                    users.reload();
                  }} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <ErrorNote error={change.error} what="Changing the user" />
      <Pager page={page} pages={Math.max(1, Math.ceil(total / 20))} total={total} onPage={setPage} noun="users" />
      <form className="row" aria-label="New user" onSubmit={async (e) => {
        e.preventDefault();
        if (await create.run(() => call(api.POST('/api/v1/users', { body: { name: name.trim(), password, admin } })))) {
          setName('');
          setPassword('');
          setAdmin(false);
          users.reload();
        }
      }}>
        <input aria-label="New user name" placeholder="user name" value={name} onChange={(e) => setName(e.target.value)} required autoComplete="off" />
        <input aria-label="Password (8 characters or more)" placeholder="password (8+ characters)" type="password" value={password} onChange={(e) => setPassword(e.target.value)} required minLength={8} autoComplete="new-password" />
        <label className="check"><input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.target.checked)} /> administrator</label>
        <button type="submit" disabled={create.busy}>Add user</button>
      </form>
      <ErrorNote error={create.error} what="Adding the user" />
    </div>
  );
}

const ACTIONS = ['pull', 'push', 'delete', 'manage'] as const;

function Tokens() {
  const [page, setPage] = useState(1);
  const tokens = useLoad(() => call(api.GET('/api/v1/tokens', { params: { query: { page, page_size: 20 } } })), [page]);
  const [name, setName] = useState('');
  const [pattern, setPattern] = useState('');
  const [actions, setActions] = useState<string[]>(['pull']);
  const [days, setDays] = useState('30');
  const [secret, setSecret] = useState<{ name: string; secret: string }>();
  const create = useAction();
  const total = tokens.data?.total_count ?? 0;
  return (
    <div className="card">
      <h2>Scoped tokens</h2>
      <p className="hint">A token can do only what its scopes say, on the repositories its pattern matches (<code>team/*</code>, <code>team/app</code>). Use it as the password of <code>docker login</code> (any user name).</p>
      {secret ? (
        <div className="secret" role="status" data-testid="token-secret">
          <p><strong>Token {secret.name} created.</strong> Copy its secret now: it is shown only once.</p>
          <CopyLine text={secret.secret} testId="token-secret-value" />
          <button type="button" className="small" onClick={() => setSecret(undefined)}>I have copied it</button>
        </div>
      ) : null}
      <ErrorNote error={tokens.error} what="Loading the tokens" />
      {tokens.data && tokens.data.tokens.length === 0 ? <p className="empty">No token yet.</p> : null}
      {tokens.data && tokens.data.tokens.length > 0 ? (
        <div className="scroll">
          <table>
            <thead><tr><th>Name</th><th>Scopes</th><th>Expires</th><th className="opt">Last used</th><th className="opt">Created by</th><th><span className="sr">Actions</span></th></tr></thead>
            <tbody>
              {tokens.data.tokens.map((t) => (
                <tr key={t.id}>
                  <td>{t.name}</td>
                  <td>{t.scopes.map((s: Scope) => <div key={s.repository}><code>{s.repository}</code> {s.actions.join(', ')}</div>)}</td>
                  <td>{t.expired ? <Badge kind="bad">expired</Badge> : <Time at={t.expires_at} />}</td>
                  <td className="opt"><Time at={t.last_used_at} /></td>
                  <td className="opt">{t.created_by}</td>
                  <td><ConfirmDelete name={t.name} what="token" consequence="Clients using it are refused from now on." onConfirm={async () => {
                    await call(api.DELETE('/api/v1/tokens/{id}', { params: { path: { id: t.id } } }));
                    tokens.reload();
                  }} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager page={page} pages={Math.max(1, Math.ceil(total / 20))} total={total} onPage={setPage} noun="tokens" />
      <form aria-label="New token" onSubmit={async (e) => {
        e.preventDefault();
        const d = days.trim() === '' ? undefined : Number(days);
        if (d !== undefined && !(Number.isInteger(d) && d > 0)) {
          await create.run(async () => { throw new Error('expiry must be a whole number of days, or empty for never'); });
          return;
        }
        await create.run(async () => {
          const r = await call(api.POST('/api/v1/tokens', { body: { name: name.trim(), scopes: [{ repository: pattern.trim(), actions: actions as Scope['actions'] }], expires_in_seconds: d ? d * 86400 : undefined } }));
          setSecret({ name: r.token.name, secret: r.secret });
          setName('');
          tokens.reload();
        });
      }}>
        <h3>New token</h3>
        <div className="grid">
          <label>Name<input value={name} onChange={(e) => setName(e.target.value)} required placeholder="ci" /></label>
          <label>Repositories (pattern)<input value={pattern} onChange={(e) => setPattern(e.target.value)} required placeholder="team/*" /></label>
          <label>Expires in (days, empty = never)<input inputMode="numeric" value={days} onChange={(e) => setDays(e.target.value)} /></label>
        </div>
        <fieldset className="row">
          <legend>Actions</legend>
          {ACTIONS.map((a) => (
            <label key={a} className="check"><input type="checkbox" checked={actions.includes(a)} onChange={(e) => setActions((xs) => (e.target.checked ? [...xs, a] : xs.filter((x) => x !== a)))} /> {a}</label>
          ))}
        </fieldset>
        <ErrorNote error={create.error} what="Creating the token" />
        <button type="submit" className="primary" disabled={create.busy || actions.length === 0}>Create token</button>
      </form>
    </div>
  );
}
