//! Distribution-spec conformance suite for OCI registries.
//!
//! [`run`] drives a live registry over HTTP through the four workflows of the
//! OCI distribution-spec conformance suite (pull, push, content discovery,
//! content management) plus a set of error-handling checks, and returns a
//! [`Report`] with one [`CheckResult`] per check. Nothing is assumed about the
//! registry's storage; every check talks `/v2` only.
//!
//! Every run uses repository names under `conformance/<run-id>/`, where the
//! run id is derived from the clock and the process id, so the suite can be run
//! repeatedly against the same server. Blob contents also include the run id,
//! so no check can be satisfied by data left behind by an earlier run.
//!
//! A check that panics is caught and reported as a failure; the run goes on.
#![warn(missing_docs)]

use std::panic::{catch_unwind, AssertUnwindSafe};

/// `ensure!(cond, "format", args)`: fail the check with the message unless
/// `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

mod client;
mod fixtures;
mod workflows;

use client::Ctx;

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// Workflow the check belongs to: `pull`, `push`, `content-discovery`,
    /// `content-management` or `errors`.
    pub workflow: &'static str,
    /// Short kebab-case name of the check, unique within its workflow.
    pub name: String,
    /// Whether every assertion of the check held.
    pub ok: bool,
    /// Why the check failed (the request and the response that did not match);
    /// empty when it passed.
    pub detail: String,
}

/// The results of one conformance run, in the order the checks ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per check.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// Number of checks that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.ok).count()
    }

    /// Number of checks that failed (including panicked checks and failed
    /// setup steps).
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.ok).count()
    }

    /// Prints one line per check to stdout (`PASS workflow/name` or
    /// `FAIL workflow/name: detail`), then `N passed, N failed`.
    pub fn print(&self) {
        for r in &self.results {
            if r.ok {
                println!("PASS {}/{}", r.workflow, r.name);
            } else {
                let detail: String = r
                    .detail
                    .chars()
                    .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                    .collect();
                println!("FAIL {}/{}: {}", r.workflow, r.name, detail);
            }
        }
        println!("{} passed, {} failed", self.passed(), self.failed());
    }
}

/// Runs the whole suite against the registry at `base_url` (for example
/// `http://127.0.0.1:5000`, with or without a trailing slash) and returns the
/// report. Never panics because of the registry's behaviour: transport errors,
/// unexpected answers and panics inside checks all become failed checks.
pub fn run(base_url: &str) -> Report {
    run_ctx(Ctx::new(base_url))
}

/// [`run`] with an `Authorization` header on every request, for a registry
/// with authentication on (e.g. `Basic <base64 of user:password>`).
pub fn run_with_authorization(base_url: &str, authorization: &str) -> Report {
    run_ctx(Ctx::new(base_url).with_authorization(authorization))
}

/// [`run`] against several replicas of one registry, each request to the
/// next one.
pub fn run_spread(bases: &[String]) -> Report {
    run_ctx(Ctx::spread(bases))
}

fn run_ctx(ctx: Ctx) -> Report {
    let mut suite = Suite {
        ctx,
        results: Vec::new(),
    };
    workflows::pull(&mut suite);
    workflows::push(&mut suite);
    workflows::discovery(&mut suite);
    workflows::management(&mut suite);
    workflows::errors(&mut suite);
    Report {
        results: suite.results,
    }
}

/// Result type of one check body: `Err` carries the failure detail.
pub(crate) type Outcome<T = ()> = Result<T, String>;

/// Runs checks and collects their results.
pub(crate) struct Suite {
    ctx: Ctx,
    results: Vec<CheckResult>,
}

impl Suite {
    /// The connection and naming context shared by all checks.
    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Runs one check, catching panics.
    pub(crate) fn check(
        &mut self,
        workflow: &'static str,
        name: &str,
        f: impl FnOnce(&Ctx) -> Outcome,
    ) {
        self.setup(workflow, name, f);
    }

    /// Runs a step whose value later checks need; it is reported like a check.
    /// Returns `None` when it failed.
    pub(crate) fn setup<T>(
        &mut self,
        workflow: &'static str,
        name: &str,
        f: impl FnOnce(&Ctx) -> Outcome<T>,
    ) -> Option<T> {
        let ctx = &self.ctx;
        let (value, ok, detail) = match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
            Ok(Ok(v)) => (Some(v), true, String::new()),
            Ok(Err(e)) => (None, false, e),
            Err(panic) => (
                None,
                false,
                format!("check panicked: {}", panic_message(&*panic)),
            ),
        };
        self.results.push(CheckResult {
            workflow,
            name: name.to_string(),
            ok,
            detail,
        });
        value
    }

    /// Records that checks could not run because their setup failed.
    pub(crate) fn skipped(&mut self, workflow: &'static str, names: &[&str], setup: &str) {
        for name in names {
            self.results.push(CheckResult {
                workflow,
                name: name.to_string(),
                ok: false,
                detail: format!("not run: {workflow}/{setup} failed"),
            });
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_failures() {
        let mut s = Suite {
            ctx: Ctx::new("http://127.0.0.1:9"),
            results: Vec::new(),
        };
        s.check("pull", "boom", |_| panic!("kaboom"));
        s.check("pull", "fine", |_| Ok(()));
        s.check("pull", "bad", |_| Err("nope".into()));
        let r = Report { results: s.results };
        assert_eq!((r.passed(), r.failed()), (1, 2));
        assert!(r.results[0].detail.contains("kaboom"));
    }
}
