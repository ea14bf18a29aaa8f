//! The webhook delivery worker: a tokio task of `berth serve` that fans
//! outbox events out to webhooks, leases due deliveries, POSTs them, and
//! records each outcome, off every request's path (a slow, failing or dead
//! receiver never slows a push).
//!
//! It polls every `poll_interval` and is woken by commits that wrote
//! events. Deliveries are leased in the store for `timeout + 10 s`, so a
//! process that dies mid-attempt leaves them to whichever process (itself
//! after a restart, or another replica) finds the lease expired.
//!
//! Each attempt's outcome and the backlog seen on each pass are reported to
//! the metrics ([`crate::metrics::WebhookMetrics`]).

pub mod payload;
pub mod target;

use crate::metrics::{DeliveryOutcome as Counted, WebhookMetrics};

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::{DeliveryOutcome, LeasedDelivery, Registry};
use tokio::sync::Semaphore;

/// `[webhooks]` settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Run the delivery worker.
    pub enabled: bool,
    /// Bound on one delivery attempt (connect and whole exchange).
    pub timeout: Duration,
    /// How long a delivery is retried before it is marked failed.
    pub retry_for: Duration,
    /// First retry delay; doubles per attempt.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Most deliveries in flight at once.
    pub max_concurrent_deliveries: usize,
    /// Allow receivers on loopback, private and link-local addresses.
    pub allow_private_targets: bool,
    /// How often the worker looks for due deliveries when nothing wakes it.
    pub poll_interval: Duration,
    /// Registry host in payloads (`host/ns/repo@digest`).
    pub registry_host: String,
    /// Delivered and failed deliveries stay in the log this long.
    pub log_retention: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            enabled: true,
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(86_400),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(3600),
            max_concurrent_deliveries: 16,
            allow_private_targets: true,
            poll_interval: Duration::from_secs(1),
            registry_host: "localhost:5000".into(),
            log_retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Extra lease time past the attempt's own timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// Most response body bytes read (and dropped) from a receiver.
const MAX_RESPONSE_BYTES: usize = 64 << 10;

/// Starts the worker; it runs until the returned handle is aborted.
pub fn spawn(
    registry: Registry,
    cfg: WebhookConfig,
    stats: WebhookMetrics,
) -> Option<tokio::task::JoinHandle<()>> {
    if !cfg.enabled {
        return None;
    }
    let client = match client(&cfg) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook deliveries are off: no HTTP client");
            return None;
        }
    };
    Some(tokio::spawn(run(registry, cfg, stats, client)))
}

fn client(cfg: &WebhookConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        // A redirect would send the signed body somewhere nobody checked.
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would connect to addresses the guard below never sees.
        .no_proxy()
        .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
        .timeout(cfg.timeout)
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(target::GuardedResolver {
            allow_private: cfg.allow_private_targets,
        }))
        .build()
}

async fn run(
    registry: Registry,
    cfg: WebhookConfig,
    stats: WebhookMetrics,
    client: reqwest::Client,
) {
    let owner = uuid::Uuid::new_v4().simple().to_string();
    // Why a semaphore: each attempt holds a connection and a task for up
    // to `timeout`; bounding them bounds sockets and memory however many
    // receivers hang.
    let slots = Arc::new(Semaphore::new(cfg.max_concurrent_deliveries.max(1)));
    let lease_ms = (cfg.timeout + LEASE_MARGIN).as_millis() as i64;
    let mut last_prune = Instant::now() - Duration::from_secs(3600);
    loop {
        if let Err(e) = pass(&registry, &cfg, &stats, &client, &owner, &slots, lease_ms).await {
            tracing::warn!(error = %e, "webhook delivery pass failed");
        }
        if last_prune.elapsed() > Duration::from_secs(3600) {
            last_prune = Instant::now();
            let before = now_millis() - cfg.log_retention.as_millis() as i64;
            if let Err(e) = registry.deliveries_prune(before).await {
                tracing::warn!(error = %e, "pruning the webhook delivery log failed");
            }
        }
        registry.events_wait(cfg.poll_interval).await;
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn pass(
    registry: &Registry,
    cfg: &WebhookConfig,
    stats: &WebhookMetrics,
    client: &reqwest::Client,
    owner: &str,
    slots: &Arc<Semaphore>,
    lease_ms: i64,
) -> berth_store::Result<()> {
    while registry.events_fan_out().await? > 0 {}
    let free = slots.available_permits();
    let leased = registry.deliveries_lease(owner, lease_ms, free).await?;
    for l in leased {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let (registry, cfg, stats, client, owner) = (
            registry.clone(),
            cfg.clone(),
            stats.clone(),
            client.clone(),
            owner.to_string(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let (webhook, seq) = (l.webhook.id.clone(), l.delivery.seq);
            let outcome = attempt(&client, &cfg, &l).await;
            let counted = match outcome.retry {
                None => Counted::Delivered,
                Some(Some(_)) => Counted::Retried,
                Some(None) => Counted::Failed,
            };
            match registry
                .delivery_finish(&webhook, seq, &owner, outcome)
                .await
            {
                Ok(true) => stats.delivered(counted),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, webhook, seq, "could not record a webhook delivery")
                }
            }
            // The next delivery of its lane may go now.
            registry.events_wake();
        });
    }
    let (outbox, queued) = registry.events_backlog().await?;
    stats.set_queue_depth(outbox.saturating_add(queued));
    Ok(())
}

/// One POST; what the store should record.
async fn attempt(
    client: &reqwest::Client,
    cfg: &WebhookConfig,
    l: &LeasedDelivery,
) -> DeliveryOutcome {
    let d = &l.delivery;
    let (body, content_type) = payload::body(l.webhook.format, &d.event, &cfg.registry_host);
    let sig = payload::signature(&l.webhook.secret, &body);
    let start = Instant::now();
    let result = match target::check_url(&l.webhook.url, cfg.allow_private_targets) {
        Err(e) => Err(e),
        Ok(url) => send(client, url, body, content_type, &sig, d).await,
    };
    let latency_ms = start.elapsed().as_millis() as u64;
    let (status, error) = match result {
        Ok(s) if (200..300).contains(&s) => {
            return DeliveryOutcome {
                status: Some(s),
                error: None,
                latency_ms,
                retry: None,
            }
        }
        Ok(s) => (Some(s), Some(format!("the receiver answered {s}"))),
        Err(e) => (None, Some(e)),
    };
    DeliveryOutcome {
        status,
        error,
        latency_ms,
        retry: Some(next_attempt(cfg, d.attempts + 1, d.retry_from)),
    }
}

async fn send(
    client: &reqwest::Client,
    url: reqwest::Url,
    body: Vec<u8>,
    content_type: &str,
    sig: &str,
    d: &berth_store::Delivery,
) -> Result<u16, String> {
    let resp = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(payload::SIGNATURE_HEADER, sig)
        .header(payload::EVENT_ID_HEADER, &d.event.id)
        .header(payload::DELIVERY_ID_HEADER, d.seq.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = resp.status().as_u16();
    // Read a bounded part of the answer so the connection ends cleanly; a
    // receiver cannot make the worker buffer more.
    let mut resp = resp;
    let mut read = 0;
    while let Ok(Some(chunk)) = resp.chunk().await {
        read += chunk.len();
        if read >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok(status)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// When to try again after `attempts` failures (exponential backoff with
/// jitter, between half and all of the doubled delay), or `None` when that
/// would pass `retry_for` since `retry_from`.
fn next_attempt(cfg: &WebhookConfig, attempts: u32, retry_from: i64) -> Option<i64> {
    let base = cfg.retry_initial.as_millis() as u64;
    let cap = cfg.retry_max.as_millis() as u64;
    let delay = base
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(40))
        .min(cap)
        .max(1);
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).expect("the operating system's random source works");
    let jitter = u64::from_le_bytes(r) % (delay / 2 + 1);
    let at = now_millis() + (delay - jitter) as i64;
    (at <= retry_from + cfg.retry_for.as_millis() as i64).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops() {
        let cfg = WebhookConfig {
            retry_initial: Duration::from_millis(1000),
            retry_max: Duration::from_millis(8000),
            retry_for: Duration::from_secs(60),
            ..WebhookConfig::default()
        };
        let now = now_millis();
        for (n, full) in [(1u32, 1000i64), (2, 2000), (3, 4000), (4, 8000), (9, 8000)] {
            let at = next_attempt(&cfg, n, now).unwrap() - now;
            assert!(at >= full / 2 - 5 && at <= full + 50, "attempt {n}: {at}");
        }
        assert_eq!(next_attempt(&cfg, 1, now - 120_000), None);
    }
}
