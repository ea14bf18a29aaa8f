//! The management plane's view of the store: namespaces, repository and
//! artifact summaries with sizes, deletion of whole repositories and
//! namespaces, registry settings, and batched pull times.
//!
//! Sizes are computed from the link and manifest tables when asked for
//! (one prefix scan per repository), so they are always consistent with
//! what is stored: a repository's size is the sum of the distinct blobs it
//! links (layers shared by several artifacts count once); a namespace's is
//! the sum of the distinct blobs linked by any of its repositories.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use berth_oci::{Digest, ManifestKind, Platform, RepoName};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout;
use crate::meta::{self, MetaDb, MetaDbExt, Table, TxResult, Txn};
use crate::records::{
    now_millis, BlobRecord, BlobRef, ManifestRecord, Millis, NamespaceRecord, NamespaceStatus,
    RepoRecord,
};
use crate::{Registry, TagInfo};

/// A namespace with its derived figures.
#[derive(Debug, Clone)]
pub struct NamespaceInfo {
    /// Name.
    pub name: String,
    /// Stored record.
    pub record: NamespaceRecord,
    /// Number of repositories.
    pub repo_count: u64,
    /// Distinct bytes stored for it.
    pub size: u64,
}

/// A repository in a listing.
#[derive(Debug, Clone)]
pub struct RepoSummary {
    /// Full name, e.g. `acme/web`.
    pub name: String,
    /// Stored record (times).
    pub record: RepoRecord,
    /// Number of tags.
    pub tag_count: u64,
    /// Number of manifests.
    pub artifact_count: u64,
    /// Distinct bytes linked.
    pub size: u64,
    /// Most recently pushed tag.
    pub latest_tag: Option<String>,
}

/// A manifest with its derived figures.
#[derive(Debug, Clone)]
pub struct ArtifactInfo {
    /// Digest.
    pub digest: Digest,
    /// Stored record.
    pub record: ManifestRecord,
    /// Manifest + config + layers (+ children for indexes), distinct bytes.
    pub size: u64,
    /// Tags pointing at it, sorted.
    pub tags: Vec<String>,
    /// Platforms of an index's children.
    pub platforms: Vec<Platform>,
}

/// A repository in detail.
#[derive(Debug, Clone)]
pub struct RepoDetail {
    /// Summary.
    pub summary: RepoSummary,
    /// Tags, in lexical order.
    pub tags: Vec<TagInfo>,
    /// Artifacts, most recently pushed first.
    pub artifacts: Vec<ArtifactInfo>,
}

// Persisted records (these settings, retention policies, every record in
// `crate::records`) are read leniently: a field this binary does not know
// (written by a newer one) is ignored and a missing one (written by an older
// one) takes its default, so upgrades and rollbacks within one database
// format keep opening. Request bodies are strict; they are the server's own
// types.

/// A garbage-collection schedule: days of the week and a UTC time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GcSchedule {
    /// Weekday names, lower case (`monday` ... `sunday`).
    pub days: Vec<String>,
    /// `HH:MM`, UTC.
    pub time: String,
}

/// Registry-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistrySettings {
    /// Display name.
    pub name: String,
    /// Region label reported on namespaces.
    pub region: String,
    /// When garbage collection runs; `None` = never automatically.
    pub garbage_collection_schedule: Option<GcSchedule>,
    /// CIDRs allowed to reach the API; empty = everyone.
    pub api_subnet_allow_list: Vec<String>,
    /// Feature switches.
    pub features: Features,
}

/// Feature switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Features {
    /// Vulnerability scanning (recorded; no scanner yet).
    pub vulnerability_scanning: Toggle,
}

/// An on/off switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Toggle {
    /// On or off.
    pub enabled: bool,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            name: "berth".into(),
            region: "local".into(),
            garbage_collection_schedule: None,
            api_subnet_allow_list: Vec::new(),
            features: Features::default(),
        }
    }
}

/// Most CIDRs an allow-list may hold.
pub const MAX_ALLOW_LIST: usize = 25;
const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The canonical form of a CIDR: a bare address is `/32` (IPv4) or `/128`
/// (IPv6), and host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn normalize_cidr(s: &str) -> Option<String> {
    let (ip, len) = parse_cidr(s)?;
    let net = match ip {
        std::net::IpAddr::V4(a) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            std::net::IpAddr::V4((u32::from(a) & mask).into())
        }
        std::net::IpAddr::V6(a) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            std::net::IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    Some(format!("{net}/{len}"))
}

/// Validates an IPv4 or IPv6 CIDR such as `10.0.0.0/8` or `2001:db8::/32`;
/// a bare address means `/32` or `/128`.
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    if !s.contains('/') {
        let ip: std::net::IpAddr = s.parse().ok()?;
        return Some((ip, if ip.is_ipv4() { 32 } else { 128 }));
    }
    let (ip, len) = s.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

impl RegistrySettings {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.len() > 128 {
            return Err(invalid("name", "must be 1 to 128 characters"));
        }
        if self.region.trim().is_empty() || self.region.len() > 64 {
            return Err(invalid("region", "must be 1 to 64 characters"));
        }
        if let Some(s) = &self.garbage_collection_schedule {
            if s.days.is_empty() {
                return Err(invalid(
                    "garbage_collection_schedule.days",
                    "name at least one weekday",
                ));
            }
            for d in &s.days {
                if !WEEKDAYS.contains(&d.as_str()) {
                    return Err(invalid(
                        "garbage_collection_schedule.days",
                        format!("{d:?} is not one of {}", WEEKDAYS.join(", ")),
                    ));
                }
            }
            let ok = s.time.len() == 5
                && s.time.as_bytes()[2] == b':'
                && s.time[..2].parse::<u8>().is_ok_and(|h| h < 24)
                && s.time[3..].parse::<u8>().is_ok_and(|m| m < 60)
                && s.time
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| i == 2 || b.is_ascii_digit());
            if !ok {
                return Err(invalid(
                    "garbage_collection_schedule.time",
                    format!("{:?} is not HH:MM (UTC, 00:00 to 23:59)", s.time),
                ));
            }
        }
        if self.api_subnet_allow_list.len() > MAX_ALLOW_LIST {
            return Err(invalid(
                "api_subnet_allow_list",
                format!(
                    "at most {MAX_ALLOW_LIST} CIDRs, got {}",
                    self.api_subnet_allow_list.len()
                ),
            ));
        }
        for c in &self.api_subnet_allow_list {
            if parse_cidr(c).is_none() {
                return Err(invalid(
                    "api_subnet_allow_list",
                    format!("{c:?} is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32"),
                ));
            }
        }
        Ok(())
    }
}

/// Validates a namespace name: one component of the repository-name
/// grammar.
pub fn validate_namespace_name(name: &str) -> Result<()> {
    if name.contains('/') || name.parse::<RepoName>().is_err() {
        return Err(invalid(
            "name",
            format!("{name:?} is not a namespace name: lower-case letters and digits, separated by '.', '_', '__' or '-', at most 255 characters"),
        ));
    }
    Ok(())
}

/// Names (namespaces, repositories) being deleted: their content is
/// invisible at once while rows are purged in the background.
#[derive(Default)]
pub(crate) struct Deleting {
    // Why a RwLock: read on every /v2 request, written only when a
    // deletion starts or ends.
    names: RwLock<HashSet<String>>,
}

impl Deleting {
    fn ns_key(ns: &str) -> String {
        format!("ns:{ns}")
    }
    pub(crate) fn repo_key(repo: &str) -> String {
        format!("repo:{repo}")
    }
    pub(crate) fn insert(&self, k: String) {
        self.names
            .write()
            .expect("deleting lock poisoned")
            .insert(k);
    }
    pub(crate) fn remove(&self, k: &str) {
        self.names
            .write()
            .expect("deleting lock poisoned")
            .remove(k);
    }
    pub(crate) fn hides(&self, repo: &RepoName) -> bool {
        let g = self.names.read().expect("deleting lock poisoned");
        Self::hidden_in(&g, repo)
    }

    fn hidden_in(g: &HashSet<String>, repo: &RepoName) -> bool {
        !g.is_empty()
            && (g.contains(&Self::ns_key(repo.namespace()))
                || g.contains(&Self::repo_key(repo.as_str())))
    }

    /// The names hidden now. Take it before reading rows: a deletion that
    /// finishes while the rows are read then cannot leave its rows listed.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot(self.names.read().expect("deleting lock poisoned").clone())
    }
}

/// The names being deleted at one moment.
pub(crate) struct Snapshot(HashSet<String>);

impl Snapshot {
    pub(crate) fn hides(&self, repo: &RepoName) -> bool {
        Deleting::hidden_in(&self.0, repo)
    }
}

/// Pull times waiting to be written: pulls must not turn every GET into a
/// metadata write, so they are gathered here and written every few seconds.
#[derive(Default)]
pub(crate) struct Pulls {
    // Why a Mutex: many request tasks record, one flusher drains; held for
    // an insert or a swap only.
    pending: Mutex<HashMap<(String, Digest), Millis>>,
}

impl Pulls {
    pub(crate) fn record(&self, repo: &RepoName, digest: &Digest) {
        self.pending
            .lock()
            .expect("pulls lock poisoned")
            .insert((repo.to_string(), digest.clone()), now_millis());
    }

    fn take(&self) -> HashMap<(String, Digest), Millis> {
        std::mem::take(&mut *self.pending.lock().expect("pulls lock poisoned"))
    }
}

/// How often pull times are written.
pub(crate) const PULL_FLUSH_SECS: u64 = 2;

fn repos_of_namespace(db: &dyn MetaDb, ns: &str) -> Result<Vec<RepoName>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let rows = db.scan(Table::Repos, ns.as_bytes(), after.as_deref(), 1000)?;
        let Some((last, _)) = rows.last() else { break };
        after = Some(last.clone());
        for (k, _) in &rows {
            if let Ok(name) = std::str::from_utf8(k).unwrap_or("").parse::<RepoName>() {
                if name.namespace() == ns {
                    out.push(name);
                }
            }
        }
    }
    Ok(out)
}

impl Registry {
    pub(crate) fn load_deleting(&self) -> Result<Vec<String>> {
        let mut namespaces = Vec::new();
        for (k, v) in self.meta().scan(Table::Namespaces, b"", None, usize::MAX)? {
            let rec: NamespaceRecord = meta::decode(Table::Namespaces, &v)?;
            if rec.status == NamespaceStatus::Deleting {
                let name = String::from_utf8_lossy(&k).to_string();
                self.inner.deleting.insert(Deleting::ns_key(&name));
                namespaces.push(name);
            }
        }
        Ok(namespaces)
    }

    /// Writes gathered pull times (also called on shutdown).
    pub(crate) fn flush_pulls(&self) -> Result<()> {
        let pending = self.inner.pulls.take();
        if pending.is_empty() {
            return Ok(());
        }
        let mut by_repo: HashMap<&str, Millis> = HashMap::new();
        for ((repo, _), t) in &pending {
            let e = by_repo.entry(repo.as_str()).or_insert(*t);
            *e = (*e).max(*t);
        }
        self.meta().transact(|tx| {
            for (repo, t) in &by_repo {
                if let Some(mut r) = meta::tx_get::<RepoRecord>(tx, Table::Repos, repo.as_bytes())?
                {
                    r.last_pull = Some(*t);
                    meta::tx_put(tx, Table::Repos, repo.as_bytes(), &r)?;
                }
            }
            for ((repo, d), t) in &pending {
                let key = [repo.as_bytes(), b"\0", d.to_string().as_bytes()].concat();
                if let Some(mut m) = meta::tx_get::<ManifestRecord>(tx, Table::Manifests, &key)? {
                    m.last_pull = Some(*t);
                    meta::tx_put(tx, Table::Manifests, &key, &m)?;
                }
            }
            Ok(())
        })
    }

    /// Every namespace with its figures.
    pub fn namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        let rows = self.meta().scan(Table::Namespaces, b"", None, usize::MAX)?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let name = String::from_utf8_lossy(&k).to_string();
            let record: NamespaceRecord = meta::decode(Table::Namespaces, &v)?;
            out.push(self.namespace_figures(name, record)?);
        }
        Ok(out)
    }

    fn namespace_figures(&self, name: String, record: NamespaceRecord) -> Result<NamespaceInfo> {
        let (repo_count, size) = if record.status == NamespaceStatus::Deleting {
            (0, 0)
        } else {
            let repos = repos_of_namespace(self.meta(), &name)?;
            let mut digests = BTreeSet::new();
            for r in &repos {
                digests.extend(self.linked_digests(r)?);
            }
            (repos.len() as u64, self.sum_sizes(&digests)?)
        };
        Ok(NamespaceInfo {
            name,
            record,
            repo_count,
            size,
        })
    }

    /// One namespace.
    pub fn namespace(&self, name: &str) -> Result<NamespaceInfo> {
        let rec: NamespaceRecord = self
            .meta()
            .get_json(Table::Namespaces, name.as_bytes())?
            .ok_or_else(|| Error::NamespaceUnknown { name: name.into() })?;
        self.namespace_figures(name.to_string(), rec)
    }

    /// Creates a namespace.
    pub async fn namespace_create(
        &self,
        name: &str,
        description: &str,
        project_id: &str,
        is_public: bool,
    ) -> Result<NamespaceInfo> {
        validate_namespace_name(name)?;
        let now = now_millis();
        let rec = NamespaceRecord {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: now,
            updated_at: now,
            description: description.to_string(),
            project_id: project_id.to_string(),
            is_public,
            status: NamespaceStatus::Ready,
            status_message: String::new(),
        };
        self.meta().transact(|tx| {
            if tx.get(Table::Namespaces, name.as_bytes())?.is_some() {
                return Err(Error::NamespaceExists { name: name.into() }.into());
            }
            meta::tx_put(tx, Table::Namespaces, name.as_bytes(), &rec)
        })?;
        self.durable().await?;
        self.namespace(name)
    }

    /// Updates a namespace's description and visibility.
    pub async fn namespace_update(
        &self,
        name: &str,
        description: Option<&str>,
        is_public: Option<bool>,
    ) -> Result<NamespaceInfo> {
        self.meta().transact(|tx| {
            let Some(mut rec) =
                meta::tx_get::<NamespaceRecord>(tx, Table::Namespaces, name.as_bytes())?
            else {
                return Err(Error::NamespaceUnknown { name: name.into() }.into());
            };
            if rec.status == NamespaceStatus::Deleting {
                return Err(Error::BeingDeleted {
                    what: format!("namespace {name}"),
                }
                .into());
            }
            if let Some(d) = description {
                rec.description = d.to_string();
            }
            if let Some(p) = is_public {
                rec.is_public = p;
            }
            rec.updated_at = now_millis();
            meta::tx_put(tx, Table::Namespaces, name.as_bytes(), &rec)
        })?;
        self.durable().await?;
        self.namespace(name)
    }

    /// Deletes a namespace: its repositories vanish at once; rows are
    /// purged in the background, then the namespace record goes. Blob bytes
    /// nothing else links are reclaimed by garbage collection.
    pub async fn namespace_delete(&self, name: &str) -> Result<()> {
        self.meta().transact(|tx| {
            let Some(mut rec) =
                meta::tx_get::<NamespaceRecord>(tx, Table::Namespaces, name.as_bytes())?
            else {
                return Err(Error::NamespaceUnknown { name: name.into() }.into());
            };
            rec.status = NamespaceStatus::Deleting;
            rec.status_message = "deletion in progress".into();
            rec.updated_at = now_millis();
            meta::tx_put(tx, Table::Namespaces, name.as_bytes(), &rec)
        })?;
        self.inner.deleting.insert(Deleting::ns_key(name));
        self.durable().await?;
        self.spawn_namespace_purge(name.to_string());
        Ok(())
    }

    pub(crate) fn spawn_namespace_purge(&self, name: String) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.purge_namespace(&name).await {
                tracing::error!(namespace = %name, error = %e, "namespace deletion failed; it will resume on restart");
                let _ = this.meta().transact(|tx| {
                    if let Some(mut rec) =
                        meta::tx_get::<NamespaceRecord>(tx, Table::Namespaces, name.as_bytes())?
                    {
                        rec.status_message = format!("deletion failed: {e}; retried on restart");
                        meta::tx_put(tx, Table::Namespaces, name.as_bytes(), &rec)?;
                    }
                    Ok(())
                });
            }
        });
    }

    async fn purge_namespace(&self, name: &str) -> Result<()> {
        for repo in repos_of_namespace(self.meta(), name)? {
            self.purge_repo_rows(&repo)?;
        }
        self.meta()
            .transact(|tx| tx.delete(Table::Namespaces, name.as_bytes()))?;
        // No await between the record going and the name becoming usable
        // again: a push right after the namespace reads as gone succeeds.
        self.inner.deleting.remove(&Deleting::ns_key(name));
        self.durable().await?;
        tracing::info!(namespace = %name, "namespace deleted");
        Ok(())
    }

    /// Removes every row of a repository, the repository row last.
    pub(crate) fn purge_repo_rows(&self, repo: &RepoName) -> Result<()> {
        let prefix = layout::repo_prefix(repo);
        for table in [
            Table::Tags,
            Table::Referrers,
            Table::Manifests,
            Table::Links,
        ] {
            loop {
                let rows = self.meta().scan(table, &prefix, None, 1000)?;
                if rows.is_empty() {
                    break;
                }
                self.meta().transact(|tx| {
                    for (k, v) in &rows {
                        tx.delete(table, k)?;
                        let digest = std::str::from_utf8(layout::key_suffix(k, repo))
                            .unwrap_or("")
                            .parse::<Digest>();
                        match (table, digest) {
                            (Table::Links, Ok(d)) => {
                                tx.delete(Table::BlobLinks, &layout::blob_link_key(&d, repo))?;
                                crate::blobs::counters::count_in_tx(tx, &d, -1, 0)?;
                            }
                            (Table::Manifests, Ok(d)) => {
                                let rec: ManifestRecord = meta::decode(Table::Manifests, v)?;
                                for target in rec.references() {
                                    crate::blobs::counters::remove_ref_in_tx(
                                        tx, &target, repo, &d,
                                    )?;
                                }
                            }
                            _ => {}
                        }
                    }
                    Ok(())
                })?;
            }
        }
        self.meta()
            .transact(|tx| tx.delete(Table::Repos, repo.as_str().as_bytes()))?;
        Ok(())
    }

    /// Fails with `BeingDeleted` when pushes to `repo` must be refused.
    pub(crate) fn check_writable(&self, repo: &RepoName) -> Result<()> {
        if self.inner.deleting.hides(repo) {
            return Err(Error::BeingDeleted {
                what: format!("namespace {}", repo.namespace()),
            });
        }
        Ok(())
    }

    /// The blobs a repository's artifacts use: its manifests and what they
    /// reference. Links nothing references (uploads not yet in a manifest,
    /// layers of deleted artifacts awaiting garbage collection) do not
    /// count, so deleting an artifact shrinks the sizes at once.
    fn linked_digests(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        let prefix = layout::repo_prefix(repo);
        let rows = self.meta().scan(Table::Links, &prefix, None, usize::MAX)?;
        let manifests: HashSet<Vec<u8>> = self
            .meta()
            .scan(Table::Manifests, &prefix, None, usize::MAX)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in &rows {
            let link: crate::records::LinkRecord = meta::decode(Table::Links, v)?;
            if link.refs == 0 && !manifests.contains(k) {
                continue;
            }
            if let Some(d) = std::str::from_utf8(layout::key_suffix(k, repo))
                .ok()
                .and_then(|s| s.parse().ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn sum_sizes<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) -> Result<u64> {
        let mut total = 0;
        for d in digests {
            if let Some(b) = self
                .meta()
                .get_json::<BlobRecord>(Table::Blobs, d.to_string().as_bytes())?
            {
                total += b.size;
            }
        }
        Ok(total)
    }

    /// Repositories of a namespace.
    pub fn repositories(&self, ns: &str) -> Result<Vec<RepoSummary>> {
        let info = self.namespace(ns)?;
        if info.record.status == NamespaceStatus::Deleting {
            return Ok(Vec::new());
        }
        repos_of_namespace(self.meta(), ns)?
            .iter()
            .filter(|r| !self.inner.deleting.hides(r))
            .map(|r| self.repo_summary(r))
            .collect()
    }

    fn repo_summary(&self, repo: &RepoName) -> Result<RepoSummary> {
        let record: RepoRecord = self
            .meta()
            .get_json(Table::Repos, repo.as_str().as_bytes())?
            .ok_or_else(|| Error::RepoUnknown {
                name: repo.to_string(),
            })?;
        let tags = self.tag_list(repo)?;
        let latest_tag = tags
            .iter()
            .max_by(|a, b| a.pushed_at.cmp(&b.pushed_at).then(a.name.cmp(&b.name)))
            .map(|t| t.name.clone());
        let artifact_count =
            self.meta()
                .count(Table::Manifests, &layout::repo_prefix(repo))? as u64;
        let size = self.sum_sizes(&self.linked_digests(repo)?)?;
        Ok(RepoSummary {
            name: repo.to_string(),
            record,
            tag_count: tags.len() as u64,
            artifact_count,
            size,
            latest_tag,
        })
    }

    /// A repository with its tags and artifacts.
    pub fn repository(&self, repo: &RepoName) -> Result<RepoDetail> {
        if self.inner.deleting.hides(repo) {
            return Err(Error::RepoUnknown {
                name: repo.to_string(),
            });
        }
        let summary = self.repo_summary(repo)?;
        Ok(RepoDetail {
            summary,
            tags: self.tag_list(repo)?,
            artifacts: self.artifacts(repo)?,
        })
    }

    /// Every manifest of a repository with sizes, tags and platforms, most
    /// recently pushed first.
    pub fn artifacts(&self, repo: &RepoName) -> Result<Vec<ArtifactInfo>> {
        let tags = self.tag_list(repo)?;
        let mut tags_by_digest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for t in tags {
            tags_by_digest.entry(t.digest).or_default().push(t.name);
        }
        let rows = self.meta().scan(
            Table::Manifests,
            &layout::repo_prefix(repo),
            None,
            usize::MAX,
        )?;
        let mut records: BTreeMap<Digest, ManifestRecord> = BTreeMap::new();
        for (k, v) in rows {
            if let Ok(d) = std::str::from_utf8(layout::key_suffix(&k, repo))
                .unwrap_or("")
                .parse::<Digest>()
            {
                records.insert(d, meta::decode(Table::Manifests, &v)?);
            }
        }
        let mut out = Vec::with_capacity(records.len());
        for (d, rec) in &records {
            let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
            add_blobs(&mut blobs, d, rec);
            let mut platforms = Vec::new();
            if rec.kind == ManifestKind::Index {
                for (child, platform) in &rec.children {
                    if let Some(c) = records.get(child) {
                        add_blobs(&mut blobs, child, c);
                    }
                    if let Some(p) = platform {
                        platforms.push(p.clone());
                    }
                }
            }
            out.push(ArtifactInfo {
                digest: d.clone(),
                record: rec.clone(),
                size: blobs.values().sum(),
                tags: tags_by_digest.remove(d).unwrap_or_default(),
                platforms,
            });
        }
        out.sort_by(|a, b| {
            b.record
                .pushed_at
                .cmp(&a.record.pushed_at)
                .then(a.digest.cmp(&b.digest))
        });
        Ok(out)
    }
}

fn add_blobs(into: &mut BTreeMap<Digest, u64>, digest: &Digest, rec: &ManifestRecord) {
    into.insert(digest.clone(), rec.size);
    for b in rec.config.iter().chain(rec.layers.iter()) {
        let BlobRef { digest, size, .. } = b;
        into.insert(digest.clone(), *size);
    }
}

/// Settings are one JSON document under this key of the namespaces table's
/// neighbour, the settings row.
const SETTINGS_KEY: &[u8] = b"registry";

impl Registry {
    /// Registry settings (defaults until first changed).
    pub fn settings(&self) -> Result<RegistrySettings> {
        Ok(self
            .meta()
            .get_json(Table::Settings, SETTINGS_KEY)?
            .unwrap_or_default())
    }

    /// Replaces the settings after validating them; allow-list entries are
    /// stored in canonical form (see [`normalize_cidr`]).
    pub async fn settings_put(&self, s: &RegistrySettings) -> Result<()> {
        s.validate()?;
        let mut s = s.clone();
        s.api_subnet_allow_list = s
            .api_subnet_allow_list
            .iter()
            .map(|c| normalize_cidr(c).unwrap_or_else(|| c.clone()))
            .collect();
        let s = &s;
        self.meta().transact(|tx: &dyn Txn| -> TxResult<()> {
            meta::tx_put(tx, Table::Settings, SETTINGS_KEY, s)
        })?;
        self.durable().await
    }
}
