//! Events and the delivery queue through the store's public API: an event
//! is written with the change it reports and only then, survives a reopen,
//! fans out once, and a lease admits one process at a time, in order per
//! webhook and repository.

mod common;

use berth_store::{
    DeliveryOutcome, DeliveryState, EventContext, EventKind, NewWebhook, PayloadFormat, Registry,
};
use bytes::Bytes;
use common::*;

async fn hook(reg: &Registry, events: Vec<EventKind>) -> String {
    reg.webhook_create(NewWebhook {
        namespace: None,
        url: "http://127.0.0.1:9/hook".into(),
        events,
        repositories: None,
        tags: None,
        format: PayloadFormat::CloudEvents,
        created_by: "test".into(),
    })
    .await
    .unwrap()
    .id
}

fn ctx() -> EventContext {
    EventContext {
        actor: Some("alice".into()),
        client_addr: Some("192.0.2.1".into()),
        request_id: Some("req-1".into()),
    }
}

#[test]
fn a_push_writes_its_event_and_a_refused_push_writes_none() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let id = hook(&reg, vec![EventKind::ArtifactPushed, EventKind::TagDeleted]).await;
        let r = repo("e/app");
        let config = put_blob(&reg, &r, b"{}").await;
        let absent = sha(b"never pushed");
        let m = image_manifest((&config, 2), &[(&absent, 12)], None, None);
        assert!(reg
            .manifest_put_by(&r, &tag("v1"), Some(OCI_MANIFEST), Bytes::from(m), &ctx())
            .await
            .is_err());
        assert_eq!(
            reg.events_backlog().await.unwrap(),
            (0, 0),
            "a refused push writes nothing"
        );
        let layer = put_blob(&reg, &r, b"layer").await;
        let m = image_manifest((&config, 2), &[(&layer, 5)], None, None);
        let put = reg
            .manifest_put_by(&r, &tag("v1"), Some(OCI_MANIFEST), Bytes::from(m), &ctx())
            .await
            .unwrap();
        assert_eq!(reg.events_backlog().await.unwrap().0, 1);
        assert_eq!(reg.events_fan_out().await.unwrap(), 1);
        assert_eq!(reg.events_backlog().await.unwrap(), (0, 1));
        let log = reg.deliveries(&id, None, 10).await.unwrap();
        assert_eq!(log.len(), 1);
        let e = &log[0].event;
        assert_eq!(e.kind, EventKind::ArtifactPushed);
        assert_eq!(e.digest.as_deref(), Some(put.digest.to_string().as_str()));
        assert_eq!(e.tag.as_deref(), Some("v1"));
        assert_eq!(e.repository.as_deref(), Some("e/app"));
        assert_eq!(e.actor.as_deref(), Some("alice"));
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        assert_eq!(log[0].state, DeliveryState::Pending);
        // A tag that does not exist: the deletion is refused, no event.
        assert!(reg
            .manifest_delete_by(&r, &tag("nope"), &ctx())
            .await
            .is_err());
        assert_eq!(reg.events_backlog().await.unwrap().0, 0);
    });
}

#[test]
fn events_survive_a_reopen_and_fan_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let (id, first) = rt().block_on(async {
        let reg = open(dir.path()).await;
        let id = hook(
            &reg,
            vec![EventKind::ArtifactPushed, EventKind::RepositoryDeleted],
        )
        .await;
        let img = push_image(&reg, &repo("e/app"), &tag("v1"), b"layer one").await;
        (id, img.manifest)
    });
    rt().block_on(async {
        let reg = open(dir.path()).await;
        assert_eq!(reg.events_backlog().await.unwrap(), (1, 0));
        reg.repository_delete_by(&repo("e/app"), &ctx())
            .await
            .unwrap();
        assert_eq!(reg.events_fan_out().await.unwrap(), 2);
        assert_eq!(reg.events_fan_out().await.unwrap(), 0, "fanned out once");
        let log = reg.deliveries(&id, None, 10).await.unwrap();
        let kinds: Vec<EventKind> = log.iter().map(|d| d.event.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::ArtifactPushed, EventKind::RepositoryDeleted]
        );
        assert_eq!(
            log[0].event.digest.as_deref(),
            Some(first.to_string().as_str())
        );
        assert!(log[0].seq < log[1].seq);
    });
}

#[test]
fn a_lease_admits_one_owner_and_orders_a_repository() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let id = hook(&reg, vec![EventKind::ArtifactPushed]).await;
        push_image(&reg, &repo("e/app"), &tag("v1"), b"one").await;
        push_image(&reg, &repo("e/app"), &tag("v2"), b"two").await;
        push_image(&reg, &repo("e/other"), &tag("v1"), b"three").await;
        reg.events_fan_out().await.unwrap();
        let a = reg.deliveries_lease("a", 300, 10).await.unwrap();
        // One per repository: the second e/app delivery waits for the first.
        let repos: Vec<_> = a
            .iter()
            .map(|l| l.delivery.event.repository.clone().unwrap())
            .collect();
        assert_eq!(repos, ["e/app", "e/other"]);
        assert!(
            reg.deliveries_lease("b", 300, 10).await.unwrap().is_empty(),
            "leased by a"
        );
        std::thread::sleep(std::time::Duration::from_millis(400));
        let b = reg.deliveries_lease("b", 60_000, 10).await.unwrap();
        assert_eq!(b.len(), 2, "expired leases go to another owner");
        let first = &b[0].delivery;
        let done = |retry| DeliveryOutcome {
            status: Some(200),
            error: None,
            latency_ms: 3,
            retry,
        };
        assert!(
            !reg.delivery_finish(&id, first.seq, "a", done(None))
                .await
                .unwrap(),
            "a lost its lease"
        );
        assert!(reg
            .delivery_finish(&id, first.seq, "b", done(None))
            .await
            .unwrap());
        let next = reg.deliveries_lease("b", 60_000, 10).await.unwrap();
        assert_eq!(next.len(), 1);
        assert!(next[0].delivery.seq > first.seq);
        assert_eq!(next[0].delivery.event.repository.as_deref(), Some("e/app"));
        let log = reg.deliveries(&id, None, 10).await.unwrap();
        assert_eq!(log[0].state, DeliveryState::Delivered);
        assert_eq!(log[0].attempts, 1);
    });
}
