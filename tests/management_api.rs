//! Black-box tests of the management API as a whole: the OpenAPI document,
//! 405 with `Allow` and 404, registry settings and their validation, and
//! JSON bodies of the wrong shape.

mod common;

use common::management::*;
use common::{digest, Server};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[test]
fn openapi_document_is_3_1_and_lists_every_route() {
    let (s, _d) = Server::start();
    let r = get(&api(s.url(), "/openapi.json"));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    let doc: Value = serde_json::from_str(&r.text).expect("openapi.json is JSON");
    let v = doc["openapi"].as_str().expect("openapi version string");
    assert!(v.starts_with("3.1."), "openapi version {v}");
    assert!(doc["info"]["title"].is_string());
    let p = "/api/v1/namespaces/{namespace}/repositories/{repository}";
    let want: Vec<(String, &[&str])> = vec![
        ("/api/v1/registry".into(), &["get", "patch"]),
        ("/api/v1/namespaces".into(), &["get", "post"]),
        (
            "/api/v1/namespaces/{namespace}".into(),
            &["get", "patch", "delete"],
        ),
        (
            "/api/v1/namespaces/{namespace}/repositories".into(),
            &["get"],
        ),
        (p.into(), &["get", "delete"]),
        (format!("{p}/artifacts"), &["get"]),
        (format!("{p}/artifacts/{{digest}}"), &["get", "delete"]),
        (format!("{p}/delete-request"), &["delete"]),
        (format!("{p}/tags"), &["get"]),
        (format!("{p}/tags/{{tag}}"), &["get", "delete"]),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in &want {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from openapi.json"));
        for m in *methods {
            let op = &item[*m];
            assert!(op.is_object(), "{m} {path} missing");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path} has no responses"
            );
            // Every {param} of the template is declared as a path parameter.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            for seg in path.split('/') {
                if let Some(name) = seg.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
                    assert!(
                        declared.contains(name),
                        "{m} {path} does not declare path parameter {name}"
                    );
                }
            }
        }
        // No method the server does not serve.
        for m in ["get", "put", "post", "patch", "delete"] {
            if !methods.contains(&m) {
                assert!(
                    item.get(m).is_none(),
                    "{m} {path} documented but not served"
                );
            }
        }
    }
    // Generated clients (the console's among them) name a function per
    // operation, so every operationId must be unique.
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        for (m, op) in item.as_object().expect("path item") {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                assert!(
                    ids.insert(id),
                    "operationId {id} of {m} {path} is used twice"
                );
            }
        }
    }
    assert!(ids.len() > 40, "only {} operationIds", ids.len());
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for s in ["Namespace", "ErrorBody", "RegistrySettings", "Artifact"] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
}

#[test]
fn wrong_method_is_405_with_allow_and_unknown_path_is_404() {
    let (s, _d) = Server::start();
    let b = s.url();
    push_simple(b, "acme/web", "1", 1);
    let d = digest(b"x");
    let cases: Vec<(Method, String, &[&str])> = vec![
        (Method::PUT, "/namespaces".into(), &["GET", "POST"]),
        (Method::DELETE, "/namespaces".into(), &["GET", "POST"]),
        (Method::POST, "/registry".into(), &["GET", "PATCH"]),
        (Method::DELETE, "/openapi.json".into(), &["GET"]),
        (
            Method::POST,
            "/namespaces/acme".into(),
            &["GET", "PATCH", "DELETE"],
        ),
        (
            Method::POST,
            "/namespaces/acme/repositories".into(),
            &["GET"],
        ),
        (
            Method::PUT,
            "/namespaces/acme/repositories/web".into(),
            &["GET", "DELETE"],
        ),
        (
            Method::DELETE,
            "/namespaces/acme/repositories/web/tags".into(),
            &["GET"],
        ),
        (
            Method::PUT,
            "/namespaces/acme/repositories/web/tags/1".into(),
            &["GET", "DELETE"],
        ),
        (
            Method::POST,
            "/namespaces/acme/repositories/web/artifacts".into(),
            &["GET"],
        ),
        (
            Method::PATCH,
            format!("/namespaces/acme/repositories/web/artifacts/{d}"),
            &["GET", "DELETE"],
        ),
        (
            Method::GET,
            format!("/namespaces/acme/repositories/web/delete-request?digest={d}"),
            &["DELETE"],
        ),
    ];
    for (m, path, allow) in cases {
        let r = send(m.clone(), &api(b, &path), None);
        assert_err(&r, 405, "method_not_allowed", None);
        let got: BTreeSet<String> = r
            .header("allow")
            .unwrap_or_else(|| panic!("{m} {path}: no Allow header"))
            .split(',')
            .map(|x| x.trim().to_string())
            .collect();
        let want: BTreeSet<String> = allow.iter().map(|x| x.to_string()).collect();
        assert_eq!(got, want, "Allow of {m} {path}");
    }
    for path in [
        "",
        "/",
        "/nothing",
        "/namespaces/acme/wat",
        "/registry/x",
        "/openapi.yaml",
    ] {
        let r = get(&format!("{b}/api/v1{path}"));
        assert_err(&r, 404, "not_found", None);
    }
    // Nothing changed.
    assert_eq!(catalog(b), vec!["acme/web"]);
}

#[test]
fn registry_settings_get_patch_and_validation() {
    let (s, _d) = Server::start();
    let b = s.url();
    let url = api(b, "/registry");
    let r = get(&url);
    assert_eq!(
        ok(&r, 200),
        &json!({
            "name": "berth",
            "region": "local",
            "garbage_collection_schedule": null,
            "api_subnet_allow_list": [],
            "features": {"vulnerability_scanning": {"enabled": false}},
        })
    );

    // Schedule.
    let r = patch_json(
        &url,
        &json!({"garbage_collection_schedule": {"days": ["monday", "friday"], "time": "03:30"}}),
    );
    assert_eq!(
        ok(&r, 200)["garbage_collection_schedule"],
        json!({"days": ["monday", "friday"], "time": "03:30"})
    );
    assert_eq!(r.json["name"], "berth", "other fields unchanged");
    assert_eq!(get(&url).json, r.json);
    for (days, time, field) in [
        (json!([]), "03:30", "garbage_collection_schedule.days"),
        (
            json!(["funday"]),
            "03:30",
            "garbage_collection_schedule.days",
        ),
        (
            json!(["Monday"]),
            "03:30",
            "garbage_collection_schedule.days",
        ),
        (
            json!(["monday"]),
            "24:00",
            "garbage_collection_schedule.time",
        ),
        (
            json!(["monday"]),
            "23:60",
            "garbage_collection_schedule.time",
        ),
        (
            json!(["monday"]),
            "3:30",
            "garbage_collection_schedule.time",
        ),
        (
            json!(["monday"]),
            "0330",
            "garbage_collection_schedule.time",
        ),
        (
            json!(["monday"]),
            "03:30:00",
            "garbage_collection_schedule.time",
        ),
        (
            json!(["monday"]),
            "+3:30",
            "garbage_collection_schedule.time",
        ),
        (json!(["monday"]), "", "garbage_collection_schedule.time"),
    ] {
        let r = patch_json(
            &url,
            &json!({"garbage_collection_schedule": {"days": days, "time": time}}),
        );
        assert_err(&r, 400, "invalid_argument", Some(field));
    }
    for body in [
        json!({"garbage_collection_schedule": {"days": ["monday"]}}),
        json!({"garbage_collection_schedule": {"days": ["monday"], "time": "01:00", "tz": "UTC"}}),
        json!({"garbage_collection_schedule": "daily"}),
    ] {
        assert_err(&patch_json(&url, &body), 400, "invalid_argument", None);
    }
    // Edge times are fine.
    for t in ["00:00", "23:59"] {
        let r = patch_json(
            &url,
            &json!({"garbage_collection_schedule": {"days": ["sunday"], "time": t}}),
        );
        assert_eq!(ok(&r, 200)["garbage_collection_schedule"]["time"], t);
    }
    let all_days = json!([
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday"
    ]);
    let r = patch_json(
        &url,
        &json!({"garbage_collection_schedule": {"days": all_days, "time": "12:00"}}),
    );
    assert_eq!(ok(&r, 200)["garbage_collection_schedule"]["days"], all_days);
    // null switches it off.
    let r = patch_json(&url, &json!({"garbage_collection_schedule": null}));
    assert!(ok(&r, 200)["garbage_collection_schedule"].is_null());
    assert!(get(&url).json["garbage_collection_schedule"].is_null());

    // Allow-list: IPv4 and IPv6 CIDRs (loopback included so that the
    // access-control problem does not lock this test out).
    let list = json!([
        "127.0.0.0/8",
        "10.0.0.0/8",
        "192.168.1.0/24",
        "172.16.0.0/12",
        "::1/128",
        "2001:db8::/32",
        "fe80::/10",
    ]);
    let r = patch_json(&url, &json!({"api_subnet_allow_list": list}));
    assert_eq!(ok(&r, 200)["api_subnet_allow_list"], list);
    assert_eq!(get(&url).json["api_subnet_allow_list"], list);
    let mut many: Vec<String> = vec!["127.0.0.0/8".into(), "::1/128".into()];
    many.extend((0..23).map(|i| format!("10.{i}.0.0/16")));
    assert_eq!(many.len(), 25);
    let r = patch_json(&url, &json!({"api_subnet_allow_list": many}));
    assert_eq!(ok(&r, 200)["api_subnet_allow_list"], json!(many));
    many.push("10.99.0.0/16".into());
    let r = patch_json(&url, &json!({"api_subnet_allow_list": many}));
    assert_err(&r, 400, "invalid_argument", Some("api_subnet_allow_list"));
    assert_eq!(
        get(&url).json["api_subnet_allow_list"]
            .as_array()
            .unwrap()
            .len(),
        25,
        "a rejected PATCH changes nothing"
    );
    for bad in [
        "10.0.0.0/33",
        "10.0.0.0/",
        "10.0.0/8",
        "300.0.0.0/8",
        "not-a-cidr",
        "2001:db8::/129",
        "2001:db8::g/32",
        "10.0.0.0/-1",
        "10.0.0.0/8/8",
        " 10.0.0.0/8",
        "",
    ] {
        let r = patch_json(
            &url,
            &json!({"api_subnet_allow_list": ["127.0.0.0/8", bad]}),
        );
        assert_err(&r, 400, "invalid_argument", Some("api_subnet_allow_list"));
    }
    let r = patch_json(&url, &json!({"api_subnet_allow_list": []}));
    assert_eq!(ok(&r, 200)["api_subnet_allow_list"], json!([]));

    // Features.
    let r = patch_json(
        &url,
        &json!({"features": {"vulnerability_scanning": {"enabled": true}}}),
    );
    assert_eq!(
        ok(&r, 200)["features"]["vulnerability_scanning"]["enabled"],
        true
    );
    assert_eq!(
        get(&url).json["features"]["vulnerability_scanning"]["enabled"],
        true
    );
    for body in [
        json!({"features": {"vulnerability_scanning": {"enabled": "yes"}}}),
        json!({"features": {"vulnerability_scanning": {"enabled": true, "x": 1}}}),
        json!({"features": {"telepathy": {"enabled": true}}}),
    ] {
        assert_err(&patch_json(&url, &body), 400, "invalid_argument", None);
    }

    // Name and region; the region shows on namespaces.
    let r = patch_json(
        &url,
        &json!({"name": "prod registry", "region": "eu-west-1"}),
    );
    assert_eq!(ok(&r, 200)["name"], "prod registry");
    assert_eq!(r.json["region"], "eu-west-1");
    push_simple(b, "acme/web", "1", 1);
    assert_eq!(get(&api(b, "/namespaces/acme")).json["region"], "eu-west-1");
    assert_eq!(
        get(&api(b, "/namespaces")).json["namespaces"][0]["region"],
        "eu-west-1"
    );
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"region": ""}), "region"),
    ] {
        assert_err(
            &patch_json(&url, &body),
            400,
            "invalid_argument",
            Some(field),
        );
    }

    // Unknown fields and bad bodies.
    let before = get(&url).json;
    for body in [
        r#"{"colour": "blue"}"#,
        r#"{"name": "x", "extra": true}"#,
        r#"{"api_subnet_allow_list": "10.0.0.0/8"}"#,
        r#"not json"#,
        r#"42"#,
    ] {
        let r = raw(Method::PATCH, &url, body);
        assert_eq!(r.status, 400, "PATCH /registry {body}: {}", r.text);
        assert_err(&r, 400, "invalid_argument", None);
    }
    assert_eq!(get(&url).json, before, "rejected PATCHes change nothing");
    // Empty object: nothing changes.
    let r = patch_json(&url, &json!({}));
    assert_eq!(ok(&r, 200), &before);
}

#[test]
fn json_array_bodies_are_rejected_not_read_positionally() {
    // Bodies are JSON objects with named fields; an array must not be
    // mapped onto the fields by position (serde's default for structs).
    let (s, _d) = Server::start();
    let b = s.url();
    create_ns(b, "acme", "");
    let before_ns = get(&api(b, "/namespaces/acme")).json;
    let before_reg = get(&api(b, "/registry")).json;
    let cases = [
        (Method::POST, "/namespaces", r#"["evil"]"#),
        (
            Method::POST,
            "/namespaces",
            r#"["evil2", "desc", "proj", true]"#,
        ),
        (Method::PATCH, "/namespaces/acme", r#"["changed", true]"#),
        (Method::PATCH, "/registry", r#"[]"#),
        (Method::PATCH, "/registry", r#"["renamed"]"#),
    ];
    let mut accepted = Vec::new();
    for (m, path, body) in cases {
        let r = raw(m.clone(), &api(b, path), body);
        if r.status != 400 || r.json["error"]["code"] != "invalid_argument" {
            accepted.push(format!(
                "{m} /api/v1{path} {body} -> {} {}",
                r.status, r.text
            ));
        }
    }
    let l = get(&api(b, "/namespaces"));
    assert!(
        accepted.is_empty(),
        "array bodies accepted:\n{}\nnamespaces now: {:?}",
        accepted.join("\n"),
        names(&l.json, "namespaces")
    );
    assert_eq!(names(&l.json, "namespaces"), vec!["acme"]);
    assert_eq!(get(&api(b, "/namespaces/acme")).json, before_ns);
    assert_eq!(get(&api(b, "/registry")).json, before_reg);
}
