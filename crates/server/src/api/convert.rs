//! Store records to the JSON the management API answers.

use super::*;

pub(super) fn namespace_dto(n: NamespaceInfo, host: &str, region: &str) -> Namespace {
    Namespace {
        id: n.record.id,
        endpoint: format!("{host}/{}", n.name),
        name: n.name,
        description: n.record.description,
        project_id: n.record.project_id,
        status: n.record.status.as_str().to_string(),
        status_message: n.record.status_message,
        is_public: n.record.is_public,
        size: n.size,
        image_count: n.repo_count,
        region: region.to_string(),
        created_at: rfc3339(n.record.created_at),
        updated_at: rfc3339(n.record.updated_at.max(n.record.created_at)),
    }
}

pub(super) fn repository_dto(r: RepoSummary) -> Repository {
    let namespace = r.name.split('/').next().unwrap_or(&r.name).to_string();
    Repository {
        namespace,
        name: r.name,
        tag_count: r.tag_count,
        artifact_count: r.artifact_count,
        size: r.size,
        latest_tag: r.latest_tag,
        last_push: r.record.last_push.map(rfc3339),
        last_pull: r.record.last_pull.map(rfc3339),
        created_at: rfc3339(r.record.created_at),
    }
}

pub(super) fn tag_dto(t: TagInfo) -> Tag {
    Tag {
        name: t.name,
        digest: t.digest.to_string(),
        pushed_at: rfc3339(t.pushed_at),
    }
}

pub(super) fn artifact_dto(a: ArtifactInfo) -> Artifact {
    let r = a.record;
    let image = r.image;
    let history = |h: &berth_oci::HistoryEntry| History {
        created: h.created.clone(),
        created_by: h.created_by.clone(),
        comment: h.comment.clone(),
    };
    let layer = |b: &berth_store::BlobRef, h: Option<&berth_oci::HistoryEntry>| Layer {
        digest: b.digest.to_string(),
        media_type: b.media_type.clone(),
        size: b.size,
        annotations: b.annotations.clone(),
        history: h.map(history),
    };
    Artifact {
        digest: a.digest.to_string(),
        media_type: r.media_type,
        artifact_type: r.artifact_type,
        size: a.size,
        tags: a.tags,
        platforms: a
            .platforms
            .into_iter()
            .map(|p| Platform {
                os: p.os,
                architecture: p.architecture,
                variant: p.variant,
            })
            .collect(),
        subject: r.subject.map(|s| s.to_string()),
        pushed_at: rfc3339(r.pushed_at),
        last_pull: r.last_pull.map(rfc3339),
        image_id: r.config.as_ref().map(|c| c.digest.to_string()),
        config: r.config.as_ref().map(|c| layer(c, None)),
        platform: image.as_ref().map(|i| Platform {
            os: i.os.clone(),
            architecture: i.architecture.clone(),
            variant: i.variant.clone(),
        }),
        layers: r
            .layers
            .iter()
            .enumerate()
            .map(|(n, b)| layer(b, image.as_ref().and_then(|i| i.layer_history.get(n))))
            .collect(),
        empty_history: image
            .as_ref()
            .map(|i| i.empty_history.iter().map(history).collect())
            .unwrap_or_default(),
    }
}

pub(super) fn settings_dto(s: StoreSettings) -> RegistrySettings {
    RegistrySettings {
        name: s.name,
        region: s.region,
        garbage_collection_schedule: s.garbage_collection_schedule.map(|g| GcSchedule {
            days: g.days,
            time: g.time,
        }),
        api_subnet_allow_list: s.api_subnet_allow_list,
        features: Features {
            vulnerability_scanning: Toggle {
                enabled: s.features.vulnerability_scanning.enabled,
            },
        },
    }
}

pub(super) fn gc_run_dto(r: berth_store::GcRun) -> GcRun {
    GcRun {
        id: r.id,
        status: r.status,
        trigger: r.trigger,
        dry_run: r.options.dry_run,
        delete_untagged: r.options.delete_untagged,
        started_at: rfc3339(r.started_at),
        finished_at: r.finished_at.map(rfc3339),
        report: r.report.map(|g| GcReport {
            dry_run: g.dry_run,
            manifests_deleted: g.manifests_deleted,
            blobs_deleted: g.blobs_deleted,
            bytes_freed: g.bytes_freed,
            uploads_expired: g.uploads_expired,
            blobs_in_grace: g.blobs_in_grace,
            retention_deleted: g.retention_deleted,
            duration_ms: g.duration_ms,
        }),
        error: r.error,
    }
}

pub(super) fn policy_to_store(p: RetentionPolicy) -> berth_store::RetentionPolicy {
    berth_store::RetentionPolicy {
        repositories: p.repositories,
        keep_last: p.keep_last,
        older_than_days: p.older_than_days,
        include_tags: p.include_tags,
        exclude_tags: p.exclude_tags,
        untagged_older_than_days: p.untagged_older_than_days,
    }
}

pub(super) fn policy_dto(p: berth_store::RetentionPolicy) -> RetentionPolicy {
    RetentionPolicy {
        repositories: p.repositories,
        keep_last: p.keep_last,
        older_than_days: p.older_than_days,
        include_tags: p.include_tags,
        exclude_tags: p.exclude_tags,
        untagged_older_than_days: p.untagged_older_than_days,
    }
}

pub(super) fn plan_dto(p: berth_store::RetentionPlan) -> RetentionPlan {
    RetentionPlan {
        tags: p
            .tags
            .into_iter()
            .map(|t| RetentionTag {
                repository: t.repository,
                tag: t.tag,
                digest: t.digest.to_string(),
                pushed_at: rfc3339(t.pushed_at),
            })
            .collect(),
        untagged: p
            .untagged
            .into_iter()
            .map(|a| RetentionArtifact {
                repository: a.repository,
                digest: a.digest.to_string(),
                pushed_at: rfc3339(a.pushed_at),
            })
            .collect(),
    }
}
