//! Events and webhooks: what changed, who wants to hear of it, and the
//! durable queue of deliveries between the two.
//!
//! Tables owned (keys in `crate::layout::keys`): `webhooks`
//! ([`webhooks`]), `outbox`, `deliveries` and `delivery_queue`
//! ([`deliveries`]), and the `event_seq` counter in `settings`.
//!
//! The outbox protocol: a change that webhooks may report (a manifest push,
//! a tag moved or deleted, an artifact, repository or namespace deleted)
//! writes its [`Event`] into `outbox` inside the very transaction that makes
//! the change, so an acknowledged change always has its event and a refused
//! one never does. A delivery worker (in the server) later fans each event
//! out in one transaction: one `deliveries` row (the log) and one
//! `delivery_queue` row (the pending work) per matching webhook, and the
//! outbox row removed, so a crash loses or doubles nothing. Deliveries are
//! leased (owner and expiry in the row) so that with several processes
//! sharing the database each is attempted by one at a time.

pub(crate) mod deliveries;
mod webhooks;

use serde::{Deserialize, Serialize};

pub use deliveries::{Delivery, DeliveryOutcome, DeliveryState, LeasedDelivery};
pub use webhooks::{NewWebhook, PayloadFormat, Webhook, WebhookChange};

use crate::layout::keys;
use crate::meta::{self, Table, TxResult, Txn};
use crate::records::{now_millis, Millis};

/// Who caused a change, as the server knows it; recorded in the events the
/// change writes. Plain strings: the store knows nothing of HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventContext {
    /// The authenticated caller (user name, `token:<name>`, `anonymous`).
    pub actor: Option<String>,
    /// The client's address.
    pub client_addr: Option<String>,
    /// The id of the request that made the change.
    pub request_id: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A manifest was pushed (by tag or digest).
    #[serde(rename = "artifact.pushed")]
    ArtifactPushed,
    /// A push by tag moved an existing tag to another manifest.
    #[serde(rename = "tag.updated")]
    TagUpdated,
    /// A manifest was deleted with its tags.
    #[serde(rename = "artifact.deleted")]
    ArtifactDeleted,
    /// A tag was deleted (the manifest stays).
    #[serde(rename = "tag.deleted")]
    TagDeleted,
    /// A repository was deleted.
    #[serde(rename = "repository.deleted")]
    RepositoryDeleted,
    /// A namespace was deleted (reported to registry-wide webhooks).
    #[serde(rename = "namespace.deleted")]
    NamespaceDeleted,
    /// A manifest was pulled; batched with the pull times, and written only
    /// while some webhook subscribes to it.
    #[serde(rename = "artifact.pulled")]
    ArtifactPulled,
    /// A test delivery asked for through the API; never subscribed to.
    #[serde(rename = "webhook.test")]
    Test,
}

impl EventKind {
    /// The kinds a webhook may subscribe to.
    pub const SUBSCRIBABLE: [EventKind; 7] = [
        EventKind::ArtifactPushed,
        EventKind::TagUpdated,
        EventKind::ArtifactDeleted,
        EventKind::TagDeleted,
        EventKind::RepositoryDeleted,
        EventKind::NamespaceDeleted,
        EventKind::ArtifactPulled,
    ];

    /// The name in the API and payloads (`artifact.pushed`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ArtifactPushed => "artifact.pushed",
            EventKind::TagUpdated => "tag.updated",
            EventKind::ArtifactDeleted => "artifact.deleted",
            EventKind::TagDeleted => "tag.deleted",
            EventKind::RepositoryDeleted => "repository.deleted",
            EventKind::NamespaceDeleted => "namespace.deleted",
            EventKind::ArtifactPulled => "artifact.pulled",
            EventKind::Test => "webhook.test",
        }
    }

    /// A subscribable kind by name.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::SUBSCRIBABLE
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One change, as stored in the outbox and copied into each delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the registry-wide sequence: later changes have larger
    /// numbers.
    pub seq: u64,
    /// Unique id (UUID), the same in every delivery of the event: receivers
    /// de-duplicate on it.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub at: Millis,
    /// Namespace.
    pub namespace: String,
    /// Repository (full name), unless a namespace event.
    #[serde(default)]
    pub repository: Option<String>,
    /// The tag pushed or deleted.
    #[serde(default)]
    pub tag: Option<String>,
    /// Every tag naming the artifact (after a push; before a deletion).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The manifest's digest.
    #[serde(default)]
    pub digest: Option<String>,
    /// For `tag.updated`: the manifest the tag named before.
    #[serde(default)]
    pub previous_digest: Option<String>,
    /// The manifest's media type.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The artifact type (config media type or `artifactType`).
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// The manifest's size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// Who made the change.
    #[serde(default)]
    pub actor: Option<String>,
    /// From where.
    #[serde(default)]
    pub client_addr: Option<String>,
    /// The request that made it.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Event {
    /// An event of `kind` in `namespace`, with the context's fields and no
    /// sequence number yet (given by [`write_in_tx`]).
    pub(crate) fn new(kind: EventKind, namespace: &str, ctx: &EventContext) -> Event {
        Event {
            seq: 0,
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            at: now_millis(),
            namespace: namespace.to_string(),
            repository: None,
            tag: None,
            tags: Vec::new(),
            digest: None,
            previous_digest: None,
            media_type: None,
            artifact_type: None,
            size: None,
            actor: ctx.actor.clone(),
            client_addr: ctx.client_addr.clone(),
            request_id: ctx.request_id.clone(),
        }
    }

    /// With the repository set.
    pub(crate) fn in_repo(mut self, repo: &berth_oci::RepoName) -> Event {
        self.repository = Some(repo.to_string());
        self
    }
}

/// Inside a transaction: the next number of the registry-wide sequence.
/// One counter row: every transaction that writes an event reads and writes
/// it, so such transactions serialise and their numbers follow their commit
/// order (the delivery order within a repository relies on it).
pub(crate) fn next_seq_in_tx(tx: &dyn Txn) -> TxResult<u64> {
    let last: u64 = meta::tx_get(tx, Table::Settings, keys::EVENT_SEQ)?.unwrap_or(0);
    let next = last + 1;
    meta::tx_put(tx, Table::Settings, keys::EVENT_SEQ, &next)?;
    Ok(next)
}

/// Inside the transaction of the change it reports: the event goes into
/// the outbox. The engine may run a body more than once; each run gives
/// the event its number again, from the counter as that run sees it.
pub(crate) fn write_in_tx(tx: &dyn Txn, event: &Event) -> TxResult<()> {
    let mut e = event.clone();
    e.seq = next_seq_in_tx(tx)?;
    meta::tx_put(tx, Table::Outbox, &keys::outbox(e.seq), &e)
}

/// Wakes the delivery worker after a commit that wrote events, so that
/// deliveries do not wait for its next poll.
#[derive(Default)]
pub(crate) struct Wake {
    // Why a Notify: request tasks signal, one worker waits; `notify_one`
    // keeps a permit when the worker is busy, so no wake-up is lost.
    notify: tokio::sync::Notify,
}

impl Wake {
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }
}

impl crate::Registry {
    /// Waits until a change wrote events or `max` passed, whichever comes
    /// first (the delivery worker's poll).
    pub async fn events_wait(&self, max: std::time::Duration) {
        let _ = tokio::time::timeout(max, self.inner.events_wake.notify.notified()).await;
    }

    /// Wakes [`Registry::events_wait`] (a redelivery or test was queued).
    pub fn events_wake(&self) {
        self.inner.events_wake.wake();
    }
}
