//! The delivery queue: fan-out of outbox events to webhooks, leases, the
//! outcome of each attempt, and the delivery log.
//!
//! Ordering: per (webhook, repository), deliveries go out in sequence
//! order. A delivery waits while an earlier one of the same webhook and
//! repository is still pending (not yet delivered or given up on), so a
//! receiver never sees a tag deletion before the push it follows.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Event, EventKind, Webhook};
use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, Millis};
use crate::Registry;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its first success (or its next attempt).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Retried for as long as configured, then given up.
    Failed,
}

/// One event for one webhook: the delivery log's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The webhook.
    pub webhook: String,
    /// The event's sequence number; the delivery's id within its webhook.
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last attempt, if the receiver answered.
    #[serde(default)]
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// How long the last attempt took.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// When it is next attempted (pending only).
    #[serde(default)]
    pub next_attempt: Option<Millis>,
    /// Retries stop this long after it; set when queued or redelivered.
    pub retry_from: Millis,
    /// When it was delivered or given up on.
    #[serde(default)]
    pub finished_at: Option<Millis>,
    /// The process attempting it now, and until when its lease holds.
    #[serde(default)]
    pub lease_owner: Option<String>,
    /// End of the lease.
    #[serde(default)]
    pub lease_until: Millis,
}

/// A pending delivery's entry in `delivery_queue`: what the worker's scan
/// needs without reading the log row.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueueEntry {
    /// Full repository name, or empty for namespace events.
    repository: String,
    next_attempt: Millis,
    lease_until: Millis,
}

/// A delivery leased for an attempt, with its webhook as it is now.
#[derive(Debug, Clone)]
pub struct LeasedDelivery {
    /// The delivery.
    pub delivery: Delivery,
    /// Its webhook (URL, format and current secret).
    pub webhook: Webhook,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    /// HTTP status, if the receiver answered.
    pub status: Option<u16>,
    /// Why it failed (no answer, refused address, non-2xx).
    pub error: Option<String>,
    /// How long it took.
    pub latency_ms: u64,
    /// `None`: delivered; `Some(Some(t))`: retry at `t`; `Some(None)`:
    /// give up.
    pub retry: Option<Option<Millis>>,
}

fn entry_of(d: &Delivery) -> QueueEntry {
    QueueEntry {
        repository: d.event.repository.clone().unwrap_or_default(),
        next_attempt: d.next_attempt.unwrap_or(0),
        lease_until: d.lease_until,
    }
}

fn delivery_unknown(webhook: &str, seq: u64) -> Error {
    Error::NotFound {
        what: format!("delivery {seq} of webhook {webhook}"),
    }
}

fn queued(webhook: &str, event: &Event, now: Millis) -> Delivery {
    Delivery {
        webhook: webhook.to_string(),
        seq: event.seq,
        event: event.clone(),
        state: DeliveryState::Pending,
        attempts: 0,
        last_status: None,
        last_error: None,
        latency_ms: None,
        next_attempt: Some(now),
        retry_from: now,
        finished_at: None,
        lease_owner: None,
        lease_until: 0,
    }
}

/// Most outbox events fanned out per call.
const FAN_OUT_BATCH: usize = 100;

impl Registry {
    /// Fans outbox events out to the webhooks that want them: per event,
    /// one transaction creates its deliveries and removes it from the
    /// outbox. Returns how many events were handled.
    pub async fn events_fan_out(&self) -> Result<usize> {
        self.meta_durable(|r| r.fan_out_blocking()).await
    }

    fn fan_out_blocking(&self) -> Result<usize> {
        let events = self.db().scan(Table::Outbox, b"", None, FAN_OUT_BATCH)?;
        if events.is_empty() {
            return Ok(0);
        }
        // Listed before the transactions (which cannot scan); each is read
        // again inside, so a webhook deleted meanwhile gets nothing.
        let hooks = self.webhooks_blocking()?;
        let now = now_millis();
        for (k, v) in &events {
            let event: Event = meta::decode(Table::Outbox, v)?;
            let wanted: Vec<&Webhook> = hooks.iter().filter(|w| w.wants(&event)).collect();
            self.db().transact(|tx| {
                if tx.get(Table::Outbox, k)?.is_none() {
                    // Another process fanned it out first.
                    return Ok(());
                }
                for w in &wanted {
                    if tx.get(Table::Webhooks, &keys::webhook(&w.id))?.is_none() {
                        continue;
                    }
                    let d = queued(&w.id, &event, now);
                    let key = keys::delivery(&w.id, event.seq);
                    meta::tx_put(tx, Table::Deliveries, &key, &d)?;
                    meta::tx_put(tx, Table::DeliveryQueue, &key, &entry_of(&d))?;
                }
                tx.delete(Table::Outbox, k)
            })?;
        }
        Ok(events.len())
    }

    /// Leases up to `max` deliveries that are due, for `lease_ms`, to
    /// `owner` (a process id): a delivery leased by another process whose
    /// lease has not expired is left alone, and so is every later delivery
    /// of its webhook and repository.
    pub async fn deliveries_lease(
        &self,
        owner: &str,
        lease_ms: Millis,
        max: usize,
    ) -> Result<Vec<LeasedDelivery>> {
        let owner = owner.to_string();
        self.meta_durable(move |r| r.lease_blocking(&owner, lease_ms, max))
            .await
    }

    fn lease_blocking(
        &self,
        owner: &str,
        lease_ms: Millis,
        max: usize,
    ) -> Result<Vec<LeasedDelivery>> {
        let now = now_millis();
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let mut blocked: HashSet<(String, String)> = HashSet::new();
        let mut gone: HashSet<String> = HashSet::new();
        let mut after: Option<Vec<u8>> = None;
        'scan: loop {
            let rows = self
                .db()
                .scan(Table::DeliveryQueue, b"", after.as_deref(), 1000)?;
            let Some((last, _)) = rows.last() else { break };
            after = Some(last.clone());
            for (k, v) in &rows {
                let Some((hook_id, seq)) = keys::parse_delivery(k) else {
                    return Err(meta::bad_key(Table::DeliveryQueue, k));
                };
                let entry: QueueEntry = meta::decode(Table::DeliveryQueue, v)?;
                let lane = (hook_id.clone(), entry.repository.clone());
                if gone.contains(&hook_id) || blocked.contains(&lane) {
                    continue;
                }
                // Whatever happens to this one, later ones of its lane wait.
                blocked.insert(lane);
                if entry.next_attempt > now || entry.lease_until > now {
                    continue;
                }
                let Some(webhook) = self
                    .db()
                    .get_json::<Webhook>(Table::Webhooks, &keys::webhook(&hook_id))?
                else {
                    // Left by a deletion a crash cut short.
                    gone.insert(hook_id.clone());
                    self.purge_orphan_queue_row(k)?;
                    continue;
                };
                let leased = self.db().transact(|tx| {
                    let Some(mut d) = meta::tx_get::<Delivery>(tx, Table::Deliveries, k)? else {
                        tx.delete(Table::DeliveryQueue, k)?;
                        return Ok(None);
                    };
                    let current: Option<QueueEntry> = meta::tx_get(tx, Table::DeliveryQueue, k)?;
                    let due =
                        current.is_some_and(|e| e.next_attempt <= now && e.lease_until <= now);
                    if !due || d.state != DeliveryState::Pending {
                        return Ok(None);
                    }
                    d.lease_owner = Some(owner.to_string());
                    d.lease_until = now + lease_ms;
                    meta::tx_put(tx, Table::Deliveries, k, &d)?;
                    meta::tx_put(tx, Table::DeliveryQueue, k, &entry_of(&d))?;
                    Ok(Some(d))
                })?;
                let _ = seq;
                if let Some(delivery) = leased {
                    out.push(LeasedDelivery {
                        delivery,
                        webhook: webhook.clone(),
                    });
                    if out.len() >= max {
                        break 'scan;
                    }
                }
            }
        }
        Ok(out)
    }

    fn purge_orphan_queue_row(&self, k: &[u8]) -> Result<()> {
        self.db().transact(|tx| {
            tx.delete(Table::DeliveryQueue, k)?;
            tx.delete(Table::Deliveries, k)
        })
    }

    /// Records how an attempt ended. Returns `false` (and records nothing)
    /// when `owner` no longer holds the lease: another process took the
    /// delivery over, and its outcome counts.
    pub async fn delivery_finish(
        &self,
        webhook: &str,
        seq: u64,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool> {
        let (webhook, owner) = (webhook.to_string(), owner.to_string());
        self.meta_durable(move |r| {
            let key = keys::delivery(&webhook, seq);
            let now = now_millis();
            r.db().transact(|tx| {
                let Some(mut d) = meta::tx_get::<Delivery>(tx, Table::Deliveries, &key)? else {
                    return Ok(false);
                };
                if d.lease_owner.as_deref() != Some(owner.as_str())
                    || d.state != DeliveryState::Pending
                {
                    return Ok(false);
                }
                d.attempts += 1;
                d.last_status = outcome.status;
                d.last_error = outcome.error.clone();
                d.latency_ms = Some(outcome.latency_ms);
                d.lease_owner = None;
                d.lease_until = 0;
                match outcome.retry {
                    None | Some(None) => {
                        d.state = if outcome.retry.is_none() {
                            DeliveryState::Delivered
                        } else {
                            DeliveryState::Failed
                        };
                        d.next_attempt = None;
                        d.finished_at = Some(now);
                        tx.delete(Table::DeliveryQueue, &key)?;
                    }
                    Some(Some(at)) => {
                        d.next_attempt = Some(at);
                        meta::tx_put(tx, Table::DeliveryQueue, &key, &entry_of(&d))?;
                    }
                }
                meta::tx_put(tx, Table::Deliveries, &key, &d)?;
                Ok(true)
            })
        })
        .await
    }

    /// A webhook's delivery log, in sequence order, after `after` (a
    /// sequence number), at most `limit` rows.
    pub async fn deliveries(
        &self,
        webhook: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let webhook = webhook.to_string();
        self.meta(move |r| {
            let after = after.map(|s| keys::delivery(&webhook, s));
            r.db()
                .scan(
                    Table::Deliveries,
                    &keys::deliveries_of(&webhook),
                    after.as_deref(),
                    limit,
                )?
                .into_iter()
                .map(|(_, v)| meta::decode(Table::Deliveries, &v))
                .collect()
        })
        .await
    }

    /// One delivery.
    pub async fn delivery(&self, webhook: &str, seq: u64) -> Result<Delivery> {
        let webhook = webhook.to_string();
        self.meta(move |r| {
            r.db()
                .get_json(Table::Deliveries, &keys::delivery(&webhook, seq))?
                .ok_or_else(|| delivery_unknown(&webhook, seq))
        })
        .await
    }

    /// Queues a delivery again (its event unchanged, same id), to be
    /// attempted now and retried for the configured time from now.
    pub async fn delivery_redeliver(&self, webhook: &str, seq: u64) -> Result<Delivery> {
        let webhook = webhook.to_string();
        let d = self
            .meta_durable(move |r| {
                let key = keys::delivery(&webhook, seq);
                let now = now_millis();
                r.db().transact(|tx| {
                    let Some(mut d) = meta::tx_get::<Delivery>(tx, Table::Deliveries, &key)? else {
                        return Err(delivery_unknown(&webhook, seq).into());
                    };
                    d.state = DeliveryState::Pending;
                    d.next_attempt = Some(now);
                    d.retry_from = now;
                    d.finished_at = None;
                    meta::tx_put(tx, Table::Deliveries, &key, &d)?;
                    meta::tx_put(tx, Table::DeliveryQueue, &key, &entry_of(&d))?;
                    Ok(d)
                })
            })
            .await?;
        self.events_wake();
        Ok(d)
    }

    /// Queues a test event for one webhook only.
    pub async fn webhook_test(
        &self,
        webhook: &Webhook,
        ctx: &super::EventContext,
    ) -> Result<Delivery> {
        let ns = webhook.namespace.clone().unwrap_or_default();
        let event = Event::new(EventKind::Test, &ns, ctx);
        let id = webhook.id.clone();
        let d = self
            .meta_durable(move |r| {
                let now = now_millis();
                r.db().transact(|tx| {
                    if tx.get(Table::Webhooks, &keys::webhook(&id))?.is_none() {
                        return Err(Error::NotFound {
                            what: format!("webhook {id}"),
                        }
                        .into());
                    }
                    let mut e = event.clone();
                    e.seq = super::next_seq_in_tx(tx)?;
                    let d = queued(&id, &e, now);
                    let key = keys::delivery(&id, e.seq);
                    meta::tx_put(tx, Table::Deliveries, &key, &d)?;
                    meta::tx_put(tx, Table::DeliveryQueue, &key, &entry_of(&d))?;
                    Ok(d)
                })
            })
            .await?;
        self.events_wake();
        Ok(d)
    }

    /// Events not yet fanned out, and deliveries pending: the backlog.
    pub async fn events_backlog(&self) -> Result<(usize, usize)> {
        self.meta(|r| {
            Ok((
                r.db().count(Table::Outbox, b"")?,
                r.db().count(Table::DeliveryQueue, b"")?,
            ))
        })
        .await
    }

    /// Removes delivered and failed deliveries finished before `before`
    /// from the log. Returns how many went.
    pub async fn deliveries_prune(&self, before: Millis) -> Result<usize> {
        self.meta_durable(move |r| {
            let mut n = 0;
            let mut after: Option<Vec<u8>> = None;
            loop {
                let rows = r
                    .db()
                    .scan(Table::Deliveries, b"", after.as_deref(), 1000)?;
                let Some((last, _)) = rows.last() else { break };
                after = Some(last.clone());
                let old: Vec<&Vec<u8>> = rows
                    .iter()
                    .filter_map(|(k, v)| {
                        let d: Delivery = meta::decode(Table::Deliveries, v).ok()?;
                        (d.state != DeliveryState::Pending
                            && d.finished_at.is_some_and(|t| t < before))
                        .then_some(k)
                    })
                    .collect();
                r.db().transact(|tx| {
                    for k in &old {
                        // Re-read: a redelivery may have queued it again.
                        if let Some(d) = meta::tx_get::<Delivery>(tx, Table::Deliveries, k)? {
                            if d.state != DeliveryState::Pending {
                                tx.delete(Table::Deliveries, k)?;
                            }
                        }
                    }
                    Ok(())
                })?;
                n += old.len();
            }
            Ok(n)
        })
        .await
    }
}
