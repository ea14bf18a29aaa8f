//! Metadata records, serialised as JSON values in the tables drawn in
//! `crate::layout`. New fields must be `#[serde(default)]` so that older
//! databases keep opening.

use std::collections::{BTreeMap, BTreeSet};

use berth_oci::{Digest, ImageDetails, ManifestKind, Platform};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub(crate) fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A namespace: the first component of repository names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// Stable id (UUID).
    pub id: String,
    /// When it was created.
    pub created_at: Millis,
    /// Last change.
    #[serde(default)]
    pub updated_at: Millis,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Owner's project id, free text.
    #[serde(default)]
    pub project_id: String,
    /// Anonymous pull allowed.
    #[serde(default)]
    pub is_public: bool,
    /// Lifecycle state.
    #[serde(default)]
    pub status: NamespaceStatus,
    /// Why the status is what it is (errors), empty otherwise.
    #[serde(default)]
    pub status_message: String,
}

/// Lifecycle of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum NamespaceStatus {
    /// In use.
    #[default]
    Ready,
    /// Being deleted: its repositories are already invisible.
    Deleting,
    /// Something failed; see `status_message`.
    Error,
    /// Read-only.
    Locked,
}

impl NamespaceStatus {
    /// Lower-case name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceStatus::Ready => "ready",
            NamespaceStatus::Deleting => "deleting",
            NamespaceStatus::Error => "error",
            NamespaceStatus::Locked => "locked",
        }
    }
}

/// A repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoRecord {
    /// When the first push created it.
    pub created_at: Millis,
    /// Last manifest or blob push.
    #[serde(default)]
    pub last_push: Option<Millis>,
    /// Last pull (batched, may lag a few seconds).
    #[serde(default)]
    pub last_pull: Option<Millis>,
    /// Being deleted: hidden everywhere while its rows are purged, and the
    /// purge resumes after a restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
    /// Changes, to a new random value, in every transaction that adds,
    /// moves or removes a tag of the repository; a listing cached under
    /// one version is current while the record still holds it, on every
    /// process that shares the metadata. Random rather than counted, so a
    /// repository deleted and pushed again never repeats an old version.
    #[serde(default)]
    pub tags_version: u64,
}

/// A blob whose bytes are stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobRecord {
    /// Size in bytes.
    pub size: u64,
    /// When the bytes were first stored.
    pub created_at: Millis,
    /// Repositories linking it (rows in `links`).
    #[serde(default)]
    pub links: u64,
    /// Manifests referencing it (rows in `blob_refs`).
    #[serde(default)]
    pub refs: u64,
    /// Last change of `links` or `refs`: the grace period runs from here.
    #[serde(default)]
    pub updated_at: Millis,
    /// Live, or being deleted by garbage collection.
    #[serde(default)]
    pub state: BlobState,
}

impl BlobRecord {
    /// A freshly stored blob, not yet linked or referenced.
    pub fn new(size: u64) -> BlobRecord {
        let now = now_millis();
        BlobRecord {
            size,
            created_at: now,
            links: 0,
            refs: 0,
            updated_at: now,
            state: BlobState::Live,
        }
    }
}

/// Garbage-collection state of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobState {
    /// Stored and usable.
    #[default]
    Live,
    /// Garbage collection decided to delete it: nothing may link or
    /// reference it any more; a push that needs it uploads it again.
    Deleting,
}

/// A repository's right to serve a blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRecord {
    /// When linked.
    pub created_at: Millis,
    /// Last push that linked it again.
    #[serde(default)]
    pub touched_at: Millis,
    /// Manifests of the repository that reference the blob. A link no
    /// manifest references is removed by garbage collection after the
    /// grace period.
    #[serde(default)]
    pub refs: u64,
}

/// A manifest in a repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// Media type, as pushed.
    pub media_type: String,
    /// Image, index or other.
    pub kind: ManifestKind,
    /// Size of the manifest bytes.
    pub size: u64,
    /// `artifactType`, or the config media type.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// The subject, for referrers.
    #[serde(default)]
    pub subject: Option<Digest>,
    /// Config blob (images).
    #[serde(default)]
    pub config: Option<BlobRef>,
    /// Layer blobs (images), foreign layers included.
    #[serde(default)]
    pub layers: Vec<BlobRef>,
    /// Child manifests (indexes) with their platforms.
    #[serde(default)]
    pub children: Vec<(Digest, Option<Platform>)>,
    /// Top-level annotations.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// When pushed.
    pub pushed_at: Millis,
    /// Last pull (batched).
    #[serde(default)]
    pub last_pull: Option<Millis>,
    /// Tags set to this manifest, kept in the same transactions as the tag
    /// rows, so that deleting the manifest finds, inside its transaction,
    /// every tag a concurrent push gave it. A hint: the tag rows are the
    /// truth (each is checked before it is dropped), and a database written
    /// by a version without this field is covered by a scan of the tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Platform and history from the image configuration, read at push
    /// (images whose config is an OCI or Docker image config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageDetails>,
}

impl ManifestRecord {
    /// The digests the manifest references: config, layers, index
    /// children (what its `blob_refs` rows name).
    pub(crate) fn references(&self) -> BTreeSet<Digest> {
        self.config
            .iter()
            .chain(self.layers.iter())
            .map(|b| b.digest.clone())
            .chain(self.children.iter().map(|(d, _)| d.clone()))
            .collect()
    }
}

/// A blob as a manifest references it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Digest.
    pub digest: Digest,
    /// Media type given in the manifest.
    pub media_type: String,
    /// Size given in the manifest.
    pub size: u64,
    /// Annotations given in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TagRecord {
    /// What it points to.
    pub digest: Digest,
    /// When it was last set.
    pub pushed_at: Millis,
}

/// An upload session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The repository it was started in.
    pub repo: String,
    /// Sizes of the chunks stored so far, in order.
    pub parts: Vec<u64>,
    /// A random tag per chunk, part of its object's name, so that two
    /// replicas writing the same chunk of one session (a client retrying
    /// on another replica) never write the same object; the one whose
    /// record loses the race deletes only its own. Empty in records
    /// written before tags (their objects carry no tag); 0 is no tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_tags: Vec<u32>,
    /// When started.
    pub created_at: Millis,
    /// Last chunk.
    pub updated_at: Millis,
}

impl UploadRecord {
    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.parts.iter().sum()
    }
}
