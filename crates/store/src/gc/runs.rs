//! Garbage-collection runs while serving: one at a time, started by the
//! API or by the schedule in the registry settings, each recorded in the
//! `gc_runs` table with its report.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{GcOptions, GcReport};
use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, Millis};
use crate::Registry;

/// A stored run of garbage collection, for `GET /api/v1/gc/runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcRun {
    /// Run id (UUID).
    pub id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// What started it: `api`, `schedule`.
    pub trigger: String,
    /// Options.
    #[serde(default)]
    pub options: GcOptions,
    /// Start.
    pub started_at: Millis,
    /// End.
    #[serde(default)]
    pub finished_at: Option<Millis>,
    /// The report, once finished.
    #[serde(default)]
    pub report: Option<GcReport>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// At most one garbage-collection run at a time: runs are long, and two
/// would only race each other for the same blobs. In this process, a flag
/// refuses a second start without a trip to the database; across replicas,
/// the lease row in the `leases` table does.
#[derive(Default)]
pub(crate) struct RunGuard {
    // Why an AtomicBool: set by whoever starts a run here, cleared when it
    // ends; a second start here sees it set and is refused.
    busy: std::sync::atomic::AtomicBool,
}

/// The garbage collector's lease: which run holds it and until when. The
/// run renews it while it works; a replica that stops lets it lapse, and
/// the next start takes it over and records that run as interrupted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct GcLease {
    /// The run holding it; none between runs.
    #[serde(default)]
    run: Option<String>,
    /// Valid until.
    #[serde(default)]
    until: Millis,
    /// The last schedule slot (`date weekday HH:MM`) a run was started
    /// for, by any replica: each slot starts one run.
    #[serde(default)]
    last_slot: Option<String>,
}

/// How long a lease lasts without renewal: longer than any pause of a live
/// run between renewals, short enough that a stopped replica's lease lapses
/// soon.
const LEASE_FOR: Duration = Duration::from_secs(60);
/// How often a run renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(15);

/// The claim of the run going on, here and in the lease: clears the flag
/// when dropped, so a run that fails, panics or is never spawned frees the
/// way for the next here; the lease is given back by [`RunningFlag::release`]
/// or lapses.
pub(crate) struct RunningFlag {
    reg: Registry,
}

/// Why a start was not made.
enum Claim {
    /// The run holds the lease.
    Taken,
    /// Another run holds it.
    Busy,
    /// The schedule slot was started already (by another replica).
    SlotDone,
}

impl RunningFlag {
    /// Claims the run here and the lease for run `id` (for the schedule
    /// slot `slot`, if any); `Ok(None)` when the slot was started already.
    async fn claim(reg: &Registry, id: &str, slot: Option<String>) -> Result<Option<RunningFlag>> {
        use std::sync::atomic::Ordering;
        reg.inner
            .gc_running
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| Error::GcBusy)?;
        let flag = RunningFlag { reg: reg.clone() };
        let id = id.to_owned();
        let claim = reg
            .meta(move |r| {
                r.db().transact(|tx| {
                    let now = now_millis();
                    let mut lease: GcLease =
                        meta::tx_get(tx, Table::Leases, keys::GC_LEASE)?.unwrap_or_default();
                    if slot.is_some() && lease.last_slot == slot {
                        return Ok(Claim::SlotDone);
                    }
                    if let Some(held) = &lease.run {
                        if lease.until > now {
                            return Ok(Claim::Busy);
                        }
                        // Lapsed: the replica running it stopped.
                        interrupt_in_tx(tx, held, "the server running it stopped")?;
                    }
                    lease.run = Some(id.clone());
                    lease.until = now + LEASE_FOR.as_millis() as i64;
                    if slot.is_some() {
                        lease.last_slot = slot.clone();
                    }
                    meta::tx_put(tx, Table::Leases, keys::GC_LEASE, &lease)?;
                    Ok(Claim::Taken)
                })
            })
            .await?;
        match claim {
            Claim::Taken => Ok(Some(flag)),
            Claim::Busy => Err(Error::GcBusy),
            Claim::SlotDone => Ok(None),
        }
    }

    /// Extends the lease of run `id`; false when the run no longer holds
    /// it (it lapsed and another replica took it over).
    async fn renew(&self, id: &str) -> Result<bool> {
        self.update_own_lease(id, |l| {
            l.until = now_millis() + LEASE_FOR.as_millis() as i64
        })
        .await
    }

    /// Gives the lease of run `id` back, if it still holds it.
    async fn release(&self, id: &str) -> Result<()> {
        self.update_own_lease(id, |l| {
            l.run = None;
            l.until = 0;
        })
        .await
        .map(|_| ())
    }

    /// Applies `change` to the lease if run `id` holds it; whether it did.
    async fn update_own_lease(
        &self,
        id: &str,
        change: impl Fn(&mut GcLease) + Send + 'static,
    ) -> Result<bool> {
        let id = id.to_owned();
        self.reg
            .meta(move |r| {
                r.db().transact(|tx| {
                    let mut lease: GcLease =
                        meta::tx_get(tx, Table::Leases, keys::GC_LEASE)?.unwrap_or_default();
                    if lease.run.as_deref() != Some(id.as_str()) {
                        return Ok(false);
                    }
                    change(&mut lease);
                    meta::tx_put(tx, Table::Leases, keys::GC_LEASE, &lease)?;
                    Ok(true)
                })
            })
            .await
    }
}

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.reg
            .inner
            .gc_running
            .busy
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Inside a transaction: records run `id`, if still `running`, as failed
/// for `why`.
fn interrupt_in_tx(tx: &dyn crate::meta::Txn, id: &str, why: &str) -> crate::meta::TxResult<()> {
    let key = keys::gc_run(id);
    if let Some(mut run) = meta::tx_get::<GcRun>(tx, Table::GcRuns, &key)? {
        if run.status == "running" {
            run.status = "failed".into();
            run.error = Some(format!("interrupted: {why}; start a new run"));
            run.finished_at = Some(now_millis());
            meta::tx_put(tx, Table::GcRuns, &key, &run)?;
        }
    }
    Ok(())
}

/// How often the scheduler looks at the clock.
const SCHEDULER_TICK: Duration = Duration::from_secs(20);

impl Registry {
    /// Starts a run in the background and returns its record; refused with
    /// `GcBusy` while another run is going.
    pub async fn gc_start(&self, options: GcOptions, trigger: &str) -> Result<GcRun> {
        self.gc_start_for(options, trigger, None)
            .await?
            .ok_or(Error::GcBusy)
    }

    /// [`Registry::gc_start`] for the schedule slot `slot`: `None` when a
    /// replica started that slot's run already.
    async fn gc_start_for(
        &self,
        options: GcOptions,
        trigger: &str,
        slot: Option<String>,
    ) -> Result<Option<GcRun>> {
        use futures::FutureExt;
        let id = uuid::Uuid::new_v4().to_string();
        let Some(running) = RunningFlag::claim(self, &id, slot).await? else {
            return Ok(None);
        };
        let run = GcRun {
            id,
            status: "running".into(),
            trigger: trigger.into(),
            options,
            started_at: now_millis(),
            finished_at: None,
            report: None,
            error: None,
        };
        if let Err(e) = self.save_run(&run).await {
            running.release(&run.id).await.ok();
            return Err(e);
        }
        let this = self.clone();
        let mut done = run.clone();
        tokio::spawn(async move {
            // Moved into the task: the flag clears when the task ends, by
            // return or by panic.
            let running = running;
            let (grace, ttl) = (this.inner.cfg.gc_grace, this.inner.cfg.upload_ttl);
            let work = async {
                #[cfg(test)]
                this.inner.hooks.maybe_panic_in_gc();
                let retention_deleted = if done.options.apply_retention && !done.options.dry_run {
                    this.retention_run_all().await?
                } else {
                    Vec::new()
                };
                let mut report = this.gc_run(&done.options, grace, ttl).await?;
                report.retention_deleted = retention_deleted;
                Ok::<_, Error>(report)
            };
            // A panic in the run is recorded as a failure instead of leaving
            // the run "running" forever; everything the run touched is in
            // committed transactions, so nothing is half-written.
            // The lease is renewed while the run works; a run that lost
            // it (this process stalled past the lease and another replica
            // took over) stops at once.
            let renewing = async {
                let mut tick = tokio::time::interval(RENEW_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match running.renew(&done.id).await {
                        Ok(true) => {}
                        Ok(false) => return Error::GcLeaseLost,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not renew the garbage-collection lease")
                        }
                    }
                }
            };
            let guarded = async {
                tokio::select! {
                    r = std::panic::AssertUnwindSafe(work).catch_unwind() => r,
                    e = renewing => Ok(Err(e)),
                }
            };
            let result = match guarded.await {
                Ok(r) => r,
                Err(p) => {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(Error::GcPanicked { what })
                }
            };
            done.finished_at = Some(now_millis());
            match result {
                Ok(r) => {
                    done.status = "succeeded".into();
                    done.report = Some(r);
                }
                Err(e) => {
                    tracing::error!(error = %e, run = %done.id, "garbage collection failed");
                    done.status = "failed".into();
                    done.error = Some(e.to_string());
                }
            }
            // Told before the record is saved: whoever sees the run finished
            // sees it counted too.
            if let Some(o) = this.observer() {
                o.gc_run_finished(&done);
            }
            if let Err(e) = this.save_run(&done).await {
                tracing::error!(error = %e, "could not record the garbage-collection run");
            }
            if let Err(e) = running.release(&done.id).await {
                tracing::warn!(error = %e, "could not give the garbage-collection lease back; it lapses by itself");
            }
        });
        Ok(Some(run))
    }

    async fn save_run(&self, run: &GcRun) -> Result<()> {
        let run = run.clone();
        self.meta(move |r| {
            r.db()
                .transact(|tx| meta::tx_put(tx, Table::GcRuns, &keys::gc_run(&run.id), &run))
        })
        .await?;
        self.durable().await
    }

    /// Every recorded run, most recent first.
    pub async fn gc_runs(&self) -> Result<Vec<GcRun>> {
        self.meta(move |r| r.gc_runs_blocking()).await
    }

    /// [`Registry::gc_runs`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn gc_runs_blocking(&self) -> Result<Vec<GcRun>> {
        let mut runs: Vec<GcRun> = self
            .db()
            .scan(Table::GcRuns, b"", None, usize::MAX)?
            .into_iter()
            .map(|(_, v)| meta::decode(Table::GcRuns, &v))
            .collect::<Result<_>>()?;
        runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        Ok(runs)
    }

    /// One run.
    pub async fn gc_run_get(&self, id: &str) -> Result<GcRun> {
        let id = id.to_owned();
        self.meta(move |r| r.gc_run_get_blocking(&id)).await
    }

    /// [`Registry::gc_run_get`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn gc_run_get_blocking(&self, id: &str) -> Result<GcRun> {
        self.db()
            .get_json(Table::GcRuns, &keys::gc_run(id))?
            .ok_or_else(|| Error::GcRunUnknown { id: id.to_string() })
    }

    /// Runs still `running` in the database whose lease is not held were
    /// cut short by a stop (of this process or of another replica); a run
    /// another replica is doing holds the lease and is left alone. On a
    /// blocking thread (inside [`Registry::meta`]).
    pub(crate) fn mark_interrupted_gc_runs(&self) -> Result<()> {
        for run in self.gc_runs_blocking()? {
            if run.status == "running" {
                self.db().transact(|tx| {
                    let lease: GcLease =
                        meta::tx_get(tx, Table::Leases, keys::GC_LEASE)?.unwrap_or_default();
                    if lease.run.as_deref() == Some(run.id.as_str()) && lease.until > now_millis() {
                        return Ok(());
                    }
                    interrupt_in_tx(tx, &run.id, "by a server stop")
                })?;
            }
        }
        Ok(())
    }

    /// Starts a run at each scheduled weekday and `HH:MM` (UTC) of the
    /// registry settings, once per slot.
    pub(crate) fn spawn_gc_scheduler(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SCHEDULER_TICK);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let reg = Registry { inner };
                let Ok(settings) = reg.settings().await else {
                    continue;
                };
                let Some(schedule) = settings.garbage_collection_schedule else {
                    continue;
                };
                let now = time::OffsetDateTime::now_utc();
                let weekday = now.weekday().to_string().to_lowercase();
                let hhmm = format!("{:02}:{:02}", now.hour(), now.minute());
                let slot = format!("{} {weekday} {hhmm}", now.date());
                // Every replica looks at the clock; the slot stored with
                // the lease lets one of them start the slot's run.
                if schedule.days.contains(&weekday) && schedule.time == hhmm {
                    let opts = GcOptions {
                        apply_retention: true,
                        ..GcOptions::default()
                    };
                    match reg.gc_start_for(opts, "schedule", Some(slot)).await {
                        Ok(Some(run)) => {
                            tracing::info!(run = %run.id, "scheduled garbage collection started")
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "scheduled garbage collection not started")
                        }
                    }
                }
            }
        });
    }
}
