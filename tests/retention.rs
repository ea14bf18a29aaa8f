//! Retention policies: the preview lists exactly what the run then deletes.

mod common;

use serde_json::{json, Value};

fn push(url: &str, repo: &str, tag: Option<&str>, unique: &str) -> String {
    let c = common::client();
    let config = format!(r#"{{"architecture":"amd64","os":"linux","x":"{unique}"}}"#).into_bytes();
    let layer = format!("layer of {unique}").into_bytes();
    for b in [&config, &layer] {
        let r = c
            .post(format!(
                "{url}/v2/{repo}/blobs/uploads/?digest={}",
                common::digest(b)
            ))
            .body(b.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": common::digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": common::digest(&layer), "size": layer.len()}],
    })
    .to_string();
    let d = common::digest(m.as_bytes());
    let r = c
        .put(format!("{url}/v2/{repo}/manifests/{}", tag.unwrap_or(&d)))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // Tags get distinct push times.
    std::thread::sleep(std::time::Duration::from_millis(5));
    d
}

fn tags(url: &str, repo: &str) -> Vec<String> {
    let v: Value = common::client()
        .get(format!("{url}/v2/{repo}/tags/list"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn preview_equals_what_the_run_deletes() {
    let (server, _dir) = common::Server::start();
    let url = server.url();
    let c = common::client();
    for t in ["v1", "v2", "v3", "v4", "v5", "latest"] {
        push(url, "acme/web", Some(t), t);
    }
    push(url, "acme/other", Some("v1"), "o1");
    push(url, "acme/other", Some("v2"), "o2");
    let orphan = push(url, "acme/web", None, "untagged");

    let policies = json!({"policies": [
        {"repositories": "web", "keep_last": 2, "include_tags": "v[0-9]+", "exclude_tags": "v1"},
        {"repositories": "w*", "untagged_older_than_days": 0}
    ]});
    let r = c
        .put(format!("{url}/api/v1/namespaces/acme/retention"))
        .json(&policies)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());

    let preview: Value = c
        .get(format!("{url}/api/v1/namespaces/acme/retention/preview"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let planned: Vec<String> = preview["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["repository"].as_str().unwrap(),
                t["tag"].as_str().unwrap()
            )
        })
        .collect();
    // Newest two considered tags (v5, v4) stay; v1 is excluded; latest is
    // not considered; acme/other does not match the glob.
    assert_eq!(planned, vec!["acme/web:v2", "acme/web:v3"], "{preview}");
    assert_eq!(
        preview["untagged"].as_array().unwrap().len(),
        1,
        "{preview}"
    );
    assert_eq!(preview["untagged"][0]["digest"], orphan.as_str());

    let run: Value = c
        .post(format!("{url}/api/v1/namespaces/acme/retention/run"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        run, preview,
        "the run deleted something other than the preview"
    );
    assert_eq!(tags(url, "acme/web"), vec!["latest", "v1", "v4", "v5"]);
    assert_eq!(tags(url, "acme/other"), vec!["v1", "v2"]);
    let r = c
        .get(format!("{url}/v2/acme/web/manifests/{orphan}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);

    // No tag is left to delete; the artifacts v2 and v3 pointed at are now
    // untagged, so the untagged rule lists exactly them for the next run.
    let again: Value = c
        .get(format!("{url}/api/v1/namespaces/acme/retention/preview"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again["tags"].as_array().unwrap().len(), 0, "{again}");
    let mut now_untagged: Vec<&str> = again["untagged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["digest"].as_str().unwrap())
        .collect();
    now_untagged.sort();
    let mut expected: Vec<&str> = preview["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["digest"].as_str().unwrap())
        .collect();
    expected.sort();
    assert_eq!(now_untagged, expected, "{again}");
}

#[test]
fn invalid_policies_are_rejected_and_change_nothing() {
    let (server, _dir) = common::Server::start();
    let url = server.url();
    let c = common::client();
    push(url, "acme/web", Some("v1"), "a");
    let good = json!({"policies": [{"keep_last": 3}]});
    assert_eq!(
        c.put(format!("{url}/api/v1/namespaces/acme/retention"))
            .json(&good)
            .send()
            .unwrap()
            .status(),
        200
    );
    for (body, field) in [
        (
            json!({"policies": [{"keep_last": 1, "include_tags": "v[0-9"}]}),
            "include_tags",
        ),
        (json!({"policies": [{"repositories": "*"}]}), "keep_last"),
        (
            json!({"policies": [{"keep_last": 1, "bogus": true}]}),
            "body",
        ),
    ] {
        let r = c
            .put(format!("{url}/api/v1/namespaces/acme/retention"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().unwrap();
        assert_eq!(e["error"]["details"]["field"], field, "{e}");
    }
    let now: Value = c
        .get(format!("{url}/api/v1/namespaces/acme/retention"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(now["policies"][0]["keep_last"], 3);
    let r = c
        .get(format!("{url}/api/v1/namespaces/nope/retention/preview"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}
