//! Black-box tests of namespace deletion: repositories hidden at once then
//! gone, pushes racing the deletion, pushes into a namespace being deleted,
//! and what survives a restart (everything, and a deletion under way).

mod common;

use common::bytes;
use common::management::*;
use common::{digest, Server};
use reqwest::Method;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Every repository of a namespace, through all pages.
#[track_caller]
fn all_repositories(base: &str, ns: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for page in 1.. {
        let r = get(&api(
            base,
            &format!("/namespaces/{ns}/repositories?page={page}&page_size=100"),
        ));
        let v = ok(&r, 200);
        let got = names(v, "repositories");
        if got.is_empty() {
            assert_eq!(v["total_count"], out.len(), "total_count of {ns}");
            break;
        }
        out.extend(got);
    }
    out
}

#[test]
fn namespace_delete_hides_repositories_at_once_then_goes() {
    let (s, _d) = Server::start();
    let b = s.url();
    let mut imgs = Vec::new();
    for i in 0..6 {
        imgs.push(push_simple(b, &format!("acme/r{i}"), "1", i));
    }
    push_simple(b, "acme/deep/er", "1", 50);
    let keep = push_simple(b, "other/x", "1", 60);
    let old = get(&api(b, "/namespaces/acme")).json;
    assert_eq!(old["image_count"], 7);

    let r = delete(&api(b, "/namespaces/acme"));
    let dn = ok(&r, 202).clone();
    assert_eq!(dn["status"], "deleting");
    assert_eq!(dn["name"], "acme");
    assert_eq!(dn["id"], old["id"]);
    // At once: nothing of acme is visible any more.
    let r = get(&api(b, "/namespaces/acme/repositories"));
    match r.status {
        200 => {
            assert_eq!(r.json["repositories"], json!([]), "{}", r.text);
            assert_eq!(r.json["total_count"], 0);
        }
        404 => assert_err(&r, 404, "not_found", None),
        _ => panic!(
            "repositories of a deleted namespace: {} {}",
            r.status, r.text
        ),
    }
    let n = get(&api(b, "/namespaces/acme"));
    match n.status {
        200 => {
            assert_eq!(n.json["status"], "deleting");
            assert_eq!(n.json["image_count"], 0);
        }
        404 => {}
        st => panic!("namespace during deletion: {st} {}", n.text),
    }
    assert_err(
        &get(&api(b, "/namespaces/acme/repositories/r0")),
        404,
        "not_found",
        None,
    );
    assert_eq!(catalog(b), vec!["other/x"]);
    for i in 0..6 {
        assert_v2_name_unknown(b, &format!("acme/r{i}"));
        let r = get(&format!("{b}/v2/acme/r{i}/manifests/1"));
        assert_eq!(r.status, 404);
    }
    assert_v2_name_unknown(b, "acme/deep/er");
    // Then the namespace goes; meanwhile _catalog never shows its
    // repositories again.
    let mut leaked = Vec::new();
    let gone = wait_for(5, || {
        let c = catalog(b);
        if c.iter().any(|n| n.starts_with("acme/")) {
            leaked.push(c);
        }
        (get(&api(b, "/namespaces/acme")).status == 404).then_some(())
    });
    assert!(gone.is_some(), "namespace still there 5 s after DELETE");
    assert!(
        leaked.is_empty(),
        "_catalog listed repositories of the namespace being deleted: {leaked:?}"
    );
    let l = get(&api(b, "/namespaces"));
    assert_eq!(names(&l.json, "namespaces"), vec!["other"]);
    assert_eq!(catalog(b), vec!["other/x"]);
    // Other namespaces untouched.
    assert_eq!(get(&api(b, "/namespaces/other")).json["size"], keep.size());
    assert_eq!(get(&format!("{b}/v2/other/x/manifests/1")).status, 200);

    // A new push re-creates it, fresh and private: once the namespace is
    // reported gone, pushes to it are accepted.
    let probe = config_bytes("acme/r0-99", "amd64"); // push_simple's config
    let r = send(
        Method::POST,
        &format!("{b}/v2/acme/r0/blobs/uploads/?digest={}", digest(&probe)),
        Some(("application/octet-stream", probe.clone())),
    );
    assert_eq!(
        r.status, 201,
        "blob push right after GET /api/v1/namespaces/acme answered 404: {}",
        r.text
    );
    let img = push_simple(b, "acme/r0", "new", 99);
    let n = get(&api(b, "/namespaces/acme"));
    let n = ok(&n, 200);
    assert_ne!(n["id"], old["id"]);
    assert_eq!(n["status"], "ready");
    assert_eq!(n["image_count"], 1);
    assert_eq!(n["size"], img.size());
    let r = get(&api(b, "/namespaces/acme/repositories/r0"));
    assert_eq!(names(ok(&r, 200), "tags"), vec!["new"]);
    assert_eq!(catalog(b), vec!["acme/r0", "other/x"]);
    assert_eq!(get(&format!("{b}/v2/acme/r0/manifests/1")).status, 404);
}

/// One push attempt during the race.
#[derive(Debug)]
struct Attempt {
    repo: String,
    statuses: Vec<u16>,
    manifest_sent: Instant,
    manifest_status: Option<u16>,
    first_5xx: Option<String>,
    img: Image,
}

#[test]
fn push_racing_namespace_deletion_never_leaves_a_half_deleted_namespace() {
    let (s, _d) = Server::start();
    let b = s.url().to_string();
    // Enough repositories that the deletion takes a moment.
    for i in 0..30 {
        push_simple(&b, &format!("racy/pre{i}"), "1", 1000 + i);
    }
    const THREADS: usize = 4;
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let stop_at = Arc::new(OnceLock::<Instant>::new());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let b = b.clone();
            let barrier = barrier.clone();
            let stop_at = stop_at.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut out = Vec::new();
                let mut i = 0u64;
                loop {
                    if stop_at.get().is_some_and(|s| Instant::now() > *s) {
                        break;
                    }
                    let repo = format!("racy/t{t}-{i}");
                    let seed = 10_000 + t as u64 * 1000 + i;
                    let config = config_bytes(&repo, "amd64");
                    let layer = bytes(seed, 200);
                    let img = image_manifest(
                        &config,
                        OCI_CONFIG,
                        std::slice::from_ref(&layer),
                        json!({}),
                    );
                    let mut statuses = Vec::new();
                    let mut first_5xx = None;
                    for data in [&config, &layer] {
                        let d = digest(data);
                        let r = send(
                            Method::POST,
                            &format!("{b}/v2/{repo}/blobs/uploads/?digest={d}"),
                            Some(("application/octet-stream", data.to_vec())),
                        );
                        if r.status >= 500 && first_5xx.is_none() {
                            first_5xx = Some(format!("POST blob upload: {} {}", r.status, r.text));
                        }
                        statuses.push(r.status);
                    }
                    let manifest_sent = Instant::now();
                    let mut manifest_status = None;
                    if statuses.iter().all(|s| *s == 201) {
                        let r = put_manifest(&b, &repo, "1", OCI_MANIFEST, &img.manifest);
                        if r.status >= 500 && first_5xx.is_none() {
                            first_5xx = Some(format!("PUT manifest: {} {}", r.status, r.text));
                        }
                        statuses.push(r.status);
                        manifest_status = Some(r.status);
                    }
                    out.push(Attempt {
                        repo,
                        statuses,
                        manifest_sent,
                        manifest_status,
                        first_5xx,
                        img,
                    });
                    i += 1;
                }
                out
            })
        })
        .collect();
    barrier.wait();
    thread::sleep(Duration::from_millis(150));
    let r = delete(&api(&b, "/namespaces/racy"));
    let deleted_at = Instant::now();
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["status"], "deleting");
    let _ = stop_at.set(Instant::now() + Duration::from_millis(700));
    let attempts: Vec<Attempt> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("push thread"))
        .collect();

    // Wait for the deletion to finish (or a fresh namespace to be ready).
    let settled = wait_for(5, || {
        let r = get(&api(&b, "/namespaces/racy"));
        (r.status == 404 || r.json["status"] == "ready").then_some(r)
    })
    .expect("namespace still deleting 5 s after DELETE");

    // Every response was a clean one: success or a client error, no 5xx.
    let server_errors: Vec<(&str, &str)> = attempts
        .iter()
        .filter_map(|a| Some((a.repo.as_str(), a.first_5xx.as_deref()?)))
        .collect();

    let cat: BTreeSet<String> = catalog(&b)
        .into_iter()
        .filter(|n| n.starts_with("racy/"))
        .collect();
    assert!(
        cat.iter().all(|n| !n.starts_with("racy/pre")),
        "repositories from before the deletion survived: {cat:?}"
    );
    if settled.status == 404 {
        assert!(cat.is_empty(), "repositories without a namespace: {cat:?}");
    } else {
        // A fresh namespace: ready, and the API and _catalog agree.
        let api_names = all_repositories(&b, "racy");
        assert_eq!(api_names, cat, "API and _catalog disagree");
        assert_eq!(settled.json["image_count"], cat.len());
    }
    // Whatever is visible is whole: its tag resolves, its blobs are served.
    for name in &cat {
        if let Some(a) = attempts.iter().find(|a| &a.repo == name) {
            if a.manifest_status == Some(201) {
                let r = get(&format!("{b}/v2/{name}/manifests/1"));
                assert_eq!(r.status, 200, "{name}: tag does not resolve");
                assert_eq!(r.text.as_bytes(), a.img.manifest.as_slice());
                for (d, _) in a.img.blobs() {
                    assert_eq!(
                        get(&format!("{b}/v2/{name}/blobs/{d}")).status,
                        200,
                        "{name}: blob {d} missing"
                    );
                }
            }
        }
    }
    // A push that started after the DELETE was answered and succeeded
    // went into a fresh namespace and stays visible.
    for a in &attempts {
        if a.manifest_status == Some(201) && a.manifest_sent > deleted_at {
            // Lost only if the server let it write into the namespace
            // while it was being deleted.
            assert!(
                cat.contains(&a.repo),
                "{}: push acknowledged after the DELETE, then lost",
                a.repo
            );
        }
    }
    // A failed manifest push stored no tag.
    for a in &attempts {
        if a.manifest_status.is_some_and(|s| s != 201) && cat.contains(&a.repo) {
            let r = get(&format!("{b}/v2/{}/manifests/1", a.repo));
            assert_eq!(r.status, 404, "{}: failed push left a tag", a.repo);
        }
    }
    // After the deletion a push works and the namespace is ready.
    push_simple(&b, "racy/after", "1", 5);
    let n = get(&api(&b, "/namespaces/racy"));
    assert_eq!(ok(&n, 200)["status"], "ready");
    assert!(catalog(&b).contains(&"racy/after".to_string()));
    let outcomes: BTreeMap<Vec<u16>, usize> = attempts.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.statuses.clone()).or_default() += 1;
        m
    });
    assert!(
        server_errors.is_empty(),
        "{} pushes racing the namespace deletion got server errors (want a clean 4xx), \
         first: {:?}; all outcomes (statuses -> count): {outcomes:?}",
        server_errors.len(),
        server_errors.first()
    );
    eprintln!("race outcomes (statuses -> count): {outcomes:?}");
}

#[test]
fn push_into_a_namespace_being_deleted_is_refused_cleanly() {
    // An upload session opened before the deletion and finished while it is
    // in progress or after it must either fail with a client error and leave
    // nothing, or succeed into a fresh namespace.
    let (s, _d) = Server::start();
    let b = s.url();
    for i in 0..20 {
        push_simple(b, &format!("gone/pre{i}"), "1", 200 + i);
    }
    let layer = bytes(7, 5000);
    let r = http()
        .post(format!("{b}/v2/gone/late/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{b}{loc}")
    };
    let r = delete(&api(b, "/namespaces/gone"));
    assert_eq!(r.status, 202);
    // Straight away, while the purge may still run.
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = send(
        Method::PUT,
        &format!("{loc}{sep}digest={}", digest(&layer)),
        Some(("application/octet-stream", layer.clone())),
    );
    let blob_now = push_blob_status(b, "gone/now", &bytes(8, 100));
    eprintln!(
        "during deletion: session PUT {} {}, monolithic POST {blob_now}",
        put.status, put.text
    );
    assert!(
        put.status < 500 && blob_now < 500,
        "push during namespace deletion: session PUT {} {}, monolithic POST {blob_now}",
        put.status,
        put.text
    );
    wait_for(5, || {
        let r = get(&api(b, "/namespaces/gone"));
        (r.status == 404 || r.json["status"] == "ready").then_some(())
    })
    .expect("deletion did not finish");
    let cat = catalog(b);
    assert!(
        cat.iter().all(|n| !n.starts_with("gone/pre")),
        "old repositories visible: {cat:?}"
    );
    let ns = get(&api(b, "/namespaces/gone"));
    for n in cat.iter().filter(|n| n.starts_with("gone/")) {
        assert_eq!(ns.status, 200, "{n} visible without its namespace");
        assert_eq!(ns.json["status"], "ready");
    }
}

#[test]
fn everything_survives_a_restart() {
    let (mut s, _d) = Server::start();
    let b = s.url().to_string();
    let ns = post_json(
        &api(&b, "/namespaces"),
        &json!({"name": "kept", "description": "d", "project_id": "p", "is_public": true}),
    );
    let ns = ok(&ns, 201).clone();
    let settings = json!({
        "name": "persisted",
        "region": "r1",
        "garbage_collection_schedule": {"days": ["tuesday"], "time": "04:15"},
        "api_subnet_allow_list": ["127.0.0.0/8", "::1/128", "10.0.0.0/8"],
        "features": {"vulnerability_scanning": {"enabled": true}},
    });
    let r = patch_json(&api(&b, "/registry"), &settings);
    assert_eq!(ok(&r, 200), &settings);
    let img = push_simple(&b, "acme/team/web", "1", 1);
    push_simple(&b, "acme/gone", "1", 2);
    assert_eq!(
        delete(&api(&b, "/namespaces/acme/repositories/gone")).status,
        204
    );
    let before_repo = get(&api(&b, "/namespaces/acme/repositories/team/web")).json;
    // Pull, then stop at once: the pull time must not be lost on a clean stop.
    let tp = now_ms();
    assert_eq!(
        get(&format!("{b}/v2/acme/team/web/manifests/1")).status,
        200
    );
    let tq = now_ms();

    s.restart();
    let b = s.url().to_string();
    let got = get(&api(&b, "/namespaces/kept"));
    let mut want = ns.clone();
    want["endpoint"] = json!(format!("{}/kept", host(&b)));
    want["region"] = json!("r1");
    assert_eq!(ok(&got, 200), &want, "namespace after restart");
    assert_eq!(get(&api(&b, "/registry")).json, settings);
    let r = get(&api(&b, "/namespaces/acme/repositories/team/web"));
    let d = ok(&r, 200).clone();
    assert_eq!(d["repository"]["name"], "acme/team/web");
    assert_eq!(d["repository"]["size"], img.size());
    assert_eq!(
        d["repository"]["last_push"],
        before_repo["repository"]["last_push"]
    );
    assert_eq!(
        d["repository"]["created_at"],
        before_repo["repository"]["created_at"]
    );
    assert_eq!(d["tags"], before_repo["tags"]);
    assert_eq!(d["artifacts"][0]["digest"], img.digest);
    assert_between(
        ts(&d["repository"]["last_pull"]),
        tp,
        tq,
        "repo last_pull after a clean restart",
    );
    assert_between(
        ts(&d["artifacts"][0]["last_pull"]),
        tp,
        tq,
        "artifact last_pull after a clean restart",
    );
    assert_err(
        &get(&api(&b, "/namespaces/acme/repositories/gone")),
        404,
        "not_found",
        None,
    );
    assert_eq!(catalog(&b), vec!["acme/team/web"]);
    let l = get(&api(&b, "/namespaces?order_by=name_asc"));
    assert_eq!(names(&l.json, "namespaces"), vec!["acme", "kept"]);

    // Acknowledged management writes survive kill -9 too.
    let r = patch_json(
        &api(&b, "/namespaces/kept"),
        &json!({"description": "after"}),
    );
    assert_eq!(r.status, 200);
    create_ns(&b, "fresh", "q");
    let r = patch_json(&api(&b, "/registry"), &json!({"region": "r2"}));
    assert_eq!(r.status, 200);
    s.crash_restart();
    let b = s.url().to_string();
    assert_eq!(
        get(&api(&b, "/namespaces/kept")).json["description"],
        "after"
    );
    assert_eq!(get(&api(&b, "/namespaces/fresh")).json["project_id"], "q");
    assert_eq!(get(&api(&b, "/registry")).json["region"], "r2");
    let d2 = get(&api(&b, "/namespaces/acme/repositories/team/web")).json;
    assert_eq!(d2["repository"]["last_pull"], d["repository"]["last_pull"]);
}

#[test]
fn namespace_deletion_survives_a_restart() {
    // Deleting a namespace and stopping right away: after the restart the
    // namespace's repositories are still gone and the deletion completes.
    let (mut s, _d) = Server::start();
    let b = s.url().to_string();
    for i in 0..5 {
        push_simple(&b, &format!("tmp/r{i}"), "1", i);
    }
    push_simple(&b, "stay/x", "1", 9);
    assert_eq!(delete(&api(&b, "/namespaces/tmp")).status, 202);
    s.crash_restart();
    let b = s.url().to_string();
    let cat = catalog(&b);
    if cat != vec!["stay/x"] {
        thread::sleep(Duration::from_millis(500));
        panic!(
            "after DELETE /namespaces/tmp (202) and kill -9: _catalog {cat:?}; \
             half a second later: _catalog {:?}, GET /api/v1/namespaces/tmp {} {}, \
             GET /api/v1/namespaces/tmp/repositories {} {}",
            catalog(&b),
            get(&api(&b, "/namespaces/tmp")).status,
            get(&api(&b, "/namespaces/tmp")).text,
            get(&api(&b, "/namespaces/tmp/repositories")).status,
            get(&api(&b, "/namespaces/tmp/repositories")).text,
        );
    }
    wait_for(5, || {
        (get(&api(&b, "/namespaces/tmp")).status == 404).then_some(())
    })
    .expect("namespace deletion did not complete after restart");
    assert_v2_name_unknown(&b, "tmp/r0");
    let l = get(&api(&b, "/namespaces"));
    assert_eq!(names(&l.json, "namespaces"), vec!["stay"]);
}
