import { useState } from 'react';
import { api, call } from '../api/client';
import { ErrorNote, Loading, Pager, Time, useLoad } from '../components';

const SIZE = 25;

export function Audit() {
  const [page, setPage] = useState(1);
  const log = useLoad(() => call(api.GET('/api/v1/audit', { params: { query: { page, page_size: SIZE } } })), [page]);
  const total = log.data?.total_count ?? 0;
  return (
    <section>
      <h1>Audit log</h1>
      <p className="hint">Every change (pushes, deletes, settings, users, tokens) and every sign-in, newest first.</p>
      <ErrorNote error={log.error} what="Loading the audit log" />
      {log.loading && !log.data ? <Loading what="the audit log" /> : null}
      {log.data && log.data.entries.length === 0 ? <p className="empty">Nothing recorded yet.</p> : null}
      {log.data && log.data.entries.length > 0 ? (
        <div className="scroll">
          <table>
            <thead><tr><th>When</th><th>Who</th><th>Action</th><th>Target</th><th className="opt">From</th><th className="opt">Detail</th></tr></thead>
            <tbody>
              {log.data.entries.map((e, i) => (
                <tr key={`${e.at}-${i}`}>
                  <td><Time at={e.at} /></td><td>{e.actor}</td><td>{e.action}</td><td className="wrap"><code>{e.target}</code></td><td className="opt">{e.address}</td><td className="opt">{e.detail}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager page={page} pages={Math.max(1, Math.ceil(total / SIZE))} total={total} onPage={setPage} noun="entries" />
    </section>
  );
}
