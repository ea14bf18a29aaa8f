import { useMemo } from 'react';
import { usageHistory, type UsageSample } from '../api/client';
import { ErrorNote, Link, Loading, useLoad } from '../components';
import { allNamespaces } from '../data';
import { formatBytes, sortBy, usageSeries } from '../format';
import { hrefFor } from '../router';

/** Size per namespace now, largest first, as a bar chart (SVG, no script-generated styles). */
export function Storage() {
  const list = useLoad(allNamespaces, []);
  const history = useLoad(usageHistory, []);
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
      <div className="card">
        <h2>Over time</h2>
        <p className="hint">From a sample of every namespace's size that the registry records once a day (UTC); the last point is now.</p>
        <ErrorNote error={history.error} what="Loading the usage history" />
        {history.data ? <HistoryChart samples={withToday(history.data, list.data)} /> : null}
      </div>
    </section>
  );
}

/** The recorded days, with today's point taken from the live sizes (fresher than the day's sample). */
function withToday(samples: UsageSample[], now: { name: string; size: number }[] | undefined): UsageSample[] {
  if (!now) return samples;
  const today = new Date().toISOString().slice(0, 10);
  const live: UsageSample = { date: today, namespaces: Object.fromEntries(now.map((n) => [n.name, n.size])) };
  return [...samples.filter((s) => s.date < today), live];
}

const COLORS = ['#1769c2', '#d9480f', '#2b8a3e', '#862e9c', '#e8590c', '#5c7080'];

function HistoryChart({ samples }: { samples: UsageSample[] }) {
  const { names, dates, values } = useMemo(() => usageSeries(samples, 5), [samples]);
  if (dates.length === 0) return <p className="empty">No sample yet: the first is recorded when the server starts.</p>;
  const W = 800;
  const H = 240;
  const L = 70;
  const B = 24;
  const max = Math.max(1, ...values.flat());
  const x = (i: number) => L + (dates.length === 1 ? (W - L) / 2 : (i * (W - L - 10)) / (dates.length - 1));
  const y = (v: number) => H - B - (v / max) * (H - B - 10);
  return (
    <figure className="chart" data-testid="usage-chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Size per namespace from ${dates[0]} to ${dates[dates.length - 1]}`}>
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={L} x2={W} y1={y(max * f)} y2={y(max * f)} className="grid-line" />
            <text x={L - 6} y={y(max * f) + 4} textAnchor="end" className="axis">{formatBytes(Math.round(max * f))}</text>
          </g>
        ))}
        <text x={x(0)} y={H - 6} textAnchor={dates.length === 1 ? 'middle' : 'start'} className="axis">{dates[0]}</text>
        {dates.length > 1 ? <text x={x(dates.length - 1)} y={H - 6} textAnchor="end" className="axis">{dates[dates.length - 1]}</text> : null}
        {values.map((vs, k) => (
          <g key={names[k]}>
            {vs.length > 1 ? <polyline fill="none" stroke={COLORS[k % COLORS.length]} strokeWidth="2.5" points={vs.map((v, i) => `${x(i)},${y(v)}`).join(' ')} /> : null}
            {vs.map((v, i) => <circle key={i} cx={x(i)} cy={y(v)} r="3.5" fill={COLORS[k % COLORS.length]} />)}
          </g>
        ))}
      </svg>
      <figcaption className="legend">
        {names.map((n, k) => (
          <span key={n}><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" rx="2" fill={COLORS[k % COLORS.length]} /></svg> {n} · {formatBytes(values[k][values[k].length - 1])}</span>
        ))}
      </figcaption>
      <details>
        <summary>As a table</summary>
        <div className="scroll">
          <table>
            <thead><tr><th>Date</th>{names.map((n) => <th key={n} className="num">{n}</th>)}</tr></thead>
            <tbody>{dates.map((d, i) => <tr key={d}><td>{d}</td>{values.map((vs, k) => <td key={names[k]} className="num">{formatBytes(vs[i])}</td>)}</tr>)}</tbody>
          </table>
        </div>
      </details>
    </figure>
  );
}
