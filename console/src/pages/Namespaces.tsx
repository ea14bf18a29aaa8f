import { useMemo, useState } from 'react';
import { api, call, type Namespace } from '../api/client';
import { Badge, ErrorNote, Link, Loading, Pager, SortHeader, Time, useAction, useLoad } from '../components';
import { allNamespaces } from '../data';
import { formatBytes, pageOf, sortBy, type SortDir } from '../format';
import { hrefFor, navigate } from '../router';

type Key = 'name' | 'size' | 'image_count' | 'is_public' | 'status' | 'created_at';
const PAGE = 20;

export function statusBadge(status: string) {
  const kind = status === 'ready' ? 'ok' : status === 'deleting' ? 'warn' : status === 'error' ? 'bad' : 'info';
  return <Badge kind={kind}>{status}</Badge>;
}

export function visibilityBadge(isPublic: boolean) {
  return isPublic ? <Badge kind="info">public</Badge> : <Badge kind="plain">private</Badge>;
}

export function Namespaces() {
  const list = useLoad(allNamespaces, []);
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState<{ key: Key; dir: SortDir }>({ key: 'name', dir: 'asc' });
  const [page, setPage] = useState(1);
  const rows = useMemo(() => {
    const f = filter.trim().toLowerCase();
    const items = (list.data ?? []).filter((n) => !f || n.name.includes(f) || n.description.toLowerCase().includes(f));
    return sortBy(items, (n: Namespace) => (sort.key === 'is_public' ? (n.is_public ? 1 : 0) : n[sort.key]), sort.dir);
  }, [list.data, filter, sort]);
  const p = pageOf(rows, page, PAGE);
  const onSort = (s: { key: Key; dir: SortDir }) => {
    setSort(s);
    setPage(1);
  };
  return (
    <section>
      <div className="head">
        <h1>Namespaces</h1>
        <CreateNamespace onCreated={(name) => navigate(hrefFor({ page: 'namespace', ns: name }))} />
      </div>
      <p className="hint">Repositories appear after the first push to a namespace: <code>docker push {location.host}/NAMESPACE/REPO:TAG</code>.</p>
      <div className="toolbar">
        <label htmlFor="ns-filter">Filter</label>
        <input id="ns-filter" type="search" placeholder="name or description" value={filter} onChange={(e) => { setFilter(e.target.value); setPage(1); }} />
      </div>
      <ErrorNote error={list.error} what="Loading the namespaces" />
      {list.loading && !list.data ? <Loading what="namespaces" /> : null}
      {list.data ? (
        rows.length === 0 ? (
          <p className="empty">{filter ? 'No namespace matches the filter.' : 'No namespace yet. Create one, or push an image: the first push creates it.'}</p>
        ) : (
          <div className="scroll">
            <table>
              <thead>
                <tr>
                  <SortHeader k="name" label="Name" sort={sort} onSort={onSort} />
                  <SortHeader k="size" label="Size" sort={sort} onSort={onSort} className="num" />
                  <SortHeader k="image_count" label="Images" sort={sort} onSort={onSort} className="num" />
                  <SortHeader k="is_public" label="Visibility" sort={sort} onSort={onSort} />
                  <SortHeader k="status" label="Status" sort={sort} onSort={onSort} />
                  <SortHeader k="created_at" label="Created" sort={sort} onSort={onSort} className="opt" />
                </tr>
              </thead>
              <tbody>
                {p.rows.map((n) => (
                  <tr key={n.id}>
                    <td>
                      <Link href={hrefFor({ page: 'namespace', ns: n.name })}>{n.name}</Link>
                      {n.description ? <div className="sub">{n.description}</div> : null}
                    </td>
                    <td className="num">{formatBytes(n.size)}</td>
                    <td className="num">{n.image_count}</td>
                    <td>{visibilityBadge(n.is_public)}</td>
                    <td>{statusBadge(n.status)}{n.status_message ? <div className="sub">{n.status_message}</div> : null}</td>
                    <td className="opt"><Time at={n.created_at} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : null}
      <Pager page={p.page} pages={p.pages} total={rows.length} onPage={setPage} noun="namespaces" />
    </section>
  );
}

function CreateNamespace({ onCreated }: { onCreated: (name: string) => void }) {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [isPublic, setPublic] = useState(false);
  const act = useAction();
  if (!open) return <button type="button" className="primary" onClick={() => setOpen(true)}>New namespace</button>;
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const n = name.trim();
    if (await act.run(() => call(api.POST('/api/v1/namespaces', { body: { name: n, description, is_public: isPublic } })))) onCreated(n);
  };
  return (
    <form className="card inline-form" onSubmit={submit} aria-label="New namespace">
      <label htmlFor="new-ns-name">Name</label>
      <input id="new-ns-name" value={name} onChange={(e) => setName(e.target.value)} required pattern="[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*" title="lower-case letters and digits, separated by . _ __ or -" autoFocus />
      <label htmlFor="new-ns-desc">Description</label>
      <input id="new-ns-desc" value={description} onChange={(e) => setDescription(e.target.value)} />
      <label className="check"><input type="checkbox" checked={isPublic} onChange={(e) => setPublic(e.target.checked)} /> Public (anyone may pull without signing in)</label>
      <ErrorNote error={act.error} what="Creating the namespace" />
      <div className="row">
        <button type="submit" className="primary" disabled={act.busy}>Create</button>
        <button type="button" onClick={() => setOpen(false)}>Cancel</button>
      </div>
    </form>
  );
}
