//! Several `berth serve` replicas on one PostgreSQL database and one S3
//! bucket are one registry: what is pushed through one pulls through the
//! others, an upload moves between them, a change made on one reaches the
//! others within 2 s, garbage collection runs on one at a time and stays
//! safe against pushes on the others, and losing a replica loses nothing
//! acknowledged.
//!
//! The servers come from `tests/backends/run.sh`: `BERTH_TEST_PG_URL` (an
//! administrator's URL; each test creates a database of its own) and the
//! `BERTH_STORAGE__*` variables of the S3 server (each test uses a prefix of
//! its own). Without them these tests fail: they are `#[ignore]`d so that
//! the plain `cargo test` run does not start them.

mod common;

use common::auth::{push_blobs, put_manifest};
use common::authkit::*;
use common::gc_load;
use reqwest::Method;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// Replicas of one registry, killed on drop.
struct Set {
    replicas: Vec<Proc>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Set {
    /// Starts `n` replicas at once (they race to create the schema and the
    /// first administrator) with `config`.
    fn start(n: usize, config: &str) -> Set {
        let admin_url = std::env::var("BERTH_TEST_PG_URL")
            .expect("BERTH_TEST_PG_URL: these tests run from tests/backends/run.sh");
        assert_eq!(
            std::env::var("BERTH_STORAGE__BACKEND").as_deref(),
            Ok("s3"),
            "BERTH_STORAGE__*: these tests run from tests/backends/run.sh, on its S3 server"
        );
        let dir = tempfile::tempdir().unwrap();
        let db = common::pg_database::database_for(dir.path(), &admin_url);
        let prefix = db.rsplit('/').next().unwrap().to_string();
        let env: Vec<(String, String)> = [
            ("BERTH_METADATA__BACKEND", "postgres"),
            ("BERTH_METADATA__URL", db.as_str()),
            ("BERTH_STORAGE__PREFIX", prefix.as_str()),
            ("BERTH_ADMIN_PASSWORD", ADMIN_PW),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let starts: Vec<_> = (0..n)
            .map(|i| {
                let (root, env, config) = (
                    dir.path().join(format!("r{i}")),
                    env.clone(),
                    config.to_string(),
                );
                std::thread::spawn(move || {
                    std::fs::create_dir_all(&root).unwrap();
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    serve_with(&root, "127.0.0.1:0", &config, &env, &[], None)
                })
            })
            .collect();
        let replicas = starts
            .into_iter()
            .map(|t| t.join().expect("replica started"))
            .collect();
        Set { replicas, env, dir }
    }

    fn url(&self, i: usize) -> &str {
        &self.replicas[i].url
    }

    fn urls(&self) -> Vec<String> {
        self.replicas.iter().map(|p| p.url.clone()).collect()
    }

    /// `berth fsck --json` on the shared backends, once every replica is
    /// stopped (it refuses to run beside one): its exit code and report.
    fn fsck(&mut self) -> (Option<i32>, Value, String) {
        for p in &mut self.replicas {
            p.stop();
        }
        common::run_json(
            Command::new(env!("CARGO_BIN_EXE_berth"))
                .args(["fsck", "--json", "--data-dir"])
                .arg(self.dir.path().join("fsck"))
                .envs(self.env.iter().map(|(k, v)| (k, v))),
        )
    }
}

fn admin() -> Cred {
    basic("admin", ADMIN_PW)
}

/// Polls `ok` until it holds; fails with `what` if it does not within 2 s
/// of `since` (the acknowledgement of the change).
#[track_caller]
fn within_two_seconds(since: Instant, what: &str, ok: impl FnMut() -> bool) {
    within(Duration::from_secs(2), since, what, ok)
}

/// [`within_two_seconds`] with another limit.
#[track_caller]
fn within(limit: Duration, since: Instant, what: &str, mut ok: impl FnMut() -> bool) {
    loop {
        if ok() {
            return;
        }
        assert!(
            since.elapsed() < limit,
            "{what}: not seen on another replica within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An RFC 3339 time of the API (`2026-12-03T18:50:01.5Z`, fractions of
/// varying length) as a value that orders as the times do.
fn instant(v: &Value) -> (String, String) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let s = s.strip_suffix('Z').expect("a UTC time");
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    (whole.to_string(), format!("{frac:0<9}"))
}

fn status(r: reqwest::blocking::RequestBuilder) -> u16 {
    r.send().unwrap().status().as_u16()
}

/// Pushes through replica A pull through B and C; a chunked upload started
/// on A continues on B and finishes on C; a chunk sent twice for one offset
/// (to two replicas) is refused the second time with the session's size;
/// pushes and pulls on different replicas merge into one repository's usage.
#[test]
#[ignore = "needs PostgreSQL and S3: run by tests/backends/run.sh"]
fn one_registry_across_replicas() {
    let set = Set::start(3, &token_config("max_failed_logins = 1000"));
    let (c, admin) = (client(), admin());
    let img = push_blobs(&c, set.url(0), "acme/app", &admin, "a");
    assert_eq!(
        put_manifest(&c, set.url(0), "acme/app", "v1", &img, &admin),
        201
    );
    for i in [1, 2] {
        let r = send(
            &c,
            Method::GET,
            &format!("{}/v2/acme/app/manifests/v1", set.url(i)),
            &admin,
        )
        .header("accept", MT)
        .send()
        .unwrap();
        assert_eq!(r.status(), 200, "manifest through replica {i}");
        assert_eq!(
            r.text().unwrap(),
            img.manifest,
            "manifest bytes through replica {i}"
        );
    }

    let chunks: Vec<Vec<u8>> = (0..3).map(|i| common::bytes(70 + i, 300_000)).collect();
    let whole = chunks.concat();
    let r = send(
        &c,
        Method::POST,
        &format!("{}/v2/acme/app/blobs/uploads/", set.url(0)),
        &admin,
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let at = |i: usize| {
        if loc.starts_with("http") {
            let path = &loc[loc.find("/v2/").unwrap()..];
            format!("{}{path}", set.url(i))
        } else {
            format!("{}{loc}", set.url(i))
        }
    };
    let patch = |i: usize, start: usize, body: &[u8]| {
        send(&c, Method::PATCH, &at(i), &admin)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{start}-{}", start + body.len() - 1),
            )
            .body(body.to_vec())
            .send()
            .unwrap()
    };
    let n = chunks[0].len();
    let r = patch(0, 0, &chunks[0]);
    assert_eq!(r.status(), 202, "first chunk on replica 0");
    let r = patch(1, n, &chunks[1]);
    assert_eq!(r.status(), 202, "second chunk on replica 1");
    assert_eq!(r.headers()["range"], format!("0-{}", 2 * n - 1).as_str());
    // The first chunk again, on the third replica: refused, with the size
    // the two replicas recorded.
    let r = patch(2, 0, &chunks[0]);
    assert_eq!(
        r.status(),
        416,
        "a stale chunk on replica 2: {:?}",
        r.text()
    );
    let r = send(&c, Method::GET, &at(2), &admin).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], format!("0-{}", 2 * n - 1).as_str());
    let d = common::digest(&whole);
    let r = send(
        &c,
        Method::PUT,
        &common::with_param(&at(2), &format!("digest={d}")),
        &admin,
    )
    .header("content-type", "application/octet-stream")
    .body(chunks[2].clone())
    .send()
    .unwrap();
    assert_eq!(
        r.status(),
        201,
        "final chunk and commit on replica 2: {:?}",
        r.text()
    );
    let r = send(
        &c,
        Method::GET,
        &format!("{}/v2/acme/app/blobs/{d}", set.url(0)),
        &admin,
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().unwrap() == whole,
        "the blob pulled through replica 0 differs"
    );

    // Usage: the pulls through replicas 1 and 2 above and one more through
    // replica 2 now; every replica then shows that last one, and the same
    // size. Pull times are written in batches every 2 s (see the README),
    // so they take up to that longer to show.
    let repo = |i: usize| {
        let (s, v) = api(
            &c,
            Method::GET,
            set.url(i),
            "/namespaces/acme/repositories/app",
            &admin,
            None,
        );
        assert_eq!(s, 200, "{v}");
        v["repository"].clone()
    };
    let t = Instant::now();
    within(Duration::from_secs(4), t, "first pulls", || {
        !repo(0)["last_pull"].is_null()
    });
    let first = instant(&repo(0)["last_pull"]);
    std::thread::sleep(Duration::from_millis(20));
    let r = send(
        &c,
        Method::GET,
        &format!("{}/v2/acme/app/manifests/v1", set.url(2)),
        &admin,
    )
    .header("accept", MT)
    .send()
    .unwrap();
    assert_eq!(r.status(), 200);
    let t = Instant::now();
    within(
        Duration::from_secs(4),
        t,
        "last pull through replica 2",
        || {
            let (a, b) = (repo(0), repo(1));
            !a["last_pull"].is_null()
                && instant(&a["last_pull"]) > first
                && a["last_pull"] == b["last_pull"]
                && a["size"] == b["size"]
                && a["size"].as_u64() > Some(0)
        },
    );
}

/// Changes made through one replica take effect on the others within 2 s:
/// tags, repository deletes, namespaces and their visibility, users and
/// passwords, grants, tokens, the signing key, the registry settings and
/// the subnet allow-list.
#[test]
#[ignore = "needs PostgreSQL and S3: run by tests/backends/run.sh"]
fn changes_reach_every_replica_within_two_seconds() {
    let set = Set::start(3, &token_config("max_failed_logins = 1000"));
    let (c, admin) = (client(), admin());
    let (a, b, z) = (set.url(0), set.url(1), set.url(2));
    let manifest_status = |url: &str, repo: &str, reference: &str, cred: &Cred| {
        status(
            send(
                &c,
                Method::GET,
                &format!("{url}/v2/{repo}/manifests/{reference}"),
                cred,
            )
            .header("accept", MT),
        )
    };

    // Namespaces: created on A, seen on B.
    let (s, v) = api(
        &c,
        Method::POST,
        a,
        "/namespaces",
        &admin,
        Some(json!({"name": "team"})),
    );
    assert_eq!(s, 201, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "namespace created", || {
        api(&c, Method::GET, b, "/namespaces/team", &admin, None).0 == 200
    });

    // Tags: pushed on A, deleted on A, gone on B and C.
    let img = push_blobs(&c, a, "team/app", &admin, "t");
    assert_eq!(put_manifest(&c, a, "team/app", "v1", &img, &admin), 201);
    assert_eq!(put_manifest(&c, a, "team/app", "v2", &img, &admin), 201);
    assert_eq!(manifest_status(b, "team/app", "v1", &admin), 200);
    let (s, v) = api(
        &c,
        Method::DELETE,
        a,
        "/namespaces/team/repositories/app/tags/v1",
        &admin,
        None,
    );
    assert_eq!(s, 204, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "tag deleted", || {
        manifest_status(b, "team/app", "v1", &admin) == 404
            && manifest_status(z, "team/app", "v1", &admin) == 404
    });

    // Visibility: a private namespace made public on A; anonymous pull
    // tokens from B then grant pull.
    let anonymous_pull = |url: &str| {
        let (s, v) = get_token(&c, url, &Cred::None, &["repository:team/app:pull"]);
        assert_eq!(s, 200, "{v}");
        let claims = jwt_claims(v["token"].as_str().unwrap());
        claims["access"].as_array().is_some_and(|a| !a.is_empty())
    };
    assert!(
        !anonymous_pull(b),
        "a private namespace grants anonymous pulls"
    );
    let (s, v) = api(
        &c,
        Method::PATCH,
        a,
        "/namespaces/team",
        &admin,
        Some(json!({"is_public": true})),
    );
    assert_eq!(s, 200, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "namespace made public", || anonymous_pull(b));

    // Users and passwords: created on A, signs in on B; password changed
    // on C, the old one refused on B.
    create_user(&c, a, &admin, "dev", PW);
    let dev = basic("dev", PW);
    let t = Instant::now();
    within_two_seconds(t, "user created", || {
        api(&c, Method::GET, b, "/me", &dev, None).0 == 200
    });
    let (s, v) = api(
        &c,
        Method::PUT,
        z,
        "/users/dev/password",
        &admin,
        Some(json!({"password": "new-password-2"})),
    );
    assert_eq!(s, 200, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "password changed", || {
        api(&c, Method::GET, b, "/me", &dev, None).0 == 401
    });
    let dev = basic("dev", "new-password-2");
    assert_eq!(api(&c, Method::GET, b, "/me", &dev, None).0, 200);

    // Grants: writer on A lets dev push through B; removed on C, B refuses.
    grant(&c, a, &admin, "team", "dev", "writer");
    let dev_push = |url: &str, tag: &str| put_manifest(&c, url, "team/app", tag, &img, &dev);
    let t = Instant::now();
    within_two_seconds(t, "grant given", || dev_push(b, "dev1") == 201);
    let (s, v) = api(
        &c,
        Method::DELETE,
        z,
        "/namespaces/team/grants/dev",
        &admin,
        None,
    );
    assert_eq!(s, 204, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "grant removed", || {
        matches!(dev_push(b, "dev2"), 401 | 403)
    });

    // Tokens: created on A, used on B; revoked on C, refused on B.
    let (id, secret) = create_scoped_token(
        &c,
        a,
        &admin,
        json!({"name": "ci", "scopes": [{"repository": "team/*", "actions": ["pull"]}]}),
    );
    let ci = basic("ci", &secret);
    let tags = |url: &str, cred: &Cred| {
        status(send(
            &c,
            Method::GET,
            &format!("{url}/v2/team/app/tags/list"),
            cred,
        ))
    };
    let t = Instant::now();
    within_two_seconds(t, "token created", || tags(b, &ci) == 200);
    let (s, v) = api(
        &c,
        Method::DELETE,
        z,
        &format!("/tokens/{id}"),
        &admin,
        None,
    );
    assert_eq!(s, 204, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "token revoked", || tags(b, &ci) == 401);

    // Signing key: a bearer token from A works on B; after a rotation on
    // C, it is refused on A and B, and one signed with the new key from C
    // is accepted on A at once.
    let bearer_from = |url: &str| {
        let (s, v) = get_token(&c, url, &admin, &["repository:team/app:pull"]);
        assert_eq!(s, 200, "{v}");
        Cred::Bearer(v["token"].as_str().unwrap().to_string())
    };
    let old = bearer_from(a);
    assert_eq!(tags(b, &old), 200);
    let (s, v) = api(&c, Method::POST, z, "/signing-key", &admin, None);
    assert_eq!(s, 200, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "signing key rotated", || {
        tags(a, &old) == 401 && tags(b, &old) == 401
    });
    let new = bearer_from(z);
    assert_eq!(
        tags(a, &new),
        200,
        "a token signed with the new key, on another replica"
    );

    // Registry settings: the GC schedule set on A is what B reports.
    let schedule = json!({"days": ["sunday"], "time": "03:30"});
    let (s, v) = api(
        &c,
        Method::PATCH,
        a,
        "/registry",
        &admin,
        Some(json!({"garbage_collection_schedule": schedule})),
    );
    assert_eq!(s, 200, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "GC schedule", || {
        api(&c, Method::GET, b, "/registry", &admin, None).1["garbage_collection_schedule"]
            == schedule
    });

    // The allow-list, set on A from 127.0.0.2 to admit only that address:
    // B refuses 127.0.0.1 and still answers 127.0.0.2; cleared again on C.
    let other = client_from("127.0.0.2");
    let (s, v) = api(
        &other,
        Method::PATCH,
        a,
        "/registry",
        &admin,
        Some(json!({"api_subnet_allow_list": ["127.0.0.2"]})),
    );
    assert_eq!(s, 200, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "allow-list", || {
        api(&c, Method::GET, b, "/registry", &admin, None).0 == 403
    });
    assert_eq!(
        api(&other, Method::GET, b, "/registry", &admin, None).0,
        200
    );
    let (s, v) = api(
        &other,
        Method::PATCH,
        z,
        "/registry",
        &admin,
        Some(json!({"api_subnet_allow_list": []})),
    );
    assert_eq!(s, 200, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "allow-list cleared", || {
        api(&c, Method::GET, b, "/registry", &admin, None).0 == 200
    });

    // Repository delete on A: gone from B's catalog and pulls.
    let (s, v) = api(
        &c,
        Method::DELETE,
        a,
        "/namespaces/team/repositories/app",
        &admin,
        None,
    );
    assert_eq!(s, 204, "{v}");
    let t = Instant::now();
    within_two_seconds(t, "repository deleted", || {
        let r = send(&c, Method::GET, &format!("{b}/v2/_catalog"), &admin)
            .send()
            .unwrap();
        let catalog: Value = r.json().unwrap();
        !catalog["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "team/app")
            && manifest_status(z, "team/app", "v2", &admin) == 404
    });
}

/// The online GC load of `gc_online.rs` spread over three replicas: pushes
/// and repository deletes through all of them, GC runs started on all of
/// them at once. Runs never overlap (the lease), every acknowledged image
/// of a surviving repository pulls through another replica, and fsck is
/// clean afterwards.
#[test]
#[ignore = "needs PostgreSQL and S3: run by tests/backends/run.sh"]
fn gc_runs_on_one_replica_at_a_time_and_pushes_elsewhere_survive() {
    let mut set = Set::start(3, "[gc]\ngrace_period_secs = 0\n");
    let bases = set.urls();
    let log = gc_load::run(&bases, 6, 30);
    gc_load::check(&log, &bases);
    assert!(
        log.gc_conflicts > 0,
        "no start was refused while another replica's run went on"
    );
    let mut spans: Vec<_> = log
        .runs
        .iter()
        .map(|r| (instant(&r["started_at"]), instant(&r["finished_at"])))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "two GC runs overlapped: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    let (code, report, raw) = set.fsck();
    assert_eq!(code, Some(0), "fsck after the load: {raw}");
    assert!(
        report["problems"].as_array().is_some_and(|p| p.is_empty()),
        "fsck problems: {raw}"
    );
    assert!(report["blobs_checked"].as_u64().unwrap_or(0) > 0, "{raw}");
}

/// A replica killed mid-upload loses nothing acknowledged: the chunks it
/// took are there for the next replica, which finishes the upload; a
/// monolithic push cut off with the replica is retried on another.
#[test]
#[ignore = "needs PostgreSQL and S3: run by tests/backends/run.sh"]
fn losing_a_replica_mid_upload_loses_nothing_acknowledged() {
    let mut set = Set::start(2, "");
    let c = client();
    let first = common::bytes(5, 200_000);
    let rest = common::bytes(6, 100_000);
    let r = c
        .post(format!("{}/v2/acme/big/blobs/uploads/", set.url(0)))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let path = loc[loc.find("/v2/").unwrap()..].to_string();
    let r = c
        .patch(format!("{}{path}", set.url(0)))
        .header("content-type", "application/octet-stream")
        .body(first.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "chunk acknowledged by replica 0");
    // The replica that took the chunk dies without a chance to flush.
    let p = &mut set.replicas[0];
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    let whole = [first, rest.clone()].concat();
    let d = common::digest(&whole);
    let r = c
        .put(format!("{}{path}?digest={d}", set.url(1)))
        .header("content-type", "application/octet-stream")
        .body(rest)
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "the upload finished on replica 1: {:?}",
        r.text()
    );
    let r = c
        .get(format!("{}/v2/acme/big/blobs/{d}", set.url(1)))
        .send()
        .unwrap();
    assert!(r.bytes().unwrap() == whole, "the blob differs");

    // A push to the dead replica fails for the client, whose retry on the
    // other one succeeds.
    let again = common::bytes(7, 50_000);
    assert!(c
        .post(format!(
            "{}/v2/acme/big/blobs/uploads/?digest={}",
            set.url(0),
            common::digest(&again)
        ))
        .body(again.clone())
        .send()
        .is_err());
    common::push_blob(set.url(1), "acme/big", &again);
}

/// The project's conformance suite with every request sent to the next of
/// three replicas.
#[test]
#[ignore = "needs PostgreSQL and S3: run by tests/backends/run.sh"]
fn conformance_across_replicas() {
    let set = Set::start(3, "");
    let report = berth_conformance::run_spread(&set.urls());
    report.print();
    assert!(
        report.results.len() > 50,
        "only {} checks ran",
        report.results.len()
    );
    assert_eq!(
        report.failed(),
        0,
        "{} of {} conformance checks failed across replicas (see the FAIL lines above)",
        report.failed(),
        report.results.len()
    );
}
