//! Retention policies: per namespace, optionally narrowed to repositories by
//! a glob, they say which tags (and untagged artifacts) to delete. A
//! preview computes exactly what a run would delete now; a run deletes
//! exactly what its own preview lists, and garbage collection then
//! reclaims the bytes.

use std::collections::BTreeSet;

use berth_oci::{Digest, ManifestKind, Reference, RepoName, Tag};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::namespaces::validate_namespace_name;
use crate::records::{now_millis, Millis};
use crate::Registry;

/// One retention rule. Persisted: read leniently (unknown fields ignored,
/// missing ones defaulted), like every stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionPolicy {
    /// Repositories it applies to: a glob over the name within the
    /// namespace (`*` any characters, `?` one), default all.
    #[serde(default = "all")]
    pub repositories: String,
    /// Keep this many most recently pushed tags (of those the policy
    /// considers).
    #[serde(default)]
    pub keep_last: Option<u32>,
    /// Delete tags pushed more than this many days ago.
    #[serde(default)]
    pub older_than_days: Option<u32>,
    /// Only consider tags matching this regular expression.
    #[serde(default)]
    pub include_tags: Option<String>,
    /// Never delete tags matching this regular expression.
    #[serde(default)]
    pub exclude_tags: Option<String>,
    /// Delete untagged artifacts pushed more than this many days ago.
    #[serde(default)]
    pub untagged_older_than_days: Option<u32>,
}

fn all() -> String {
    "*".into()
}

impl Default for RetentionPolicy {
    /// Applies to every repository and deletes nothing.
    fn default() -> Self {
        RetentionPolicy {
            repositories: all(),
            keep_last: None,
            older_than_days: None,
            include_tags: None,
            exclude_tags: None,
            untagged_older_than_days: None,
        }
    }
}

/// What a policy deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPlan {
    /// Tags to delete.
    pub tags: Vec<PlannedTag>,
    /// Untagged artifacts to delete.
    pub untagged: Vec<PlannedArtifact>,
}

/// A tag a policy deletes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlannedTag {
    /// Full repository name.
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// What it points at.
    pub digest: Digest,
    /// When it was pushed.
    pub pushed_at: Millis,
}

/// An untagged artifact a policy deletes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlannedArtifact {
    /// Full repository name.
    pub repository: String,
    /// Manifest digest.
    pub digest: Digest,
    /// When it was pushed.
    pub pushed_at: Millis,
}

/// Matches `*` and `?` globs.
fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The pattern a policy's `include_tags` or `exclude_tags` stands for:
/// anchored to the whole tag and bounded in size, so that a hostile
/// pattern cannot make a preview expensive. The server compiles requests
/// with this same function before they are stored.
pub fn tag_pattern(r: &str) -> std::result::Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{r})$"))
        .size_limit(1 << 20)
        .build()
}

/// A stored pattern, compiled; one that no longer compiles (written by
/// hand, or by a binary with another regex engine) is reported as corrupt
/// rather than silently matching nothing.
fn stored_pattern(ns: &str, field: &str, r: &Option<String>) -> Result<Option<regex::Regex>> {
    r.as_deref()
        .map(|r| {
            tag_pattern(r).map_err(|e| Error::Corrupt {
                what: format!("retention policy of namespace {ns}: {field}: {e}"),
            })
        })
        .transpose()
}

const DAY_MS: i64 = 24 * 3600 * 1000;

impl Registry {
    /// The namespace's policies.
    pub async fn retention_policies(&self, ns: &str) -> Result<Vec<RetentionPolicy>> {
        let ns = ns.to_owned();
        self.meta(move |r| r.retention_policies_blocking(&ns)).await
    }

    /// [`Registry::retention_policies`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn retention_policies_blocking(&self, ns: &str) -> Result<Vec<RetentionPolicy>> {
        self.namespace_blocking(ns)?;
        Ok(self
            .db()
            .get_json(Table::Retention, &keys::retention(ns))?
            .unwrap_or_default())
    }

    /// Replaces the namespace's policies (checked by the server: their
    /// number, their fields, their patterns through [`tag_pattern`]).
    pub async fn retention_set(&self, ns: &str, policies: &[RetentionPolicy]) -> Result<()> {
        validate_namespace_name(ns)?;
        self.namespace(ns).await?;
        let (ns_o, policies) = (ns.to_owned(), policies.to_vec());
        self.meta(move |r| {
            r.db().transact(|tx| {
                meta::tx_put(tx, Table::Retention, &keys::retention(&ns_o), &policies)
            })
        })
        .await?;
        self.durable().await
    }

    /// What the namespace's policies would delete now.
    pub async fn retention_preview(&self, ns: &str) -> Result<RetentionPlan> {
        let ns = ns.to_owned();
        self.meta(move |r| r.retention_preview_blocking(&ns)).await
    }

    /// [`Registry::retention_preview`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn retention_preview_blocking(&self, ns: &str) -> Result<RetentionPlan> {
        let policies = self.retention_policies_blocking(ns)?;
        let now = now_millis();
        let mut tags: BTreeSet<PlannedTag> = BTreeSet::new();
        let mut untagged: BTreeSet<PlannedArtifact> = BTreeSet::new();
        for repo in self.repositories_blocking(ns)? {
            let name: RepoName = repo.name.parse().map_err(|_| Error::Corrupt {
                what: "repository name".into(),
            })?;
            let relative = repo
                .name
                .strip_prefix(&format!("{ns}/"))
                .unwrap_or(&repo.name);
            let all_tags = self.tag_list_blocking(&name)?;
            for p in &policies {
                if !glob(&p.repositories, relative) && !glob(&p.repositories, &repo.name) {
                    continue;
                }
                let include = stored_pattern(ns, "include_tags", &p.include_tags)?;
                let exclude = stored_pattern(ns, "exclude_tags", &p.exclude_tags)?;
                let mut considered: Vec<_> = all_tags
                    .iter()
                    .filter(|t| include.as_ref().is_none_or(|r| r.is_match(&t.name)))
                    .filter(|t| exclude.as_ref().is_none_or(|r| !r.is_match(&t.name)))
                    .collect();
                if p.keep_last.is_some() || p.older_than_days.is_some() {
                    considered
                        .sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(b.name.cmp(&a.name)));
                    let keep = p.keep_last.map(|k| k as usize).unwrap_or(0);
                    for t in considered.iter().skip(keep) {
                        let old_enough = p
                            .older_than_days
                            .is_none_or(|d| t.pushed_at < now - d as i64 * DAY_MS);
                        if old_enough {
                            tags.insert(PlannedTag {
                                repository: repo.name.clone(),
                                tag: t.name.clone(),
                                digest: t.digest.clone(),
                                pushed_at: t.pushed_at,
                            });
                        }
                    }
                }
                if let Some(days) = p.untagged_older_than_days {
                    let artifacts = self.artifacts_blocking(&name)?;
                    // Children of indexes and referrers belong to what they
                    // hang off; only top-level untagged artifacts go.
                    let children: BTreeSet<Digest> = artifacts
                        .iter()
                        .filter(|a| a.record.kind == ManifestKind::Index)
                        .flat_map(|a| a.record.children.iter().map(|(d, _)| d.clone()))
                        .collect();
                    for a in &artifacts {
                        if a.tags.is_empty()
                            && a.record.subject.is_none()
                            && !children.contains(&a.digest)
                            && a.record.pushed_at < now - days as i64 * DAY_MS
                        {
                            untagged.insert(PlannedArtifact {
                                repository: repo.name.clone(),
                                digest: a.digest.clone(),
                                pushed_at: a.record.pushed_at,
                            });
                        }
                    }
                }
            }
        }
        Ok(RetentionPlan {
            tags: tags.into_iter().collect(),
            untagged: untagged.into_iter().collect(),
        })
    }

    /// Applies the namespace's policies: deletes exactly what
    /// [`Registry::retention_preview`] lists at this moment.
    pub async fn retention_run(&self, ns: &str) -> Result<RetentionPlan> {
        let plan = self.retention_preview(ns).await?;
        for t in &plan.tags {
            let (Ok(repo), Ok(tag)) = (t.repository.parse::<RepoName>(), t.tag.parse::<Tag>())
            else {
                continue;
            };
            match self.manifest_delete(&repo, &Reference::Tag(tag)).await {
                Ok(()) | Err(Error::ManifestUnknown { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for a in &plan.untagged {
            let Ok(repo) = a.repository.parse::<RepoName>() else {
                continue;
            };
            match self
                .manifest_delete(&repo, &Reference::Digest(a.digest.clone()))
                .await
            {
                Ok(()) | Err(Error::ManifestUnknown { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::info!(
            namespace = ns,
            tags = plan.tags.len(),
            untagged = plan.untagged.len(),
            "retention applied"
        );
        Ok(plan)
    }

    /// Applies every namespace's policies (the scheduled run).
    pub async fn retention_run_all(&self) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        for n in self.namespaces().await? {
            if n.record.status != crate::NamespaceStatus::Ready {
                continue;
            }
            let plan = self.retention_run(&n.name).await?;
            gone.extend(
                plan.tags
                    .iter()
                    .map(|t| format!("{}:{}", t.repository, t.tag)),
            );
            gone.extend(
                plan.untagged
                    .iter()
                    .map(|a| format!("{}@{}", a.repository, a.digest)),
            );
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "anything/at/all"));
        assert!(glob("web*", "web-api"));
        assert!(!glob("web*", "api-web"));
        assert!(glob("*/cache", "team/cache"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("**x", "x"));
    }

    #[test]
    fn tag_patterns_match_whole_tags() {
        let p = tag_pattern("v[0-9]+").unwrap();
        assert!(p.is_match("v12"));
        assert!(!p.is_match("xv12"), "anchored at the start");
        assert!(!p.is_match("v12-rc"), "anchored at the end");
        assert!(tag_pattern("v[0-9").is_err());
    }
}
