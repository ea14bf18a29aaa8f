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
/// would only race each other for the same blobs.
#[derive(Default)]
pub(crate) struct RunGuard {
    // Why an AtomicBool: set by whoever starts a run, cleared when it ends;
    // a second start sees it set and is refused.
    busy: std::sync::atomic::AtomicBool,
}

/// The claim on [`RunGuard`] of the run going on: clears the flag when
/// dropped, so a run that fails, panics or is never spawned frees the way
/// for the next.
pub(crate) struct RunningFlag {
    reg: Registry,
}

impl RunningFlag {
    pub(crate) fn claim(reg: &Registry) -> Result<RunningFlag> {
        use std::sync::atomic::Ordering;
        reg.inner
            .gc_running
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| Error::GcBusy)?;
        Ok(RunningFlag { reg: reg.clone() })
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

/// How often the scheduler looks at the clock.
const SCHEDULER_TICK: Duration = Duration::from_secs(20);

impl Registry {
    /// Starts a run in the background and returns its record; refused with
    /// `GcBusy` while another run is going.
    pub async fn gc_start(&self, options: GcOptions, trigger: &str) -> Result<GcRun> {
        use futures::FutureExt;
        let running = RunningFlag::claim(self)?;
        let run = GcRun {
            id: uuid::Uuid::new_v4().to_string(),
            status: "running".into(),
            trigger: trigger.into(),
            options,
            started_at: now_millis(),
            finished_at: None,
            report: None,
            error: None,
        };
        self.save_run(&run).await?;
        let this = self.clone();
        let mut done = run.clone();
        tokio::spawn(async move {
            // Moved into the task: the flag clears when the task ends, by
            // return or by panic.
            let _running = running;
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
            let result = match std::panic::AssertUnwindSafe(work).catch_unwind().await {
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
        });
        Ok(run)
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

    /// Runs still `running` in the database were cut short by a stop. On a
    /// blocking thread (inside [`Registry::meta`]).
    pub(crate) fn mark_interrupted_gc_runs(&self) -> Result<()> {
        for mut run in self.gc_runs_blocking()? {
            if run.status == "running" {
                run.status = "failed".into();
                run.error = Some("interrupted by a server stop; start a new run".into());
                run.finished_at = Some(now_millis());
                self.db()
                    .transact(|tx| meta::tx_put(tx, Table::GcRuns, &keys::gc_run(&run.id), &run))?;
            }
        }
        Ok(())
    }

    /// Starts a run at each scheduled weekday and `HH:MM` (UTC) of the
    /// registry settings, once per slot.
    pub(crate) fn spawn_gc_scheduler(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut last_slot: Option<String> = None;
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
                if schedule.days.contains(&weekday)
                    && schedule.time == hhmm
                    && last_slot.as_deref() != Some(slot.as_str())
                {
                    last_slot = Some(slot);
                    let opts = GcOptions {
                        apply_retention: true,
                        ..GcOptions::default()
                    };
                    match reg.gc_start(opts, "schedule").await {
                        Ok(run) => {
                            tracing::info!(run = %run.id, "scheduled garbage collection started")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "scheduled garbage collection not started")
                        }
                    }
                }
            }
        });
    }
}
