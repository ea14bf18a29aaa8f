//! Black-box tests of webhooks: signed CloudEvents and distribution
//! envelopes for pushes, tag moves and deletions, in order per repository;
//! the delivery log, redelivery and test deliveries; receivers that are
//! down, answer 500 or hang get every event exactly once by id, across a
//! `kill -9` of the server; a hanging receiver does not slow a push; bad
//! definitions and private targets are refused.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::management::*;
use common::webhooks::*;
use serde_json::{json, Value};

/// Creates a webhook; returns (id, secret).
#[track_caller]
fn create_hook(base: &str, scope: &str, body: Value) -> (String, String) {
    let r = post_json(&api(base, &format!("{scope}/webhooks")), &body);
    let v = ok(&r, 201);
    (
        v["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

/// Waits until `rx` has `n` deliveries answered 200.
#[track_caller]
fn wait_delivered(rx: &Receiver, n: usize, secs: u64) -> Vec<Received> {
    wait_for(secs, || {
        let d = rx.delivered();
        (d.len() >= n).then_some(d)
    })
    .unwrap_or_else(|| {
        panic!(
            "wanted {n} deliveries, got {:?}",
            rx.delivered().iter().map(|r| r.json()).collect::<Vec<_>>()
        )
    })
}

fn event_type(r: &Received) -> String {
    r.json()["type"].as_str().unwrap_or("").to_string()
}

#[test]
fn pushes_and_deletions_arrive_signed_in_order_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let s = fast_server(dir.path(), &dir.path().join("data"), "");
    let b = s.url();
    let rx = Receiver::start(Mode::Ok);
    create_ns(b, "acme", "p1");
    let (id, secret) = create_hook(
        b,
        "/namespaces/acme",
        json!({"url": rx.url(), "events": ["artifact.pushed", "tag.updated", "tag.deleted", "artifact.deleted"]}),
    );
    // Lists never show the secret.
    let list = get(&api(b, "/namespaces/acme/webhooks"));
    let v = ok(&list, 200);
    assert_eq!(v["webhooks"].as_array().unwrap().len(), 1);
    assert!(v["webhooks"][0].get("secret").is_none(), "{}", list.text);
    assert!(!list.text.contains(&secret));
    let one = get(&api(b, &format!("/namespaces/acme/webhooks/{id}")));
    assert!(!one.text.contains(&secret));
    // Another namespace's push is not for this webhook.
    push_simple(b, "other/web", "v1", 9);

    let first = push_simple(b, "acme/web", "v1", 1);
    let pushed = put_manifest(b, "acme/web", "v1", &first.media_type, &first.manifest);
    let request_id = pushed.header("x-request-id").expect("a request id");
    let second = push_simple(b, "acme/web", "v1", 2);
    let r = delete(&api(b, "/namespaces/acme/repositories/web/tags/v1"));
    assert_eq!(r.status, 204, "{}", r.text);
    let r = delete(&api(
        b,
        &format!(
            "/namespaces/acme/repositories/web/artifacts/{}",
            first.digest
        ),
    ));
    assert_eq!(r.status, 204, "{}", r.text);

    let got = wait_delivered(&rx, 6, 20);
    let types: Vec<String> = got.iter().map(event_type).collect();
    assert_eq!(
        types,
        [
            "io.berth.artifact.pushed",
            "io.berth.artifact.pushed",
            "io.berth.artifact.pushed",
            "io.berth.tag.updated",
            "io.berth.tag.deleted",
            "io.berth.artifact.deleted",
        ],
        "in order"
    );
    let mut seqs = Vec::new();
    for r in &got {
        assert_eq!(r.header("x-berth-signature-256"), sign(&secret, &r.body));
        assert_eq!(r.header("content-type"), "application/cloudevents+json");
        assert!(r.header("user-agent").starts_with("berth/"));
        let e = r.json();
        assert_eq!(r.header("x-berth-event-id"), e["id"]);
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["data"]["namespace"], "acme");
        assert_eq!(e["data"]["repository"], "acme/web");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
        seqs.push(e["data"]["sequence"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let second_push = got[1].json();
    assert_eq!(second_push["data"]["digest"], first.digest);
    assert_eq!(second_push["data"]["tag"], "v1");
    assert_eq!(second_push["data"]["requestId"], request_id.as_str());
    assert_eq!(second_push["data"]["actor"], "anonymous");
    assert_eq!(second_push["data"]["clientAddress"], "127.0.0.1");
    assert_eq!(second_push["data"]["mediaType"], OCI_MANIFEST);
    assert_eq!(second_push["data"]["size"], first.manifest.len());
    assert_eq!(
        second_push["data"]["reference"],
        format!("{}/acme/web@{}", host(b), first.digest)
    );
    assert_eq!(second_push["subject"], "acme/web:v1");
    let moved = got[3].json();
    assert_eq!(moved["data"]["digest"], second.digest);
    assert_eq!(moved["data"]["previousDigest"], first.digest);
    assert_eq!(got[5].json()["data"]["digest"], first.digest);

    // The delivery log: each delivered in one attempt with a 200.
    let log = get(&api(
        b,
        &format!("/namespaces/acme/webhooks/{id}/deliveries"),
    ));
    let rows = ok(&log, 200)["deliveries"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 6, "{}", log.text);
    for row in &rows {
        assert_eq!(row["state"], "delivered", "{row}");
        assert_eq!(row["attempts"], 1);
        assert_eq!(row["last_status"], 200);
        assert!(row["latency_ms"].is_u64());
    }
    // Redelivery sends the same event (same id) again.
    let d0 = rows[0]["id"].as_u64().unwrap();
    let r = post_json(
        &api(
            b,
            &format!("/namespaces/acme/webhooks/{id}/deliveries/{d0}/redeliver"),
        ),
        &json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let again = wait_delivered(&rx, 7, 10);
    assert_eq!(again[6].json()["id"], rows[0]["event_id"]);
    // A test delivery goes to this webhook only.
    let r = post_json(
        &api(b, &format!("/namespaces/acme/webhooks/{id}/test")),
        &json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let t = wait_delivered(&rx, 8, 10);
    assert_eq!(event_type(&t[7]), "io.berth.webhook.test");
    // A rotated secret signs what follows.
    let r = post_json(
        &api(b, &format!("/namespaces/acme/webhooks/{id}/secret")),
        &json!({}),
    );
    let new_secret = ok(&r, 200)["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    push_simple(b, "acme/web", "v3", 3);
    let t = wait_delivered(&rx, 9, 10);
    assert_eq!(
        t[8].header("x-berth-signature-256"),
        sign(&new_secret, &t[8].body)
    );
}

#[test]
fn distribution_envelope_and_registry_wide_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let s = fast_server(dir.path(), &dir.path().join("data"), "");
    let b = s.url();
    let rx = Receiver::start(Mode::Ok);
    let (_, secret) = create_hook(
        b,
        "",
        json!({"url": rx.url(), "events": ["artifact.pushed", "namespace.deleted"],
               "repositories": "team*/*", "tags": "v[0-9]+", "format": "distribution"}),
    );
    push_simple(b, "teamx/app", "latest", 1); // tag filtered out
    push_simple(b, "other/app", "v1", 2); // repository filtered out
    let img = push_simple(b, "teamx/app", "v2", 3);
    let got = wait_delivered(&rx, 1, 20);
    let e = got[0].json();
    assert_eq!(
        got[0].header("content-type"),
        "application/vnd.docker.distribution.events.v2+json"
    );
    assert_eq!(
        got[0].header("x-berth-signature-256"),
        sign(&secret, &got[0].body)
    );
    let ev = &e["events"][0];
    assert_eq!(ev["action"], "push");
    assert_eq!(ev["target"]["repository"], "teamx/app");
    assert_eq!(ev["target"]["digest"], img.digest);
    assert_eq!(ev["target"]["tag"], "v2");
    assert_eq!(ev["target"]["mediaType"], OCI_MANIFEST);
    assert_eq!(got[0].header("x-berth-event-id"), ev["id"]);
    // A namespace's deletion goes to registry-wide webhooks.
    let r = delete(&api(b, "/namespaces/teamx"));
    assert!(r.status == 202 || r.status == 204, "{}", r.text);
    let got = wait_delivered(&rx, 2, 20);
    assert_eq!(got[1].json()["events"][0]["action"], "delete");
    assert_eq!(got[1].json()["events"][0]["target"]["repository"], "teamx");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rx.delivered().len(), 2, "filtered pushes are not delivered");
}

#[test]
fn namespace_webhooks_go_with_their_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let s = fast_server(dir.path(), &dir.path().join("data"), "");
    let b = s.url();
    let rx = Receiver::start(Mode::Ok);
    create_ns(b, "gone", "p");
    create_hook(
        b,
        "/namespaces/gone",
        json!({"url": rx.url(), "events": ["artifact.pushed", "namespace.deleted"]}),
    );
    let r = delete(&api(b, "/namespaces/gone"));
    assert!(r.status == 202 || r.status == 204, "{}", r.text);
    let back = wait_for(20, || {
        (post_json(
            &api(b, "/namespaces"),
            &json!({"name": "gone", "project_id": "p"}),
        )
        .status
            == 201)
            .then_some(())
    });
    assert!(back.is_some(), "the namespace could be created again");
    let list = get(&api(b, "/namespaces/gone/webhooks"));
    assert_eq!(
        ok(&list, 200)["webhooks"],
        json!([]),
        "no webhook inherited"
    );
    push_simple(b, "gone/web", "v1", 1);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        rx.delivered().is_empty(),
        "nothing for the old namespace's webhook"
    );
}

#[test]
fn bad_definitions_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = fast_server(dir.path(), &dir.path().join("data"), "");
    let b = s.url();
    create_ns(b, "acme", "p");
    let url = api(b, "/namespaces/acme/webhooks");
    let ok_url = "https://ci.example.com/hook";
    for (body, field) in [
        (
            json!({"url": "ftp://x.example/", "events": ["artifact.pushed"]}),
            "url",
        ),
        (
            json!({"url": "https://u:p@x.example/", "events": ["artifact.pushed"]}),
            "url",
        ),
        (
            json!({"url": "nota url", "events": ["artifact.pushed"]}),
            "url",
        ),
        (json!({"url": ok_url, "events": []}), "events"),
        (
            json!({"url": ok_url, "events": ["artifact.exploded"]}),
            "events",
        ),
        (json!({"url": ok_url, "events": ["webhook.test"]}), "events"),
        (
            json!({"url": ok_url, "events": ["tag.deleted"], "tags": "(unclosed"}),
            "tags",
        ),
        (
            json!({"url": ok_url, "events": ["tag.deleted"], "tags": "a".repeat(300)}),
            "tags",
        ),
        (
            json!({"url": ok_url, "events": ["tag.deleted"], "format": "xml"}),
            "format",
        ),
        (
            json!({"url": ok_url, "events": ["tag.deleted"], "secret": "mine"}),
            "body",
        ),
    ] {
        let r = post_json(&url, &body);
        assert_err(&r, 400, "invalid_argument", Some(field));
    }
    assert_eq!(ok(&get(&url), 200)["webhooks"], json!([]));
    let r = post_json(
        &api(b, "/namespaces/nope/webhooks"),
        &json!({"url": ok_url, "events": ["tag.deleted"]}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    // An update is checked the same way and changes nothing when refused.
    let (id, _) = create_hook(
        b,
        "/namespaces/acme",
        json!({"url": ok_url, "events": ["tag.deleted"]}),
    );
    let r = patch_json(
        &api(b, &format!("/namespaces/acme/webhooks/{id}")),
        &json!({"url": "gopher://x/"}),
    );
    assert_err(&r, 400, "invalid_argument", Some("url"));
    let one = get(&api(b, &format!("/namespaces/acme/webhooks/{id}")));
    assert_eq!(ok(&one, 200)["url"], ok_url);
    // A webhook of one namespace is not reachable through another's path.
    create_ns(b, "beta", "p");
    assert_eq!(
        get(&api(b, &format!("/namespaces/beta/webhooks/{id}"))).status,
        404
    );
    assert_eq!(get(&api(b, &format!("/webhooks/{id}"))).status, 404);
}

#[test]
fn private_targets_are_refused_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rx = Receiver::start(Mode::Ok);
    let mut s = fast_server(dir.path(), &data, "");
    let b = s.url().to_string();
    create_ns(&b, "acme", "p");
    // Allowed now; refused at delivery once the registry refuses them.
    let (id, _) = create_hook(
        &b,
        "/namespaces/acme",
        json!({"url": rx.url(), "events": ["artifact.pushed"]}),
    );
    s.stop();
    let s = fast_server(dir.path(), &data, "allow_private_targets = false");
    let b = s.url();
    for u in [
        "http://127.0.0.1:9/x",
        "http://[::1]/x",
        "http://10.0.0.1/x",
        "http://169.254.169.254/",
        "http://localhost/x",
    ] {
        let r = post_json(
            &api(b, "/namespaces/acme/webhooks"),
            &json!({"url": u, "events": ["artifact.pushed"]}),
        );
        assert_err(&r, 400, "invalid_argument", Some("url"));
    }
    push_simple(b, "acme/web", "v1", 1);
    let row = wait_for(20, || {
        let log = get(&api(
            b,
            &format!("/namespaces/acme/webhooks/{id}/deliveries"),
        ));
        let rows = log.json["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        rows.first()
            .filter(|r| r["attempts"].as_u64() >= Some(1))
            .cloned()
    })
    .expect("an attempt");
    assert_eq!(row["state"], "pending");
    assert!(
        row["last_error"].as_str().unwrap().contains("private"),
        "{row}"
    );
    assert!(
        rx.received().is_empty(),
        "nothing reached the private address"
    );
}

#[test]
fn deliveries_fail_after_the_retry_period() {
    let dir = tempfile::tempdir().unwrap();
    let s = fast_server(dir.path(), &dir.path().join("data"), "retry_for_secs = 1");
    let b = s.url();
    let rx = Receiver::start(Mode::Status(500));
    create_ns(b, "acme", "p");
    let (id, _) = create_hook(
        b,
        "/namespaces/acme",
        json!({"url": rx.url(), "events": ["artifact.pushed"]}),
    );
    push_simple(b, "acme/web", "v1", 1);
    let row = wait_for(20, || {
        let log = get(&api(
            b,
            &format!("/namespaces/acme/webhooks/{id}/deliveries"),
        ));
        log.json["deliveries"][0]
            .clone()
            .as_object()
            .filter(|r| r["state"] == "failed")
            .cloned()
    })
    .expect("marked failed");
    assert_eq!(row["last_status"], 500);
    assert!(
        row["attempts"].as_u64().unwrap() >= 2,
        "retried first: {row:?}"
    );
    assert!(row["next_retry"].is_null());
    // The metrics count each attempt by outcome.
    let m = common::metrics::scrape(common::client().get(format!("{b}/metrics")));
    let outcome = |o| m.get("berth_webhook_deliveries_total", &[("outcome", o)]);
    assert_eq!(outcome("delivered"), 0.0);
    assert_eq!(outcome("failed"), 1.0);
    assert_eq!(
        outcome("retried") + 1.0,
        row["attempts"].as_f64().unwrap(),
        "every attempt but the last was retried"
    );
}

#[test]
fn receivers_down_failing_or_hanging_get_every_event_once_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = fast_server(dir.path(), &data, "");
    let b = s.url().to_string();
    let mut down = Receiver::start(Mode::Ok);
    down.down();
    let failing = Receiver::start(Mode::Status(500));
    let hanging = Receiver::start(Mode::Hang);
    create_ns(&b, "acme", "p");
    for rx in [&down, &failing, &hanging] {
        create_hook(
            &b,
            "/namespaces/acme",
            json!({"url": rx.url(), "events": ["artifact.pushed", "tag.deleted"]}),
        );
    }
    // A normal push first, timed, then pushes while receivers misbehave.
    let t = Instant::now();
    push_simple(&b, "acme/base", "v0", 100);
    let normal = t.elapsed();
    let mut pushed = Vec::new();
    for i in 0..3u64 {
        let t = Instant::now();
        pushed.push(push_simple(&b, "acme/web", &format!("v{i}"), i).digest);
        let took = t.elapsed();
        assert!(
            took < normal * 5 + Duration::from_millis(500),
            "a push took {took:?} with receivers hanging (normal {normal:?})"
        );
    }
    let r = delete(&api(&b, "/namespaces/acme/repositories/web/tags/v0"));
    assert_eq!(r.status, 204);
    assert!(
        wait_for(15, || (failing.received().len() >= 3).then_some(())).is_some(),
        "the failing receiver was retried"
    );
    assert!(
        wait_for(15, || (!hanging.received().is_empty()).then_some(())).is_some(),
        "the hanging receiver was tried"
    );
    s.kill9();
    std::thread::sleep(Duration::from_millis(300));
    s.crash_restart();
    down.resume();
    failing.set_mode(Mode::Ok);
    hanging.set_mode(Mode::Ok);
    for (name, rx) in [
        ("down", &down),
        ("failing", &failing),
        ("hanging", &hanging),
    ] {
        let got = wait_delivered(rx, 5, 40);
        let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
        for r in &got {
            *by_id
                .entry(r.header("x-berth-event-id").to_string())
                .or_default() += 1;
        }
        assert_eq!(by_id.len(), 5, "{name}: every event: {by_id:?}");
        assert!(
            by_id.values().all(|n| *n == 1),
            "{name}: exactly once: {by_id:?}"
        );
        // In order within each repository.
        let web: Vec<u64> = got
            .iter()
            .map(|r| r.json())
            .filter(|e| e["data"]["repository"] == "acme/web")
            .map(|e| e["data"]["sequence"].as_u64().unwrap())
            .collect();
        assert!(web.windows(2).all(|w| w[0] < w[1]), "{name}: {web:?}");
        let digests: Vec<Value> = got
            .iter()
            .map(|r| r.json())
            .filter(|e| {
                e["data"]["repository"] == "acme/web" && e["type"] == "io.berth.artifact.pushed"
            })
            .map(|e| e["data"]["digest"].clone())
            .collect();
        assert_eq!(
            digests,
            pushed.iter().map(|d| json!(d)).collect::<Vec<_>>(),
            "{name}"
        );
    }
}
