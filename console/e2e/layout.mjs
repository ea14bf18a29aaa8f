// Writes a small OCI image layout (two single-layer images, tags `1.0` and
// `old`) without any container tool, for skopeo to push.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const sha = (b) => createHash('sha256').update(b).digest('hex');

/** A one-file ustar archive. */
export function tar(name, content) {
  const data = Buffer.from(content);
  const h = Buffer.alloc(512);
  const put = (s, off, len) => h.write(s.slice(0, len), off, 'ascii');
  const oct = (n, len) => `${n.toString(8).padStart(len - 1, '0')}\0`;
  put(name, 0, 100);
  put(oct(0o644, 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(data.length, 12), 124, 12);
  put(oct(1_700_000_000, 12), 136, 12);
  h.fill(0x20, 148, 156);
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, data, pad, Buffer.alloc(1024)]);
}

function blob(dir, bytes) {
  const d = sha(bytes);
  writeFileSync(join(dir, 'blobs', 'sha256', d), bytes);
  return { digest: `sha256:${d}`, size: bytes.length };
}

/** Writes the layout at `dir`; returns each tag's manifest digest and total size. */
export function writeLayout(dir, images) {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const manifests = [];
  const out = {};
  for (const { tag, file, content, createdBy } of images) {
    const raw = tar(file, content);
    // Fixed gzip header time (zlib writes 0): the same input gives the same digest.
    const layerBytes = gzipSync(raw, { level: 9 });
    const layer = blob(dir, layerBytes);
    const config = blob(dir, Buffer.from(JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: [`/${file}`] },
      rootfs: { type: 'layers', diff_ids: [`sha256:${sha(raw)}`] },
      history: [{ created: '2026-01-01T00:00:00Z', created_by: createdBy }],
    })));
    const manifestBytes = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }));
    const m = blob(dir, manifestBytes);
    manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': tag } });
    out[tag] = { digest: m.digest, size: m.size + config.size + layer.size, configDigest: config.digest };
  }
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
  return out;
}
