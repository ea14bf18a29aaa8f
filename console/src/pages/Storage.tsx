import { useMemo } from 'react';
import { ErrorNote, Link, Loading, useLoad } from '../components';
import { allNamespaces } from '../data';
import { formatBytes, sortBy } from '../format';
import { hrefFor } from '../router';

/** Size per namespace now, largest first, as a bar chart (SVG, no script-generated styles). */
export function Storage() {
  const list = useLoad(allNamespaces, []);
  const rows = useMemo(() => sortBy(list.data ?? [], (n) => n.size, 'desc'), [list.data]);
  const total = rows.reduce((s, n) => s + n.size, 0);
  const max = Math.max(1, ...rows.map((n) => n.size));
  return (
    <section>
      <h1>Storage</h1>
      <p className="hint">Bytes stored per namespace, counting each layer once per namespace however many images share it. Layers shared across namespaces are stored once on disk, so the registry's disk use can be smaller than the sum.</p>
      <ErrorNote error={list.error} what="Loading the namespaces" />
      {list.loading && !list.data ? <Loading what="storage" /> : null}
      {list.data ? (
        <div className="card">
          <h2>Size per namespace <span className="muted small">· {formatBytes(total)} in {rows.length} namespaces</span></h2>
          {rows.length === 0 ? <p className="empty">Nothing stored yet.</p> : (
            <table className="bars" aria-label="Size per namespace">
              <thead><tr><th>Namespace</th><th>Size</th><th className="opt"><span className="sr">Share</span></th></tr></thead>
              <tbody>
                {rows.map((n) => (
                  <tr key={n.id}>
                    <td><Link href={hrefFor({ page: 'namespace', ns: n.name })}>{n.name}</Link></td>
                    <td className="num">{formatBytes(n.size)}</td>
                    <td className="opt bar-cell">
                      <svg viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label={`${Math.round((n.size / Math.max(1, total)) * 100)}% of the total`}>
                        <rect x="0" y="0" width={Math.max(0.5, (n.size / max) * 100)} height="10" className="bar" />
                      </svg>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      ) : null}
    </section>
  );
}
