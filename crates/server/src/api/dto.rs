//! JSON shapes of the management API. They derive `ToSchema`, so the
//! OpenAPI document is generated from the same types the handlers
//! serialise and cannot drift from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The error body of every failed management request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code: `invalid_argument`, `not_found`, `conflict`,
    /// `method_not_allowed`, `payload_too_large`, `internal`.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// Structured details, e.g. `{"field": "page_size"}`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A namespace.
#[derive(Debug, Serialize, ToSchema)]
pub struct Namespace {
    /// UUID.
    pub id: String,
    /// Name: the first component of its repositories' names.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Owner's project id, free text.
    pub project_id: String,
    /// `ready`, `deleting`, `error` or `locked`.
    pub status: String,
    /// Why the status is what it is.
    pub status_message: String,
    /// `<host>/<name>`: the prefix to tag images with.
    pub endpoint: String,
    /// Whether anonymous pulls are allowed.
    pub is_public: bool,
    /// Bytes stored for it (distinct blobs).
    pub size: u64,
    /// Number of repositories (images).
    pub image_count: u64,
    /// Region label of this registry.
    pub region: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A page of namespaces.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceList {
    /// This page.
    pub namespaces: Vec<Namespace>,
    /// Matching namespaces over all pages.
    pub total_count: u64,
}

/// Body of `POST /api/v1/namespaces`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespace {
    /// Name (lower-case letters, digits, single separators).
    #[schema(
        pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$",
        max_length = 255,
        example = "acme"
    )]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Owner's project id.
    #[serde(default)]
    pub project_id: String,
    /// Allow anonymous pulls.
    #[serde(default)]
    pub is_public: bool,
}

/// Body of `PATCH /api/v1/namespaces/{namespace}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNamespace {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New visibility.
    #[serde(default)]
    pub is_public: Option<bool>,
}

/// A repository in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Repository {
    /// Full name, e.g. `acme/web`.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Number of tags.
    pub tag_count: u64,
    /// Number of artifacts (manifests).
    pub artifact_count: u64,
    /// Distinct bytes stored (layers shared by artifacts count once).
    pub size: u64,
    /// Most recently pushed tag.
    pub latest_tag: Option<String>,
    /// RFC 3339.
    pub last_push: Option<String>,
    /// RFC 3339; may lag a few seconds.
    pub last_pull: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A page of repositories.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryList {
    /// This page.
    pub repositories: Vec<Repository>,
    /// Over all pages.
    pub total_count: u64,
}

/// A repository with its tags, artifacts and sizes.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryDetail {
    /// The summary.
    pub repository: Repository,
    /// Tags, lexical order.
    pub tags: Vec<Tag>,
    /// Artifacts, most recently pushed first.
    pub artifacts: Vec<Artifact>,
    /// Where the bytes are.
    pub size_breakdown: SizeBreakdown,
}

/// Sizes of a repository.
#[derive(Debug, Serialize, ToSchema)]
pub struct SizeBreakdown {
    /// Distinct bytes of the repository.
    pub total: u64,
    /// Per artifact (shared layers counted in each).
    pub artifacts: Vec<ArtifactSize>,
}

/// Size of one artifact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactSize {
    /// Digest.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}

/// A tag.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tag {
    /// Name.
    pub name: String,
    /// Manifest digest.
    pub digest: String,
    /// RFC 3339.
    pub pushed_at: String,
}

/// A page of tags.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagList {
    /// This page.
    pub tags: Vec<Tag>,
    /// Over all pages.
    pub total_count: u64,
}

/// A platform of an index's child.
#[derive(Debug, Serialize, ToSchema)]
pub struct Platform {
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub architecture: String,
    /// CPU variant.
    pub variant: Option<String>,
}

/// A layer (or the config) of an artifact.
#[derive(Debug, Serialize, ToSchema)]
pub struct Layer {
    /// Digest.
    pub digest: String,
    /// Media type.
    pub media_type: String,
    /// Bytes, compressed as stored.
    pub size: u64,
    /// Annotations given in the manifest's descriptor.
    pub annotations: Option<BTreeMap<String, String>>,
    /// The image config's history entry that created this layer (images
    /// with an OCI or Docker image config that records history).
    pub history: Option<History>,
}

/// An image config history entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// When the step ran, as the config says (RFC 3339).
    pub created: Option<String>,
    /// The build step (`RUN ...`, `COPY ...`).
    pub created_by: Option<String>,
    /// Free text.
    pub comment: Option<String>,
}

/// An artifact: a manifest and what it references.
#[derive(Debug, Serialize, ToSchema)]
pub struct Artifact {
    /// Manifest digest.
    pub digest: String,
    /// Manifest media type.
    pub media_type: String,
    /// `artifactType`, or the config media type.
    pub artifact_type: Option<String>,
    /// Manifest + config + layers (+ children for indexes), compressed.
    pub size: u64,
    /// Tags pointing at it.
    pub tags: Vec<String>,
    /// For indexes: each child's platform.
    pub platforms: Vec<Platform>,
    /// Subject digest, for referrers (signatures, SBOMs).
    pub subject: Option<String>,
    /// RFC 3339.
    pub pushed_at: String,
    /// RFC 3339; may lag a few seconds.
    pub last_pull: Option<String>,
    /// The config digest: what `docker images` shows as IMAGE ID (images
    /// only).
    pub image_id: Option<String>,
    /// The config descriptor (images only).
    pub config: Option<Layer>,
    /// Platform from the image config (images with an OCI or Docker image
    /// config).
    pub platform: Option<Platform>,
    /// Layers in order, without the config.
    pub layers: Vec<Layer>,
    /// History entries that created no layer (`empty_layer`: ENV, CMD,
    /// LABEL...), in order.
    pub empty_history: Vec<History>,
}

/// A page of artifacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactList {
    /// This page.
    pub artifacts: Vec<Artifact>,
    /// Over all pages.
    pub total_count: u64,
}

/// Garbage-collection schedule.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GcSchedule {
    /// Weekday names, lower case (`monday` ... `sunday`).
    pub days: Vec<String>,
    /// `HH:MM`, UTC.
    pub time: String,
}

/// A feature switch.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    /// On or off.
    pub enabled: bool,
}

/// Feature switches.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// Vulnerability scanning (recorded; no scanner yet).
    pub vulnerability_scanning: Toggle,
}

/// Registry settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrySettings {
    /// Display name.
    pub name: String,
    /// Region label.
    pub region: String,
    /// When garbage collection runs; null = never automatically.
    pub garbage_collection_schedule: Option<GcSchedule>,
    /// CIDRs (IPv4 and IPv6, at most 25) allowed to reach the API; empty =
    /// everyone.
    pub api_subnet_allow_list: Vec<String>,
    /// Feature switches.
    pub features: Features,
}

/// Body of `PATCH /api/v1/registry`: the fields to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRegistry {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Region label.
    #[serde(default)]
    pub region: Option<String>,
    /// New schedule; `null` turns scheduled collection off.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<GcSchedule>)]
    pub garbage_collection_schedule: Option<Option<GcSchedule>>,
    /// New allow-list (replaces the old one).
    #[serde(default)]
    pub api_subnet_allow_list: Option<Vec<String>>,
    /// New feature switches.
    #[serde(default)]
    pub features: Option<Features>,
    /// Accept an allow-list that shuts out the caller's own address
    /// (otherwise such a change answers 409).
    #[serde(default)]
    pub confirm_lockout: bool,
}

/// Tells "absent" (outer None) from "null" (Some(None)).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `POST /api/v1/gc`.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct StartGc {
    /// Report what would be deleted; delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Also delete manifests no tag reaches.
    #[serde(default)]
    pub delete_untagged: bool,
    /// Apply every namespace's retention policies first.
    #[serde(default)]
    pub apply_retention: bool,
}

/// What a garbage-collection run deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct GcReport {
    /// Nothing was deleted (dry run).
    pub dry_run: bool,
    /// Untagged manifests deleted, `repo@digest`.
    pub manifests_deleted: Vec<String>,
    /// Blobs deleted.
    pub blobs_deleted: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Idle upload sessions removed.
    pub uploads_expired: u64,
    /// Unneeded blobs kept because they changed within the grace period.
    pub blobs_in_grace: u64,
    /// Tags (`repo:tag`) and untagged artifacts (`repo@digest`) removed by
    /// retention policies.
    pub retention_deleted: Vec<String>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// A garbage-collection run.
#[derive(Debug, Serialize, ToSchema)]
pub struct GcRun {
    /// UUID.
    pub id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// `api` or `schedule`.
    pub trigger: String,
    /// Dry run.
    pub dry_run: bool,
    /// Untagged manifests deleted too.
    pub delete_untagged: bool,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, once finished.
    pub finished_at: Option<String>,
    /// The report, once succeeded.
    pub report: Option<GcReport>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A page of runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct GcRunList {
    /// This page, most recent first.
    pub runs: Vec<GcRun>,
    /// Over all pages.
    pub total_count: u64,
}

/// A retention rule of a namespace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Glob over repository names within the namespace (`*`, `?`); default all.
    #[serde(default = "all_repos")]
    pub repositories: String,
    /// Keep this many most recently pushed tags.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub keep_last: Option<u32>,
    /// Delete tags pushed more than this many days ago.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub older_than_days: Option<u32>,
    /// Only consider tags matching this regular expression.
    #[serde(default)]
    pub include_tags: Option<String>,
    /// Never delete tags matching this regular expression.
    #[serde(default)]
    pub exclude_tags: Option<String>,
    /// Delete untagged artifacts pushed more than this many days ago.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub untagged_older_than_days: Option<u32>,
}

fn all_repos() -> String {
    "*".into()
}

/// The retention policies of a namespace (`PUT` replaces them all).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicies {
    /// The rules; a tag goes if any rule deletes it.
    pub policies: Vec<RetentionPolicy>,
}

/// A tag retention deletes.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionTag {
    /// Full repository name.
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// Manifest digest it points at.
    pub digest: String,
    /// RFC 3339.
    pub pushed_at: String,
}

/// An untagged artifact retention deletes.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionArtifact {
    /// Full repository name.
    pub repository: String,
    /// Manifest digest.
    pub digest: String,
    /// RFC 3339.
    pub pushed_at: String,
}

/// What retention deletes (preview) or deleted (run).
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionPlan {
    /// Tags.
    pub tags: Vec<RetentionTag>,
    /// Untagged artifacts.
    pub untagged: Vec<RetentionArtifact>,
}
