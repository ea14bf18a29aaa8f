//! Black-box tests of the management API (`/api/v1`): namespaces (create,
//! get, update, delete), their list's pagination edges, order and filters.
//! Content goes in through `/v2` only. The other management suites are the
//! files `management_*.rs`.

mod common;

use common::management::*;
use common::Server;
use reqwest::Method;
use serde_json::json;
use std::thread;
use std::time::Duration;

#[test]
fn namespace_create_get_update_delete() {
    let (s, _d) = Server::start();
    let b = s.url();
    let before = now_ms();
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-one", "description": "first team", "project_id": "p-42", "is_public": true}),
    );
    let after = now_ms();
    let n = ok(&r, 201).clone();
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    assert_uuid(&n["id"]);
    assert_eq!(n["name"], "team-one");
    assert_eq!(n["description"], "first team");
    assert_eq!(n["project_id"], "p-42");
    assert_eq!(n["is_public"], true);
    assert_eq!(n["status"], "ready");
    assert!(n["status_message"].is_string());
    assert_eq!(n["endpoint"], format!("{}/team-one", host(b)));
    assert_eq!(n["size"], 0);
    assert_eq!(n["image_count"], 0);
    assert_eq!(n["region"], "local");
    let created = ts(&n["created_at"]);
    assert_between(created, before, after, "created_at");
    assert!(ts(&n["updated_at"]) >= created);

    // Defaults: private, empty description and project.
    let m = create_ns(b, "team-two", "");
    assert_eq!(m["is_public"], false);
    assert_eq!(m["description"], "");
    assert_ne!(m["id"], n["id"], "ids are unique");

    // get
    let g = get(&api(b, "/namespaces/team-one"));
    assert_eq!(ok(&g, 200), &n, "GET returns what POST returned");
    assert_err(&get(&api(b, "/namespaces/nope")), 404, "not_found", None);

    // duplicate
    let dup = post_json(&api(b, "/namespaces"), &json!({"name": "team-one"}));
    assert_err(&dup, 409, "conflict", None);

    // invalid names
    let long = "x".repeat(256);
    for bad in [
        "Team",
        "a/b",
        "-lead",
        "trail-",
        "a..b",
        "",
        "with space",
        "ünï",
        long.as_str(),
    ] {
        let r = post_json(&api(b, "/namespaces"), &json!({"name": bad}));
        assert_err(&r, 400, "invalid_argument", Some("name"));
    }
    // unknown field, wrong type, missing name, not JSON
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-three", "colour": "red"}),
    );
    assert_err(&r, 400, "invalid_argument", None);
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-three", "is_public": "yes"}),
    );
    assert_err(&r, 400, "invalid_argument", None);
    let r = post_json(&api(b, "/namespaces"), &json!({"description": "x"}));
    assert_err(&r, 400, "invalid_argument", None);
    let r = raw(Method::POST, &api(b, "/namespaces"), "{not json");
    assert_err(&r, 400, "invalid_argument", None);
    // Field limits and body size.
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-three", "description": "d".repeat(4097)}),
    );
    assert_err(&r, 400, "invalid_argument", Some("description"));
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-three", "project_id": "p".repeat(257)}),
    );
    assert_err(&r, 400, "invalid_argument", Some("project_id"));
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-three", "description": "d".repeat(2 << 20)}),
    );
    assert_err(&r, 413, "payload_too_large", None);
    assert_err(
        &get(&api(b, "/namespaces/team-three")),
        404,
        "not_found",
        None,
    );

    // update
    thread::sleep(Duration::from_millis(5));
    let r = patch_json(
        &api(b, "/namespaces/team-one"),
        &json!({"description": "renamed team", "is_public": false}),
    );
    let u = ok(&r, 200).clone();
    assert_eq!(u["description"], "renamed team");
    assert_eq!(u["is_public"], false);
    assert_eq!(u["id"], n["id"]);
    assert_eq!(u["name"], "team-one");
    assert_eq!(u["project_id"], "p-42", "project_id is not updatable");
    assert_eq!(u["created_at"], n["created_at"]);
    assert!(
        ts(&u["updated_at"]) > ts(&n["updated_at"]),
        "updated_at moves on update"
    );
    // Partial update keeps the other field.
    let u2 = patch_json(&api(b, "/namespaces/team-one"), &json!({"is_public": true}));
    assert_eq!(ok(&u2, 200)["description"], "renamed team");
    assert_eq!(u2.json["is_public"], true);
    assert_eq!(get(&api(b, "/namespaces/team-one")).json, u2.json);
    // Only description and is_public may change.
    for body in [
        json!({"name": "other"}),
        json!({"project_id": "p-1"}),
        json!({"status": "locked"}),
        json!({"is_public": "no"}),
    ] {
        let r = patch_json(&api(b, "/namespaces/team-one"), &body);
        assert_err(&r, 400, "invalid_argument", None);
    }
    assert_eq!(get(&api(b, "/namespaces/team-one")).json, u2.json);
    assert_err(
        &patch_json(&api(b, "/namespaces/nope"), &json!({"description": "x"})),
        404,
        "not_found",
        None,
    );

    // delete
    let r = delete(&api(b, "/namespaces/team-two"));
    let dn = ok(&r, 202);
    assert_eq!(dn["name"], "team-two");
    assert_eq!(dn["status"], "deleting");
    assert_eq!(dn["id"], m["id"]);
    let gone = wait_for(5, || {
        (get(&api(b, "/namespaces/team-two")).status == 404).then_some(())
    });
    assert!(gone.is_some(), "deleted namespace still there after 5 s");
    let list = get(&api(b, "/namespaces"));
    assert_eq!(names(ok(&list, 200), "namespaces"), vec!["team-one"]);
    assert_eq!(list.json["total_count"], 1);
    assert_err(&delete(&api(b, "/namespaces/nope")), 404, "not_found", None);
    // The name is free again.
    let again = create_ns(b, "team-two", "");
    assert_ne!(again["id"], m["id"]);
}

#[test]
fn namespace_list_pagination_edges() {
    let (s, _d) = Server::start();
    let b = s.url();
    let all = ["ns-a", "ns-b", "ns-c", "ns-d", "ns-e"];
    for n in all {
        create_ns(b, n, "p");
        thread::sleep(Duration::from_millis(3));
    }
    let page = |q: &str| {
        let r = get(&api(b, &format!("/namespaces?{q}")));
        let v = ok(&r, 200).clone();
        (names(&v, "namespaces"), v["total_count"].as_u64().unwrap())
    };
    assert_eq!(page(""), (all.map(String::from).to_vec(), 5));
    assert_eq!(
        page("page=1&page_size=2"),
        (vec!["ns-a".into(), "ns-b".into()], 5)
    );
    assert_eq!(
        page("page=2&page_size=2"),
        (vec!["ns-c".into(), "ns-d".into()], 5)
    );
    assert_eq!(
        page("page=3&page_size=2"),
        (vec!["ns-e".into()], 5),
        "last page"
    );
    assert_eq!(
        page("page=4&page_size=2"),
        (vec![], 5),
        "beyond the last page"
    );
    assert_eq!(page("page=1000000&page_size=100"), (vec![], 5));
    assert_eq!(page("page_size=1"), (vec!["ns-a".into()], 5));
    assert_eq!(page("page=5&page_size=1"), (vec!["ns-e".into()], 5));
    assert_eq!(page("page_size=100").0.len(), 5);
    assert_eq!(
        page("page=2").0,
        Vec::<String>::new(),
        "default page size 20"
    );
    for (q, field) in [
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_size=abc", "page_size"),
        ("page_size=-1", "page_size"),
        ("page_size=", "page_size"),
        ("page_size=1.5", "page_size"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=-1", "page"),
        ("page=0&page_size=5", "page"),
    ] {
        let r = get(&api(b, &format!("/namespaces?{q}")));
        assert_err(&r, 400, "invalid_argument", Some(field));
        let msg = r.json["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{q}: message names {field}: {msg}");
    }
}

#[test]
fn namespace_list_order_and_filters() {
    let (s, _d) = Server::start();
    let b = s.url();
    // Created in this order, distinct milliseconds.
    let created = ["zeta", "alpha", "mid", "beta"];
    let projects = ["p1", "p2", "p1", "p3"];
    for (n, p) in created.iter().zip(projects) {
        create_ns(b, n, p);
        thread::sleep(Duration::from_millis(5));
    }
    let list = |q: &str| {
        let r = get(&api(b, &format!("/namespaces?{q}")));
        let v = ok(&r, 200).clone();
        (
            names(&v, "namespaces"),
            v["total_count"].as_u64().unwrap(),
            v,
        )
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(list("").0, s(&created), "default is created_at_asc");
    assert_eq!(list("order_by=created_at_asc").0, s(&created));
    assert_eq!(
        list("order_by=created_at_desc").0,
        s(&["beta", "mid", "alpha", "zeta"])
    );
    assert_eq!(
        list("order_by=name_asc").0,
        s(&["alpha", "beta", "mid", "zeta"])
    );
    assert_eq!(
        list("order_by=name_desc").0,
        s(&["zeta", "mid", "beta", "alpha"])
    );
    // All are ready: equal statuses, ties broken by name.
    let (asc, _, v) = list("order_by=status_asc");
    assert!(v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"] == "ready"));
    assert_eq!(asc, s(&["alpha", "beta", "mid", "zeta"]));
    assert_eq!(
        list("order_by=status_desc").0,
        s(&["alpha", "beta", "mid", "zeta"])
    );
    // Ordering applies before pagination.
    assert_eq!(
        list("order_by=name_desc&page=2&page_size=3").0,
        s(&["alpha"])
    );
    for bad in ["name", "NAME_ASC", "size_asc", "", "name_asc;drop"] {
        let r = get(&api(b, &format!("/namespaces?order_by={bad}")));
        assert_err(&r, 400, "invalid_argument", Some("order_by"));
    }
    // Filters: name is exact, project_id exact, combined with pagination.
    assert_eq!(list("name=mid").0, s(&["mid"]));
    assert_eq!(list("name=mid").1, 1);
    assert_eq!(list("name=mi").0, Vec::<String>::new(), "exact, not prefix");
    assert_eq!(list("name=nope").1, 0);
    assert_eq!(list("project_id=p1").0, s(&["zeta", "mid"]));
    assert_eq!(
        list("project_id=p1&order_by=name_asc").0,
        s(&["mid", "zeta"])
    );
    let (p, total, _) = list("project_id=p1&page=2&page_size=1");
    assert_eq!((p, total), (s(&["mid"]), 2));
    assert_eq!(list("project_id=p3&name=beta").0, s(&["beta"]));
    assert_eq!(list("project_id=p3&name=alpha").1, 0);
    assert_eq!(list("project_id=zzz").1, 0);
}
