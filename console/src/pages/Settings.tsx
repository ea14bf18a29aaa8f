import { useEffect, useState } from 'react';
import { api, call, type GcRun, type RegistrySettings } from '../api/client';
import { Badge, ErrorNote, Loading, Pager, Time, useAction, useLoad } from '../components';
import { formatBytes, looksLikeCidr, parseCidrLines } from '../format';

const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];

export function Settings() {
  const s = useLoad(() => call(api.GET('/api/v1/registry')), []);
  return (
    <section>
      <h1>Registry settings</h1>
      <ErrorNote error={s.error} what="Loading the settings" />
      {s.loading && !s.data ? <Loading what="settings" /> : null}
      {s.data ? <SettingsForm initial={s.data} onSaved={s.reload} /> : null}
      <GarbageCollection />
    </section>
  );
}

function SettingsForm({ initial, onSaved }: { initial: RegistrySettings; onSaved: () => void }) {
  const [name, setName] = useState(initial.name);
  const [region, setRegion] = useState(initial.region);
  const [scheduled, setScheduled] = useState(!!initial.garbage_collection_schedule);
  const [days, setDays] = useState<string[]>(initial.garbage_collection_schedule?.days ?? ['sunday']);
  const [time, setTime] = useState(initial.garbage_collection_schedule?.time ?? '03:00');
  const [allow, setAllow] = useState(initial.api_subnet_allow_list.join('\n'));
  const [scan, setScan] = useState(initial.features.vulnerability_scanning.enabled);
  const [saved, setSaved] = useState('');
  const act = useAction();
  useEffect(() => setSaved(''), [name, region, scheduled, days, time, allow, scan]);
  const cidrs = parseCidrLines(allow);
  const bad = cidrs.filter((c) => !looksLikeCidr(c));
  const newlyRestricting = cidrs.length > 0;
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (newlyRestricting && initial.api_subnet_allow_list.join('\n') !== cidrs.join('\n')) {
      const ok = window.confirm(`Only clients from ${cidrs.join(', ')} will reach the registry, this console included. If your own address is not in the list you lock yourself out, and only a restart with an edited database brings you back. Save?`);
      if (!ok) return;
    }
    if (await act.run(() => call(api.PATCH('/api/v1/registry', {
      body: {
        name,
        region,
        garbage_collection_schedule: scheduled ? { days, time } : null,
        api_subnet_allow_list: cidrs,
        features: { vulnerability_scanning: { enabled: scan } },
      },
    })))) {
      setSaved('Settings saved.');
      onSaved();
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="reg-settings">
      <h2 id="reg-settings">General</h2>
      <div className="grid">
        <label>Registry name<input value={name} onChange={(e) => setName(e.target.value)} /></label>
        <label>Region<input value={region} onChange={(e) => setRegion(e.target.value)} /></label>
      </div>
      <fieldset>
        <legend>Garbage-collection schedule</legend>
        <label className="check"><input type="checkbox" checked={scheduled} onChange={(e) => setScheduled(e.target.checked)} /> Run garbage collection on a schedule</label>
        {scheduled ? (
          <>
            <div className="days" role="group" aria-label="Days">
              {DAYS.map((d) => (
                <label key={d} className="check"><input type="checkbox" checked={days.includes(d)} onChange={(e) => setDays((ds) => (e.target.checked ? [...ds, d] : ds.filter((x) => x !== d)))} /> {d.slice(0, 3)}</label>
              ))}
            </div>
            <label>Time (UTC, HH:MM)<input value={time} onChange={(e) => setTime(e.target.value)} pattern="[0-2][0-9]:[0-5][0-9]" /></label>
          </>
        ) : null}
      </fieldset>
      <fieldset>
        <legend>Subnet allow-list</legend>
        <label htmlFor="allow">CIDRs allowed to reach the registry, one per line (IPv4 or IPv6, at most 25). Empty: every address.</label>
        <textarea id="allow" rows={4} value={allow} onChange={(e) => setAllow(e.target.value)} spellCheck={false} placeholder={'10.0.0.0/8\n2001:db8::/32'} />
        {newlyRestricting ? (
          <p className="warning" role="note">
            <strong>Lock-out warning:</strong> the list applies to the registry API, pulls, pushes and this console. Make sure the address you are using now is inside one of these ranges before saving.
          </p>
        ) : null}
        {bad.length > 0 ? <p className="error" role="alert">Not a CIDR: {bad.join(', ')}</p> : null}
      </fieldset>
      <fieldset>
        <legend>Features</legend>
        <label className="check"><input type="checkbox" checked={scan} onChange={(e) => setScan(e.target.checked)} /> Vulnerability scanning</label>
      </fieldset>
      <ErrorNote error={act.error} what="Saving the settings" />
      <div className="row">
        <button type="submit" className="primary" disabled={act.busy || bad.length > 0}>Save settings</button>
        <span role="status" className="muted">{saved}</span>
      </div>
    </form>
  );
}

function GarbageCollection() {
  const [page, setPage] = useState(1);
  const runs = useLoad(() => call(api.GET('/api/v1/gc/runs', { params: { query: { page, page_size: 10 } } })), [page]);
  const [dryRun, setDryRun] = useState(true);
  const [untagged, setUntagged] = useState(false);
  const [retention, setRetention] = useState(false);
  const act = useAction();
  const running = runs.data?.runs.some((r) => r.status === 'running' || r.status === 'queued');
  useEffect(() => {
    if (!running) return;
    const t = setTimeout(runs.reload, 1000);
    return () => clearTimeout(t);
  }, [running, runs.data, runs.reload]);
  const total = runs.data?.total_count ?? 0;
  return (
    <div className="card">
      <h2>Garbage collection</h2>
      <p className="hint">Removes layers no manifest references (after the grace period) and expired uploads. A dry run reports what would go and deletes nothing.</p>
      <div className="row">
        <label className="check"><input type="checkbox" checked={dryRun} onChange={(e) => setDryRun(e.target.checked)} /> Dry run</label>
        <label className="check"><input type="checkbox" checked={untagged} onChange={(e) => setUntagged(e.target.checked)} /> Delete untagged artifacts</label>
        <label className="check"><input type="checkbox" checked={retention} onChange={(e) => setRetention(e.target.checked)} /> Apply retention policies</label>
        <button type="button" className="primary" disabled={act.busy} onClick={async () => {
          if (await act.run(() => call(api.POST('/api/v1/gc', { body: { dry_run: dryRun, delete_untagged: untagged, apply_retention: retention } })))) {
            setPage(1);
            runs.reload();
          }
        }}>Run now</button>
      </div>
      <ErrorNote error={act.error} what="Starting garbage collection" />
      <ErrorNote error={runs.error} what="Loading the runs" />
      {runs.data && runs.data.runs.length === 0 ? <p className="empty">No run yet.</p> : null}
      {runs.data?.runs.map((r) => <RunReport key={r.id} r={r} />)}
      <Pager page={page} pages={Math.max(1, Math.ceil(total / 10))} total={total} onPage={setPage} noun="runs" />
    </div>
  );
}

function RunReport({ r }: { r: GcRun }) {
  const kind = r.status === 'succeeded' || r.status === 'done' ? 'ok' : r.status === 'failed' ? 'bad' : 'warn';
  return (
    <article className="run" data-testid="gc-run" aria-label={`Garbage-collection run ${r.id}`}>
      <div className="head">
        <h3>
          <Time at={r.started_at} /> <Badge kind={kind}>{r.status}</Badge> {r.dry_run ? <Badge kind="info">dry run</Badge> : null}
        </h3>
        <span className="muted small">{r.trigger} · {r.id.slice(0, 8)}</span>
      </div>
      {r.error ? <p className="error">{r.error}</p> : null}
      {r.report ? (
        <dl className="facts">
          <div><dt>{r.report.dry_run ? 'Blobs that would go' : 'Blobs deleted'}</dt><dd>{r.report.blobs_deleted}</dd></div>
          <div><dt>{r.report.dry_run ? 'Bytes it would free' : 'Bytes freed'}</dt><dd>{formatBytes(r.report.bytes_freed)}</dd></div>
          <div><dt>Manifests</dt><dd>{r.report.manifests_deleted.length}</dd></div>
          <div><dt>In grace period</dt><dd>{r.report.blobs_in_grace}</dd></div>
          <div><dt>Uploads expired</dt><dd>{r.report.uploads_expired}</dd></div>
          <div><dt>Retention</dt><dd>{r.report.retention_deleted.length}</dd></div>
          <div><dt>Took</dt><dd>{r.report.duration_ms} ms</dd></div>
        </dl>
      ) : null}
      {r.report && r.report.manifests_deleted.length > 0 ? (
        <details><summary>Manifests</summary><ul>{r.report.manifests_deleted.map((m) => <li key={m}><code>{m}</code></li>)}</ul></details>
      ) : null}
    </article>
  );
}
