//! A dry run of garbage collection: what a real run would delete now,
//! computed without changing anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use berth_oci::{Digest, RepoName};

use super::GcBlob;
use crate::error::Result;
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, BlobRecord, BlobState, LinkRecord, ManifestRecord};
use crate::Registry;

impl Registry {
    /// What a real run would delete, computed on a copy of the counters:
    /// untagged manifests deleted, then unreferenced links, then blobs.
    /// Counters a step changes restart their grace period, as in a real run.
    pub(super) fn simulate(
        &self,
        untagged: &[(RepoName, Digest)],
        grace: Duration,
    ) -> Result<(Vec<GcBlob>, u64)> {
        let now = now_millis();
        let cutoff = now - grace.as_millis() as i64;
        let mut blobs: HashMap<Digest, BlobRecord> = HashMap::new();
        for (k, v) in self.db().scan(Table::Blobs, b"", None, usize::MAX)? {
            if let Some(d) = keys::parse_blob(&k) {
                blobs.insert(d, meta::decode(Table::Blobs, &v)?);
            }
        }
        let mut links: BTreeMap<(RepoName, Digest), LinkRecord> = BTreeMap::new();
        for (k, v) in self.db().scan(Table::Links, b"", None, usize::MAX)? {
            if let Some(link) = keys::parse_link(&k) {
                links.insert(link, meta::decode(Table::Links, &v)?);
            }
        }
        let mut manifests: BTreeSet<(RepoName, Digest)> = BTreeSet::new();
        for (k, _) in self.db().scan(Table::Manifests, b"", None, usize::MAX)? {
            if let Some(m) = keys::parse_manifest(&k) {
                manifests.insert(m);
            }
        }
        let touch = |b: &mut BlobRecord, links: i64, refs: i64| {
            b.links = (b.links as i64 + links).max(0) as u64;
            b.refs = (b.refs as i64 + refs).max(0) as u64;
            b.updated_at = now;
        };
        for (repo, d) in untagged {
            let key = keys::manifest(repo, d);
            let Some(rec) = self
                .db()
                .get_json::<ManifestRecord>(Table::Manifests, &key)?
            else {
                continue;
            };
            for target in rec.references() {
                if self
                    .db()
                    .get(Table::BlobRefs, &keys::blob_ref(&target, repo, d))?
                    .is_some()
                {
                    if let Some(b) = blobs.get_mut(&target) {
                        touch(b, 0, -1);
                    }
                    if let Some(l) = links.get_mut(&(repo.clone(), target.clone())) {
                        l.refs = l.refs.saturating_sub(1);
                        l.touched_at = now;
                    }
                }
            }
            manifests.remove(&(repo.clone(), d.clone()));
            if links.remove(&(repo.clone(), d.clone())).is_some() {
                if let Some(b) = blobs.get_mut(d) {
                    touch(b, -1, 0);
                }
            }
        }
        let unreferenced: Vec<(RepoName, Digest)> = links
            .iter()
            .filter(|(k, l)| {
                l.refs == 0 && l.touched_at.max(l.created_at) <= cutoff && !manifests.contains(k)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (_, d) in unreferenced {
            if let Some(b) = blobs.get_mut(&d) {
                touch(b, -1, 0);
            }
        }
        let (mut gone, mut in_grace) = (Vec::new(), 0);
        for (d, b) in &blobs {
            if b.state == BlobState::Deleting
                || (b.links == 0 && b.refs == 0 && b.updated_at <= cutoff)
            {
                gone.push(GcBlob {
                    digest: d.to_string(),
                    size: b.size,
                });
            } else if b.links == 0 && b.refs == 0 {
                in_grace += 1;
            }
        }
        gone.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok((gone, in_grace))
    }
}
