import { useEffect, useMemo, useState } from 'react';
import { api, call, type Namespace, type Repository, type RetentionPolicy } from '../api/client';
import { ConfirmDelete, ErrorNote, Link, Loading, Pager, SortHeader, Time, useAction, useLoad } from '../components';
import { allRepositories } from '../data';
import { formatBytes, formatTime, pageOf, sortBy, type SortDir } from '../format';
import { hrefFor, navigate } from '../router';
import { statusBadge, visibilityBadge } from './Namespaces';

export function NamespacePage({ ns }: { ns: string }) {
  const info = useLoad(() => call(api.GET('/api/v1/namespaces/{namespace}', { params: { path: { namespace: ns } } })), [ns]);
  const n = info.data;
  return (
    <section>
      <p className="crumbs"><Link href="/">Namespaces</Link> / <span>{ns}</span></p>
      <ErrorNote error={info.error} what={`Loading namespace ${ns}`} />
      {info.loading && !n ? <Loading what="the namespace" /> : null}
      {n ? (
        <>
          <div className="head">
            <h1>{n.name}</h1>
            <div className="row">{visibilityBadge(n.is_public)} {statusBadge(n.status)}</div>
          </div>
          {n.description ? <p>{n.description}</p> : null}
          <dl className="facts">
            <div><dt>Size</dt><dd>{formatBytes(n.size)}</dd></div>
            <div><dt>Images</dt><dd>{n.image_count}</dd></div>
            <div><dt>Endpoint</dt><dd><code>{location.host}/{n.name}</code></dd></div>
            <div><dt>Created</dt><dd><Time at={n.created_at} /></dd></div>
          </dl>
          <Repositories ns={ns} />
          <EditNamespace n={n} onSaved={info.reload} />
          <Retention ns={ns} />
          <Members ns={ns} />
          <div className="card dangerzone">
            <h2>Delete this namespace</h2>
            <p>Its repositories disappear at once; storage is reclaimed in the background.</p>
            <ConfirmDelete name={n.name} what="namespace" consequence="Every repository, tag and artifact in it is deleted. This cannot be undone." onConfirm={async () => {
              await call(api.DELETE('/api/v1/namespaces/{namespace}', { params: { path: { namespace: ns } } }));
              navigate('/');
            }} />
          </div>
        </>
      ) : null}
    </section>
  );
}

type Key = 'name' | 'size' | 'tag_count' | 'artifact_count' | 'last_push' | 'last_pull';

function Repositories({ ns }: { ns: string }) {
  const list = useLoad(() => allRepositories(ns), [ns]);
  const [sort, setSort] = useState<{ key: Key; dir: SortDir }>({ key: 'name', dir: 'asc' });
  const [page, setPage] = useState(1);
  const [filter, setFilter] = useState('');
  const rows = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return sortBy((list.data ?? []).filter((r) => !f || r.name.includes(f)), (r: Repository) => r[sort.key], sort.dir);
  }, [list.data, sort, filter]);
  const p = pageOf(rows, page, 20);
  return (
    <div className="card">
      <div className="head">
        <h2>Repositories</h2>
        <input aria-label="Filter repositories" className="narrow" type="search" placeholder="filter" value={filter} onChange={(e) => { setFilter(e.target.value); setPage(1); }} />
      </div>
      <ErrorNote error={list.error} what="Loading the repositories" />
      {list.loading && !list.data ? <Loading what="repositories" /> : null}
      {list.data && rows.length === 0 ? (
        <p className="empty">No repository{filter ? ' matches' : ' yet'}. Push one with <code>docker push {location.host}/{ns}/app:1.0</code>.</p>
      ) : null}
      {rows.length > 0 ? (
        <div className="scroll">
          <table>
            <thead>
              <tr>
                <SortHeader k="name" label="Repository" sort={sort} onSort={setSort} />
                <SortHeader k="size" label="Size" sort={sort} onSort={setSort} className="num" />
                <SortHeader k="tag_count" label="Tags" sort={sort} onSort={setSort} className="num" />
                <SortHeader k="artifact_count" label="Artifacts" sort={sort} onSort={setSort} className="num opt" />
                <SortHeader k="last_push" label="Last push" sort={sort} onSort={setSort} />
                <SortHeader k="last_pull" label="Last pull" sort={sort} onSort={setSort} className="opt" />
                <th><span className="sr">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {p.rows.map((r) => (
                <tr key={r.name}>
                  <td><Link href={hrefFor({ page: 'repository', ns, repo: r.name })}>{r.name}</Link>{r.latest_tag ? <div className="sub">latest tag {r.latest_tag}</div> : null}</td>
                  <td className="num">{formatBytes(r.size)}</td>
                  <td className="num">{r.tag_count}</td>
                  <td className="num opt">{r.artifact_count}</td>
                  <td><Time at={r.last_push} /></td>
                  <td className="opt"><Time at={r.last_pull} /></td>
                  <td>
                    <ConfirmDelete name={r.name} what="repository" consequence="All its tags and artifacts are deleted." onConfirm={async () => {
                      await call(api.DELETE('/api/v1/namespaces/{namespace}/repositories/{repository}', { params: { path: { namespace: ns, repository: r.name } } }));
                      list.reload();
                    }} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager page={p.page} pages={p.pages} total={rows.length} onPage={setPage} noun="repositories" />
    </div>
  );
}

function EditNamespace({ n, onSaved }: { n: Namespace; onSaved: () => void }) {
  const [description, setDescription] = useState(n.description);
  const [isPublic, setPublic] = useState(n.is_public);
  const [saved, setSaved] = useState('');
  const act = useAction();
  useEffect(() => {
    setDescription(n.description);
    setPublic(n.is_public);
  }, [n]);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setSaved('');
    if (await act.run(() => call(api.PATCH('/api/v1/namespaces/{namespace}', { params: { path: { namespace: n.name } }, body: { description, is_public: isPublic } })))) {
      setSaved(`Saved at ${formatTime(new Date().toISOString())}.`);
      onSaved();
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="edit-ns">
      <h2 id="edit-ns">Settings</h2>
      <label htmlFor="ns-desc">Description</label>
      <input id="ns-desc" value={description} onChange={(e) => setDescription(e.target.value)} />
      <fieldset className="stack">
        <legend>Visibility</legend>
        <label className="check"><input type="radio" name="vis" checked={!isPublic} onChange={() => setPublic(false)} /> Private: only users with a role or a token may pull</label>
        <label className="check"><input type="radio" name="vis" checked={isPublic} onChange={() => setPublic(true)} /> Public: anyone may pull without signing in (pushing still needs rights)</label>
      </fieldset>
      <ErrorNote error={act.error} what="Saving the namespace" />
      <div className="row">
        <button type="submit" className="primary" disabled={act.busy}>Save</button>
        <span role="status" className="muted">{saved}</span>
      </div>
    </form>
  );
}

const emptyPolicy = (): RetentionPolicy => ({ repositories: '*', keep_last: 10, older_than_days: null, include_tags: null, exclude_tags: null, untagged_older_than_days: 7 });

function numOrNull(s: string): number | null {
  const t = s.trim();
  if (t === '') return null;
  const v = Number(t);
  return Number.isInteger(v) && v >= 0 ? v : NaN;
}

function Retention({ ns }: { ns: string }) {
  const loaded = useLoad(() => call(api.GET('/api/v1/namespaces/{namespace}/retention', { params: { path: { namespace: ns } } })), [ns]);
  const [policies, setPolicies] = useState<RetentionPolicy[]>([]);
  const save = useAction();
  const prev = useAction();
  const [plan, setPlan] = useState<{ tags: { repository: string; tag: string; digest: string }[]; untagged: { repository: string; digest: string }[] }>();
  const [saved, setSaved] = useState('');
  useEffect(() => {
    if (loaded.data) setPolicies(loaded.data.policies);
  }, [loaded.data]);
  const set = (i: number, patch: Partial<RetentionPolicy>) => setPolicies((ps) => ps.map((p, j) => (j === i ? { ...p, ...patch } : p)));
  const num = (i: number, k: 'keep_last' | 'older_than_days' | 'untagged_older_than_days', label: string) => (
    <label>
      {label}
      <input inputMode="numeric" value={policies[i][k] ?? ''} onChange={(e) => set(i, { [k]: numOrNull(e.target.value) })} placeholder="—" />
    </label>
  );
  const str = (i: number, k: 'repositories' | 'include_tags' | 'exclude_tags', label: string) => (
    <label>
      {label}
      <input value={policies[i][k] ?? ''} onChange={(e) => set(i, { [k]: k === 'repositories' ? e.target.value : e.target.value || null })} placeholder={k === 'repositories' ? '*' : 'regular expression'} />
    </label>
  );
  return (
    <div className="card">
      <h2>Retention policies</h2>
      <p className="hint">Tags beyond the newest <em>keep last</em>, or older than the given days, are deleted when retention runs (and with garbage collection's “apply retention”). Preview first.</p>
      <ErrorNote error={loaded.error} what="Loading the retention policies" />
      {policies.length === 0 && loaded.data ? <p className="empty">No policy: nothing is deleted automatically.</p> : null}
      {policies.map((_, i) => (
        <fieldset key={i} className="policy">
          <legend>Policy {i + 1}</legend>
          <div className="grid">
            {str(i, 'repositories', 'Repositories (glob)')}
            {num(i, 'keep_last', 'Keep last N tags')}
            {num(i, 'older_than_days', 'Delete tags older than (days)')}
            {str(i, 'include_tags', 'Only tags matching')}
            {str(i, 'exclude_tags', 'Never tags matching')}
            {num(i, 'untagged_older_than_days', 'Untagged older than (days)')}
          </div>
          <button type="button" className="small" onClick={() => setPolicies((ps) => ps.filter((__, j) => j !== i))}>Remove policy {i + 1}</button>
        </fieldset>
      ))}
      <div className="row">
        <button type="button" onClick={() => setPolicies((ps) => [...ps, emptyPolicy()])}>Add policy</button>
        <button type="button" className="primary" disabled={save.busy} onClick={async () => {
          setSaved('');
          const bad = policies.some((p) => [p.keep_last, p.older_than_days, p.untagged_older_than_days].some((v) => typeof v === 'number' && Number.isNaN(v)));
          if (bad) {
            await save.run(async () => { throw new Error('day and count fields take whole numbers of 0 or more, or nothing'); });
            return;
          }
          if (await save.run(() => call(api.PUT('/api/v1/namespaces/{namespace}/retention', { params: { path: { namespace: ns } }, body: { policies } })))) setSaved('Policies saved.');
        }}>Save policies</button>
        <button type="button" disabled={prev.busy} onClick={() => prev.run(async () => setPlan(await call(api.GET('/api/v1/namespaces/{namespace}/retention/preview', { params: { path: { namespace: ns } } }))))}>Preview</button>
        <span role="status" className="muted">{saved}</span>
      </div>
      <ErrorNote error={save.error} what="Saving the policies" />
      <ErrorNote error={prev.error} what="The preview" />
      {plan ? (
        <div className="preview" data-testid="retention-preview">
          <h3>A run now would delete</h3>
          {plan.tags.length + plan.untagged.length === 0 ? <p>Nothing.</p> : (
            <ul>
              {plan.tags.map((t) => <li key={`${t.repository}:${t.tag}`}>tag <code>{t.repository}:{t.tag}</code></li>)}
              {plan.untagged.map((a) => <li key={a.digest}>untagged <code>{a.repository}@{a.digest.slice(0, 19)}</code></li>)}
            </ul>
          )}
        </div>
      ) : null}
    </div>
  );
}

function Members({ ns }: { ns: string }) {
  const grants = useLoad(() => call(api.GET('/api/v1/namespaces/{namespace}/grants', { params: { path: { namespace: ns } } })), [ns]);
  const [user, setUser] = useState('');
  const [role, setRole] = useState<'reader' | 'writer' | 'admin'>('reader');
  const act = useAction();
  if (grants.error && 'status' in grants.error && (grants.error as { status: number }).status === 403) return null;
  return (
    <div className="card">
      <h2>Members</h2>
      <p className="hint">Readers pull, writers also push and delete, admins also change this namespace and its members.</p>
      <ErrorNote error={grants.error} what="Loading the members" />
      {grants.data && grants.data.grants.length === 0 ? <p className="empty">No member: only registry administrators and tokens reach it.</p> : null}
      {grants.data && grants.data.grants.length > 0 ? (
        <div className="scroll">
          <table>
            <thead><tr><th>User</th><th>Role</th><th className="opt">Granted</th><th><span className="sr">Actions</span></th></tr></thead>
            <tbody>
              {grants.data.grants.map((g) => (
                <tr key={g.user}>
                  <td>{g.user}</td><td>{g.role}</td><td className="opt"><Time at={g.granted_at} /> by {g.granted_by}</td>
                  <td><button type="button" className="small" onClick={() => act.run(async () => {
                    await call(api.DELETE('/api/v1/namespaces/{namespace}/grants/{user}', { params: { path: { namespace: ns, user: g.user } } }));
                    grants.reload();
                  })}>Remove {g.user}</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <form className="row" onSubmit={async (e) => {
        e.preventDefault();
        if (await act.run(() => call(api.PUT('/api/v1/namespaces/{namespace}/grants/{user}', { params: { path: { namespace: ns, user: user.trim() } }, body: { role } })))) {
          setUser('');
          grants.reload();
        }
      }}>
        <input aria-label="User name" placeholder="user name" value={user} onChange={(e) => setUser(e.target.value)} required />
        <select aria-label="Role" value={role} onChange={(e) => setRole(e.target.value as 'reader' | 'writer' | 'admin')}>
          <option value="reader">reader</option><option value="writer">writer</option><option value="admin">admin</option>
        </select>
        <button type="submit" disabled={act.busy}>Grant</button>
      </form>
      <ErrorNote error={act.error} what="Changing the members" />
    </div>
  );
}
