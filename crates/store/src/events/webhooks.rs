//! Webhook definitions: namespace-scoped or registry-wide, with their
//! filters and signing secret. The server checks every field a request
//! gives (URL, events, patterns); the store keeps what protects its keys
//! (the namespace must exist and not be being deleted).

use serde::{Deserialize, Serialize};

use super::{Event, EventKind};
use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, Millis, NamespaceRecord, NamespaceStatus};
use crate::Registry;

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// CloudEvents 1.0, structured mode (`application/cloudevents+json`).
    #[default]
    CloudEvents,
    /// The CNCF distribution notification envelope
    /// (`application/vnd.docker.distribution.events.v2+json`).
    Distribution,
}

/// A stored webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Id (UUID).
    pub id: String,
    /// The namespace it belongs to; `None` for a registry-wide webhook.
    pub namespace: Option<String>,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event kinds it subscribes to.
    pub events: Vec<EventKind>,
    /// Glob (`*`) over full repository names; `None` matches all.
    #[serde(default)]
    pub repositories: Option<String>,
    /// Regular expression over whole tags; `None` matches all.
    #[serde(default)]
    pub tags: Option<String>,
    /// Payload format.
    #[serde(default)]
    pub format: PayloadFormat,
    /// The HMAC-SHA256 key deliveries are signed with. Stored as is: the
    /// registry must sign with it, so a hash would not do.
    pub secret: String,
    /// Paused webhooks get no new deliveries.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// Who created it.
    #[serde(default)]
    pub created_by: String,
}

fn yes() -> bool {
    true
}

/// What creating a webhook takes (checked by the caller).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Namespace, or `None` for registry-wide.
    pub namespace: Option<String>,
    /// Target URL.
    pub url: String,
    /// Event kinds.
    pub events: Vec<EventKind>,
    /// Repository glob.
    pub repositories: Option<String>,
    /// Tag regex.
    pub tags: Option<String>,
    /// Payload format.
    pub format: PayloadFormat,
    /// Who.
    pub created_by: String,
}

/// A change to a webhook: `None` leaves a field as it is; for the filters,
/// `Some(None)` removes the filter.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    /// Target URL.
    pub url: Option<String>,
    /// Event kinds.
    pub events: Option<Vec<EventKind>>,
    /// Repository glob.
    pub repositories: Option<Option<String>>,
    /// Tag regex.
    pub tags: Option<Option<String>>,
    /// Payload format.
    pub format: Option<PayloadFormat>,
    /// Paused or not.
    pub enabled: Option<bool>,
}

/// A fresh signing secret: 32 random bytes, hex.
fn new_secret() -> String {
    format!("whsec_{}", hex::encode(crate::random_bytes::<32>()))
}

impl Webhook {
    /// Whether `event` is for this webhook.
    pub(crate) fn wants(&self, event: &Event) -> bool {
        if !self.enabled || !self.events.contains(&event.kind) {
            return false;
        }
        // A namespace's own webhooks go with it: its deletion is reported
        // to registry-wide webhooks only.
        if let Some(ns) = &self.namespace {
            if event.kind == EventKind::NamespaceDeleted || *ns != event.namespace {
                return false;
            }
        }
        if let (Some(glob), Some(repo)) = (&self.repositories, &event.repository) {
            if !crate::glob_match(glob, repo) {
                return false;
            }
        }
        if let Some(pattern) = &self.tags {
            // Checked when stored; one that no longer compiles matches
            // nothing rather than everything.
            let Ok(re) = crate::tag_pattern(pattern) else {
                return false;
            };
            let tagged = matches!(
                event.kind,
                EventKind::ArtifactPushed
                    | EventKind::TagUpdated
                    | EventKind::ArtifactDeleted
                    | EventKind::TagDeleted
                    | EventKind::ArtifactPulled
            );
            if tagged {
                let hit = match &event.tag {
                    Some(t) => re.is_match(t),
                    None => event.tags.iter().any(|t| re.is_match(t)),
                };
                if !hit {
                    return false;
                }
            }
        }
        true
    }
}

fn unknown(id: &str) -> Error {
    Error::NotFound {
        what: format!("webhook {id}"),
    }
}

impl Registry {
    /// Creates a webhook; the answer holds its secret.
    pub async fn webhook_create(&self, new: NewWebhook) -> Result<Webhook> {
        self.meta_durable(move |r| {
            let now = now_millis();
            let hook = Webhook {
                id: uuid::Uuid::new_v4().to_string(),
                namespace: new.namespace.clone(),
                url: new.url.clone(),
                events: new.events.clone(),
                repositories: new.repositories.clone(),
                tags: new.tags.clone(),
                format: new.format,
                secret: new_secret(),
                enabled: true,
                created_at: now,
                updated_at: now,
                created_by: new.created_by.clone(),
            };
            r.db().transact(|tx| {
                if let Some(ns) = &hook.namespace {
                    // Read in the transaction that a namespace deletion
                    // writes: a webhook cannot be added to a namespace
                    // going away (and outlive it).
                    let rec: Option<NamespaceRecord> =
                        meta::tx_get(tx, Table::Namespaces, &keys::namespace(ns))?;
                    match rec {
                        None => {
                            return Err(Error::NamespaceUnknown { name: ns.clone() }.into());
                        }
                        Some(n) if n.status == NamespaceStatus::Deleting => {
                            return Err(Error::BeingDeleted {
                                what: format!("namespace {ns}"),
                            }
                            .into());
                        }
                        Some(_) => {}
                    }
                }
                meta::tx_put(tx, Table::Webhooks, &keys::webhook(&hook.id), &hook)
            })?;
            Ok(hook)
        })
        .await
    }

    /// The webhooks of a namespace (`Some`) or the registry-wide ones
    /// (`None`), oldest first.
    pub async fn webhooks(&self, namespace: Option<&str>) -> Result<Vec<Webhook>> {
        let ns = namespace.map(str::to_string);
        self.meta(move |r| {
            let mut all: Vec<Webhook> = r
                .webhooks_blocking()?
                .into_iter()
                .filter(|w| w.namespace == ns)
                .collect();
            all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(all)
        })
        .await
    }

    /// Every webhook; on a blocking thread.
    pub(crate) fn webhooks_blocking(&self) -> Result<Vec<Webhook>> {
        self.db()
            .scan(Table::Webhooks, b"", None, usize::MAX)?
            .into_iter()
            .map(|(_, v)| meta::decode(Table::Webhooks, &v))
            .collect()
    }

    /// Whether some webhook subscribes to `kind` (pull events are written
    /// only then); on a blocking thread.
    pub(crate) fn subscribed_blocking(&self, kind: EventKind) -> Result<bool> {
        Ok(self
            .webhooks_blocking()?
            .iter()
            .any(|w| w.enabled && w.events.contains(&kind)))
    }

    /// One webhook, if it belongs to `namespace` (`None`: registry-wide).
    pub async fn webhook(&self, namespace: Option<&str>, id: &str) -> Result<Webhook> {
        let (ns, id) = (namespace.map(str::to_string), id.to_string());
        self.meta(move |r| {
            match r
                .db()
                .get_json::<Webhook>(Table::Webhooks, &keys::webhook(&id))?
            {
                Some(w) if w.namespace == ns => Ok(w),
                _ => Err(unknown(&id)),
            }
        })
        .await
    }

    /// Changes a webhook.
    pub async fn webhook_update(
        &self,
        namespace: Option<&str>,
        id: &str,
        change: WebhookChange,
    ) -> Result<Webhook> {
        self.webhook_modify(namespace, id, move |w| {
            if let Some(u) = &change.url {
                w.url = u.clone();
            }
            if let Some(e) = &change.events {
                w.events = e.clone();
            }
            if let Some(r) = &change.repositories {
                w.repositories = r.clone();
            }
            if let Some(t) = &change.tags {
                w.tags = t.clone();
            }
            if let Some(f) = change.format {
                w.format = f;
            }
            if let Some(e) = change.enabled {
                w.enabled = e;
            }
        })
        .await
    }

    /// Gives a webhook a new secret; the answer holds it. Deliveries
    /// attempted from now on are signed with it.
    pub async fn webhook_rotate_secret(
        &self,
        namespace: Option<&str>,
        id: &str,
    ) -> Result<Webhook> {
        let secret = new_secret();
        self.webhook_modify(namespace, id, move |w| w.secret = secret.clone())
            .await
    }

    async fn webhook_modify(
        &self,
        namespace: Option<&str>,
        id: &str,
        f: impl Fn(&mut Webhook) + Send + 'static,
    ) -> Result<Webhook> {
        let (ns, id) = (namespace.map(str::to_string), id.to_string());
        self.meta_durable(move |r| {
            let key = keys::webhook(&id);
            r.db().transact(|tx| {
                let mut w = match meta::tx_get::<Webhook>(tx, Table::Webhooks, &key)? {
                    Some(w) if w.namespace == ns => w,
                    _ => return Err(unknown(&id).into()),
                };
                f(&mut w);
                w.updated_at = now_millis();
                meta::tx_put(tx, Table::Webhooks, &key, &w)?;
                Ok(w)
            })
        })
        .await
    }

    /// Deletes a webhook with its delivery log and pending deliveries.
    pub async fn webhook_delete(&self, namespace: Option<&str>, id: &str) -> Result<()> {
        let (ns, id) = (namespace.map(str::to_string), id.to_string());
        self.meta_durable(move |r| {
            let key = keys::webhook(&id);
            r.db().transact(|tx| {
                match meta::tx_get::<Webhook>(tx, Table::Webhooks, &key)? {
                    Some(w) if w.namespace == ns => {}
                    _ => return Err(unknown(&id).into()),
                }
                tx.delete(Table::Webhooks, &key)
            })?;
            r.purge_webhook_rows(&id)
        })
        .await
    }

    /// Removes a deleted webhook's deliveries; on a blocking thread. The
    /// webhook row goes first, so nothing new is fanned out to it or leased
    /// meanwhile; rows a crash leaves are skipped by the worker.
    fn purge_webhook_rows(&self, id: &str) -> Result<()> {
        let prefix = keys::deliveries_of(id);
        for table in [Table::DeliveryQueue, Table::Deliveries] {
            loop {
                let rows = self.db().scan_keys(table, &prefix, None, 1000)?;
                if rows.is_empty() {
                    break;
                }
                self.db().transact(|tx| {
                    for k in &rows {
                        tx.delete(table, k)?;
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Deletes a namespace's webhooks and their deliveries (namespace
    /// deletion): a namespace created again under the name starts with
    /// none. On a blocking thread.
    pub(crate) fn purge_namespace_webhooks(&self, ns: &str) -> Result<()> {
        for w in self.webhooks_blocking()? {
            if w.namespace.as_deref() != Some(ns) {
                continue;
            }
            self.db()
                .transact(|tx| tx.delete(Table::Webhooks, &keys::webhook(&w.id)))?;
            self.purge_webhook_rows(&w.id)?;
        }
        Ok(())
    }
}
