//! Referrers: the manifests whose `subject` is a given manifest.

use berth_oci::{Descriptor, Digest, RepoName};

use crate::error::Result;
use crate::layout::keys;
use crate::meta::{self, Table};
use crate::Registry;

impl Registry {
    /// Descriptors of the manifests whose subject is `subject`, optionally
    /// only those of one artifact type.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let repo = repo.clone();
        let subject = subject.clone();
        let artifact_type = artifact_type.map(str::to_owned);
        self.meta(move |r| r.referrers_blocking(&repo, &subject, artifact_type.as_deref()))
            .await
    }

    /// [`Registry::referrers`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn referrers_blocking(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let rows = self.db().scan(
            Table::Referrers,
            &keys::referrers_of(repo, subject),
            None,
            usize::MAX,
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (_, v) in rows {
            let d: Descriptor = meta::decode(Table::Referrers, &v)?;
            if artifact_type.is_none() || d.artifact_type.as_deref() == artifact_type {
                out.push(d);
            }
        }
        Ok(out)
    }
}
