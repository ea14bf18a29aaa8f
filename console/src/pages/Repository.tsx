import { useMemo, useState } from 'react';
import { api, call, type Artifact } from '../api/client';
import { Badge, ConfirmDelete, CopyLine, ErrorNote, Link, Loading, Pager, Time, useLoad } from '../components';
import { formatBytes, layerHistory, pageOf, platformLabel, pullByDigest, pullByTag, referrersOf, shortDigest } from '../format';
import { hrefFor, navigate } from '../router';

/**
 * Fields that newer servers add to an artifact; shown when present.
 * (`image_id`: the config digest, as `docker images` shows it;
 * `platform`: of a single-platform image; `created_by` on layers.)
 */
type ArtifactPlus = Artifact & {
  image_id?: string | null;
  config?: { digest?: string } | null;
  platform?: { os: string; architecture: string; variant?: string | null } | null;
};

export function RepositoryPage({ ns, repo }: { ns: string; repo: string }) {
  const detail = useLoad(() => call(api.GET('/api/v1/namespaces/{namespace}/repositories/{repository}', { params: { path: { namespace: ns, repository: repo } } })), [ns, repo]);
  const [tagPage, setTagPage] = useState(1);
  const [artPage, setArtPage] = useState(1);
  const host = location.host;
  const d = detail.data;
  const tags = useMemo(() => [...(d?.tags ?? [])].sort((a, b) => b.pushed_at.localeCompare(a.pushed_at)), [d]);
  const arts = (d?.artifacts ?? []) as ArtifactPlus[];
  // Referrers (signatures, SBOMs) are listed under their subject, not on their own.
  const topLevel = arts.filter((a) => !a.subject || !arts.some((b) => b.digest === a.subject));
  const tp = pageOf(tags, tagPage, 20);
  const ap = pageOf(topLevel, artPage, 10);
  const deleteTag = async (tag: string) => {
    await call(api.DELETE('/api/v1/namespaces/{namespace}/repositories/{repository}/tags/{tag}', { params: { path: { namespace: ns, repository: repo, tag } } }));
    detail.reload();
  };
  return (
    <section>
      <p className="crumbs"><Link href="/">Namespaces</Link> / <Link href={hrefFor({ page: 'namespace', ns })}>{ns}</Link> / <span>{repo.slice(ns.length + 1) || repo}</span></p>
      <ErrorNote error={detail.error} what={`Loading repository ${repo}`} />
      {detail.loading && !d ? <Loading what="the repository" /> : null}
      {d ? (
        <>
          <div className="head"><h1>{d.repository.name}</h1></div>
          <dl className="facts">
            <div><dt>Size</dt><dd data-testid="repo-size">{formatBytes(d.repository.size)}</dd></div>
            <div><dt>Tags</dt><dd>{d.repository.tag_count}</dd></div>
            <div><dt>Artifacts</dt><dd>{d.repository.artifact_count}</dd></div>
            <div><dt>Last push</dt><dd><Time at={d.repository.last_push} /></dd></div>
            <div><dt>Last pull</dt><dd><Time at={d.repository.last_pull} /></dd></div>
          </dl>
          <div className="card">
            <h2>Tags</h2>
            {tags.length === 0 ? <p className="empty">No tag. Untagged artifacts are listed below, by digest.</p> : (
              <div className="scroll">
                <table>
                  <thead><tr><th>Tag</th><th>Pull command</th><th className="opt">Digest</th><th className="opt">Pushed</th><th><span className="sr">Actions</span></th></tr></thead>
                  <tbody>
                    {tp.rows.map((t) => (
                      <tr key={t.name} data-testid={`tag-${t.name}`}>
                        <td><strong>{t.name}</strong></td>
                        <td><CopyLine text={pullByTag(host, d.repository.name, t.name)} testId={`pull-${t.name}`} /></td>
                        <td className="opt"><code title={t.digest}>{shortDigest(t.digest)}</code></td>
                        <td className="opt"><Time at={t.pushed_at} /></td>
                        <td><ConfirmDelete name={t.name} what="tag" label="Delete" consequence="Only the tag goes; the artifact stays, reachable by digest." onConfirm={() => deleteTag(t.name)} /></td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <Pager page={tp.page} pages={tp.pages} total={tags.length} onPage={setTagPage} noun="tags" />
          </div>
          <h2>Artifacts</h2>
          {topLevel.length === 0 ? <p className="empty">No artifact.</p> : null}
          {ap.rows.map((a) => (
            <ArtifactCard key={a.digest} a={a} all={arts} repo={d.repository.name} host={host} onDelete={async () => {
              await call(api.DELETE('/api/v1/namespaces/{namespace}/repositories/{repository}/artifacts/{digest}', { params: { path: { namespace: ns, repository: repo, digest: a.digest } } }));
              detail.reload();
            }} />
          ))}
          <Pager page={ap.page} pages={ap.pages} total={topLevel.length} onPage={setArtPage} noun="artifacts" />
          <div className="card dangerzone">
            <h2>Delete this repository</h2>
            <ConfirmDelete name={d.repository.name} what="repository" consequence="All its tags and artifacts are deleted; unreferenced layers are reclaimed by garbage collection." onConfirm={async () => {
              await call(api.DELETE('/api/v1/namespaces/{namespace}/repositories/{repository}', { params: { path: { namespace: ns, repository: repo } } }));
              navigate(hrefFor({ page: 'namespace', ns }));
            }} />
          </div>
        </>
      ) : null}
    </section>
  );
}

function kindOf(a: Artifact): string {
  const t = a.artifact_type ?? '';
  if (t.includes('cosign') || t.includes('signature')) return 'signature';
  if (t.includes('spdx') || t.includes('cyclonedx') || t.includes('sbom')) return 'SBOM';
  if (t.includes('in-toto') || t.includes('attestation')) return 'attestation';
  if (a.media_type.includes('index') || a.media_type.includes('manifest.list')) return 'index';
  if (t.includes('image.config') || t.includes('container.image')) return 'image';
  return t ? t : 'image';
}

function ArtifactCard({ a, all, repo, host, onDelete }: { a: ArtifactPlus; all: ArtifactPlus[]; repo: string; host: string; onDelete: () => Promise<void> }) {
  const refs = referrersOf(all, a.digest);
  const imageId = a.image_id ?? a.config?.digest ?? undefined;
  const platforms = a.platform ? [a.platform, ...a.platforms] : a.platforms;
  const history = a.layers.some((l) => layerHistory(l as Record<string, unknown>) !== undefined);
  return (
    <article className="card artifact" aria-label={`Artifact ${shortDigest(a.digest)}`}>
      <div className="head">
        <h3><code>{shortDigest(a.digest)}</code> <Badge kind="plain">{kindOf(a)}</Badge></h3>
        <div className="row">{a.tags.map((t) => <Badge key={t} kind="info">{t}</Badge>)}</div>
      </div>
      <dl className="facts">
        <div><dt>Size</dt><dd>{formatBytes(a.size)}</dd></div>
        <div><dt>Pushed</dt><dd><Time at={a.pushed_at} /></dd></div>
        <div><dt>Last pull</dt><dd><Time at={a.last_pull} /></dd></div>
        {platforms.length > 0 ? <div><dt>Platforms</dt><dd>{platforms.map(platformLabel).join(', ')}</dd></div> : null}
      </dl>
      <p className="label">Digest</p>
      <CopyLine text={a.digest} />
      {imageId ? <><p className="label">Image ID</p><CopyLine text={imageId} /></> : null}
      <p className="label">Pull by digest</p>
      <CopyLine text={pullByDigest(host, repo, a.digest)} />
      <p className="muted small">{a.media_type}{a.artifact_type ? ` · ${a.artifact_type}` : ''}</p>
      {a.layers.length > 0 ? (
        <details>
          <summary>Layers ({a.layers.length})</summary>
          <div className="scroll">
            <table>
              <thead><tr><th>#</th><th>Digest</th><th className="num">Size</th>{history ? <th>Created by</th> : null}<th className="opt">Media type</th></tr></thead>
              <tbody>
                {a.layers.map((l, i) => (
                  <tr key={`${l.digest}-${i}`}>
                    <td>{i}</td>
                    <td><code title={l.digest}>{shortDigest(l.digest)}</code></td>
                    <td className="num">{formatBytes(l.size)}</td>
                    {history ? <td className="history">{layerHistory(l as Record<string, unknown>) ?? <span className="muted">—</span>}</td> : null}
                    <td className="opt small">{l.media_type}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      ) : null}
      {refs.length > 0 ? (
        <div>
          <p className="label">Referrers</p>
          <ul className="refs">
            {refs.map((r) => <li key={r.digest}><Badge kind="plain">{kindOf(r)}</Badge> <code title={r.digest}>{shortDigest(r.digest)}</code> · {formatBytes(r.size)} · <Time at={r.pushed_at} /></li>)}
          </ul>
        </div>
      ) : null}
      <div className="row">
        <ConfirmDelete name={shortDigest(a.digest)} what="artifact" consequence={`The artifact ${a.digest} and every tag pointing at it (${a.tags.join(', ') || 'none'}) are deleted.`} onConfirm={onDelete} />
      </div>
    </article>
  );
}
