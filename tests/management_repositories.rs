//! Black-box tests of repositories in the management API: what a first
//! push creates, repository details (tags, artifacts, indexes, artifact
//! types), list order, names with several slashes, and sizes that count
//! shared layers once.

mod common;

use common::bytes;
use common::management::*;
use common::{digest, Server};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::Duration;

#[test]
fn first_push_creates_namespace_and_repository_with_sizes_and_times() {
    let (s, _d) = Server::start();
    let b = s.url();
    assert_err(&get(&api(b, "/namespaces/acme")), 404, "not_found", None);
    let t0 = now_ms();
    let img = push_image(
        b,
        "acme/web",
        "1",
        &config_bytes("web", "amd64"),
        &[bytes(1, 2000), bytes(2, 700)],
    );
    let t1 = now_ms();
    let size = img.size();
    assert_eq!(size, img.manifest.len() as u64 + img.config.1 + 2700);

    let n = get(&api(b, "/namespaces/acme"));
    let n = ok(&n, 200);
    assert_uuid(&n["id"]);
    assert_eq!(n["name"], "acme");
    assert_eq!(n["is_public"], false, "created by push: private");
    assert_eq!(n["status"], "ready");
    assert_eq!(n["image_count"], 1);
    assert_eq!(n["size"], size);
    assert_eq!(n["endpoint"], format!("{}/acme", host(b)));
    assert_between(ts(&n["created_at"]), t0, t1, "namespace created_at");

    // The namespace a push created is a real one: its name is taken.
    let dup = post_json(&api(b, "/namespaces"), &json!({"name": "acme"}));
    assert_err(&dup, 409, "conflict", None);

    let r = get(&api(b, "/namespaces/acme/repositories"));
    let l = ok(&r, 200);
    assert_eq!(l["total_count"], 1);
    let repo = &l["repositories"][0];
    assert_eq!(repo["name"], "acme/web");
    assert_eq!(repo["namespace"], "acme");
    assert_eq!(repo["tag_count"], 1);
    assert_eq!(repo["artifact_count"], 1);
    assert_eq!(repo["size"], size);
    assert_eq!(repo["latest_tag"], "1");
    assert_between(ts(&repo["last_push"]), t0, t1, "last_push");
    assert_between(ts(&repo["created_at"]), t0, t1, "repo created_at");
    assert!(repo["last_pull"].is_null(), "never pulled: {repo}");
    let detail = get(&api(b, "/namespaces/acme/repositories/web"));
    let a = &ok(&detail, 200)["artifacts"][0];
    assert!(a["last_pull"].is_null());

    // A manifest pull shows up as last_pull within a few seconds.
    let tp = now_ms();
    let r = get(&format!("{b}/v2/acme/web/manifests/1"));
    assert_eq!(r.status, 200);
    let seen = wait_for(5, || {
        let d = get(&api(b, "/namespaces/acme/repositories/web")).json;
        (!d["repository"]["last_pull"].is_null() && !d["artifacts"][0]["last_pull"].is_null())
            .then_some(d)
    })
    .expect("last_pull not recorded within 5 s of a manifest GET");
    let tq = now_ms();
    assert_between(
        ts(&seen["repository"]["last_pull"]),
        tp,
        tq,
        "repo last_pull",
    );
    assert_between(
        ts(&seen["artifacts"][0]["last_pull"]),
        tp,
        tq,
        "artifact last_pull",
    );
    // Pulls do not count as pushes.
    assert_eq!(seen["repository"]["last_push"], repo["last_push"]);

    // A second push updates last_push and latest_tag.
    thread::sleep(Duration::from_millis(5));
    let t2 = now_ms();
    push_simple(b, "acme/web", "2", 9);
    let r = get(&api(b, "/namespaces/acme/repositories/web"));
    let d = ok(&r, 200);
    assert_eq!(d["repository"]["latest_tag"], "2");
    assert_between(ts(&d["repository"]["last_push"]), t2, now_ms(), "last_push");
    assert!(ts(&d["repository"]["last_push"]) > ts(&repo["last_push"]));
}

#[test]
fn repository_detail_tags_artifacts_index_and_artifact_type() {
    let (s, _d) = Server::start();
    let b = s.url();
    let repo = "acme/app";
    let one = push_image(
        b,
        repo,
        "v1",
        &config_bytes("one", "amd64"),
        &[bytes(11, 1000), bytes(12, 400)],
    );
    thread::sleep(Duration::from_millis(5));
    let two = push_image(
        b,
        repo,
        "v2",
        &config_bytes("two", "amd64"),
        &[bytes(21, 900)],
    );
    tag_again(b, repo, "latest", &two);
    thread::sleep(Duration::from_millis(5));

    // An index over two platform images pushed by digest.
    let amd = push_image(
        b,
        repo,
        "",
        &config_bytes("amd", "amd64"),
        &[bytes(31, 500)],
    );
    let arm = push_image(
        b,
        repo,
        "",
        &config_bytes("arm", "arm64"),
        &[bytes(32, 600)],
    );
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd.digest, "size": amd.manifest.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm.digest, "size": arm.manifest.len(),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    }))
    .unwrap();
    let index_digest = digest(&index);
    let r = put_manifest(b, repo, "multi", OCI_INDEX, &index);
    assert_eq!(r.status, 201, "{}", r.text);
    thread::sleep(Duration::from_millis(5));

    // An OCI artifact with an artifactType and the empty config.
    push_blob(b, repo, b"{}");
    let sbom_layer = bytes(41, 250);
    push_blob(b, repo, &sbom_layer);
    let sbom = image_manifest(
        b"{}",
        OCI_EMPTY,
        &[sbom_layer],
        json!({"artifactType": "application/vnd.example.sbom.v1+json"}),
    );
    let r = put_manifest(b, repo, "sbom", OCI_MANIFEST, &sbom.manifest);
    assert_eq!(r.status, 201, "{}", r.text);

    // Expected numbers.
    let index_size = index.len() as u64 + amd.size() + arm.size();
    let mut distinct: BTreeMap<String, u64> = BTreeMap::new();
    for img in [&one, &two, &amd, &arm, &sbom] {
        distinct.insert(img.digest.clone(), img.manifest.len() as u64);
        for (d, s) in img.blobs() {
            distinct.insert(d, s);
        }
    }
    distinct.insert(index_digest.clone(), index.len() as u64);
    let total: u64 = distinct.values().sum();

    let r = get(&api(b, "/namespaces/acme/repositories/app"));
    let d = ok(&r, 200).clone();
    let summary = &d["repository"];
    assert_eq!(summary["name"], repo);
    assert_eq!(summary["tag_count"], 5);
    assert_eq!(summary["artifact_count"], 6);
    assert_eq!(summary["size"], total);
    assert_eq!(summary["latest_tag"], "sbom");

    // Tags: lexical, with digests and times.
    let tags: Vec<(String, String)> = d["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            ts(&t["pushed_at"]);
            (
                t["name"].as_str().unwrap().to_string(),
                t["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        vec![
            ("latest".to_string(), two.digest.clone()),
            ("multi".to_string(), index_digest.clone()),
            ("sbom".to_string(), sbom.digest.clone()),
            ("v1".to_string(), one.digest.clone()),
            ("v2".to_string(), two.digest.clone()),
        ]
    );

    // Artifacts, most recently pushed first.
    let arts = d["artifacts"].as_array().unwrap().clone();
    let order: Vec<&str> = arts.iter().map(|a| a["digest"].as_str().unwrap()).collect();
    assert_eq!(order.len(), 6);
    assert_eq!(order[0], sbom.digest);
    assert_eq!(order[1], index_digest);
    assert_eq!(
        order[2..4].iter().copied().collect::<BTreeSet<_>>(),
        [amd.digest.as_str(), arm.digest.as_str()]
            .into_iter()
            .collect()
    );
    assert_eq!(order[4], two.digest);
    assert_eq!(order[5], one.digest);
    let by = |dg: &str| arts.iter().find(|a| a["digest"] == dg).unwrap().clone();

    for (img, tags) in [
        (&one, vec!["v1"]),
        (&two, vec!["latest", "v2"]),
        (&amd, vec![]),
        (&arm, vec![]),
    ] {
        let a = by(&img.digest);
        assert_eq!(a["media_type"], OCI_MANIFEST);
        assert_eq!(a["artifact_type"], OCI_CONFIG, "falls back to config type");
        assert_eq!(a["size"], img.size(), "artifact size of {}", img.digest);
        assert_eq!(a["tags"], json!(tags));
        assert_eq!(a["platforms"], json!([]));
        ts(&a["pushed_at"]);
        let layers: Vec<(String, String, u64)> = a["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["digest"].as_str().unwrap().into(),
                    l["media_type"].as_str().unwrap().into(),
                    l["size"].as_u64().unwrap(),
                )
            })
            .collect();
        // The config is apart (`config`, `image_id`), not the first layer.
        assert_eq!(a["config"]["digest"], img.config.0.as_str());
        assert_eq!(a["image_id"], img.config.0.as_str());
        let want: Vec<(String, String, u64)> = img
            .layers
            .iter()
            .map(|(d, s)| (d.clone(), OCI_LAYER.to_string(), *s))
            .collect();
        assert_eq!(layers, want, "layers of {}", img.digest);
    }
    let ix = by(&index_digest);
    assert_eq!(ix["media_type"], OCI_INDEX);
    assert_eq!(ix["tags"], json!(["multi"]));
    assert_eq!(ix["size"], index_size, "index size = index + children");
    assert_eq!(
        ix["platforms"],
        json!([
            {"os": "linux", "architecture": "amd64", "variant": null},
            {"os": "linux", "architecture": "arm64", "variant": "v8"},
        ])
    );
    let sb = by(&sbom.digest);
    assert_eq!(sb["artifact_type"], "application/vnd.example.sbom.v1+json");
    assert_eq!(sb["size"], sbom.size());
    assert_eq!(sb["config"]["media_type"], OCI_EMPTY);

    // Size breakdown: per artifact, total counts shared blobs once.
    let sbk = &d["size_breakdown"];
    assert_eq!(sbk["total"], total);
    let per: BTreeMap<String, u64> = sbk["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["digest"].as_str().unwrap().to_string(),
                a["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<String, u64> = [
        (one.digest.clone(), one.size()),
        (two.digest.clone(), two.size()),
        (amd.digest.clone(), amd.size()),
        (arm.digest.clone(), arm.size()),
        (index_digest.clone(), index_size),
        (sbom.digest.clone(), sbom.size()),
    ]
    .into_iter()
    .collect();
    assert_eq!(per, want);
    assert!(
        per.values().sum::<u64>() > total,
        "children counted once in total"
    );

    // Artifact list, paginated, same order and content.
    let al = get(&api(b, "/namespaces/acme/repositories/app/artifacts"));
    assert_eq!(ok(&al, 200)["total_count"], 6);
    assert_eq!(al.json["artifacts"], json!(arts));
    let p2 = get(&api(
        b,
        "/namespaces/acme/repositories/app/artifacts?page=2&page_size=1",
    ));
    assert_eq!(ok(&p2, 200)["artifacts"], json!([arts[1].clone()]));
    assert_eq!(p2.json["total_count"], 6);
    let p9 = get(&api(
        b,
        "/namespaces/acme/repositories/app/artifacts?page=4&page_size=2",
    ));
    assert_eq!(ok(&p9, 200)["artifacts"], json!([]));
    assert_eq!(p9.json["total_count"], 6);

    // One artifact by digest (raw colon and %3A).
    for dg in [one.digest.clone(), one.digest.replace(':', "%3A")] {
        let r = get(&api(
            b,
            &format!("/namespaces/acme/repositories/app/artifacts/{dg}"),
        ));
        assert_eq!(ok(&r, 200), &by(&one.digest));
    }
    let missing = digest(b"no such manifest");
    assert_err(
        &get(&api(
            b,
            &format!("/namespaces/acme/repositories/app/artifacts/{missing}"),
        )),
        404,
        "not_found",
        None,
    );
    // A blob (config) is not an artifact.
    assert_err(
        &get(&api(
            b,
            &format!(
                "/namespaces/acme/repositories/app/artifacts/{}",
                one.config.0
            ),
        )),
        404,
        "not_found",
        None,
    );
    for bad in ["sha256:xyz", "notadigest", "sha256:ABC"] {
        let r = get(&api(
            b,
            &format!("/namespaces/acme/repositories/app/artifacts/{bad}"),
        ));
        assert_err(&r, 400, "invalid_argument", Some("digest"));
    }

    // Tags list, paginated; one tag.
    let tl = get(&api(b, "/namespaces/acme/repositories/app/tags"));
    assert_eq!(ok(&tl, 200)["total_count"], 5);
    assert_eq!(tl.json["tags"], d["tags"]);
    let tp = get(&api(
        b,
        "/namespaces/acme/repositories/app/tags?page=3&page_size=2",
    ));
    assert_eq!(names(ok(&tp, 200), "tags"), vec!["v2"]);
    assert_eq!(tp.json["total_count"], 5);
    let t = get(&api(b, "/namespaces/acme/repositories/app/tags/v1"));
    assert_eq!(ok(&t, 200)["digest"], one.digest);
    assert_eq!(t.json["name"], "v1");
    assert_eq!(t.json, d["tags"][3]);
    assert_err(
        &get(&api(b, "/namespaces/acme/repositories/app/tags/v9")),
        404,
        "not_found",
        None,
    );
    assert_err(
        &get(&api(b, "/namespaces/acme/repositories/app/tags/-bad")),
        400,
        "invalid_argument",
        Some("tag"),
    );

    // Pagination errors on every list.
    for list in [
        "repositories",
        "repositories/app/artifacts",
        "repositories/app/tags",
    ] {
        for (q, field) in [
            ("page_size=0", "page_size"),
            ("page_size=101", "page_size"),
            ("page_size=abc", "page_size"),
            ("page=0", "page"),
        ] {
            let r = get(&api(b, &format!("/namespaces/acme/{list}?{q}")));
            assert_err(&r, 400, "invalid_argument", Some(field));
        }
        let r = get(&api(b, &format!("/namespaces/acme/{list}?page_size=100")));
        assert_eq!(r.status, 200, "{list}: {}", r.text);
    }

    // 404s: unknown namespace, unknown repository.
    for path in [
        "/namespaces/nope/repositories",
        "/namespaces/nope/repositories/app",
        "/namespaces/acme/repositories/nope",
        "/namespaces/acme/repositories/nope/tags",
        "/namespaces/acme/repositories/nope/artifacts",
        "/namespaces/acme/repositories/nope/tags/v1",
    ] {
        assert_err(&get(&api(b, path)), 404, "not_found", None);
    }
}

#[test]
fn repository_list_order_by_every_value() {
    let (s, _d) = Server::start();
    let b = s.url();
    // Created b, a, c with sizes big, small, medium.
    push_image(
        b,
        "ord/b",
        "1",
        &config_bytes("b", "amd64"),
        &[bytes(1, 3000)],
    );
    thread::sleep(Duration::from_millis(5));
    push_image(
        b,
        "ord/a",
        "1",
        &config_bytes("a", "amd64"),
        &[bytes(2, 100)],
    );
    thread::sleep(Duration::from_millis(5));
    push_image(
        b,
        "ord/c",
        "1",
        &config_bytes("c", "amd64"),
        &[bytes(3, 1500)],
    );
    thread::sleep(Duration::from_millis(5));
    // b is pushed to again: latest last_push, still first created.
    push_image(
        b,
        "ord/b",
        "2",
        &config_bytes("b2", "amd64"),
        &[bytes(4, 10)],
    );
    let list = |q: &str| {
        let r = get(&api(b, &format!("/namespaces/ord/repositories?{q}")));
        names(ok(&r, 200), "repositories")
    };
    let v = |x: &[&str]| x.iter().map(|n| format!("ord/{n}")).collect::<Vec<_>>();
    assert_eq!(list(""), v(&["a", "b", "c"]), "default name_asc");
    assert_eq!(list("order_by=name_asc"), v(&["a", "b", "c"]));
    assert_eq!(list("order_by=name_desc"), v(&["c", "b", "a"]));
    assert_eq!(list("order_by=created_at_asc"), v(&["b", "a", "c"]));
    assert_eq!(list("order_by=created_at_desc"), v(&["c", "a", "b"]));
    assert_eq!(list("order_by=last_push_asc"), v(&["a", "c", "b"]));
    assert_eq!(list("order_by=last_push_desc"), v(&["b", "c", "a"]));
    assert_eq!(list("order_by=size_asc"), v(&["a", "c", "b"]));
    assert_eq!(list("order_by=size_desc"), v(&["b", "c", "a"]));
    assert_eq!(list("order_by=size_desc&page=2&page_size=2"), v(&["a"]));
    let r = get(&api(b, "/namespaces/ord/repositories?page=3&page_size=1"));
    assert_eq!(names(ok(&r, 200), "repositories"), v(&["c"]));
    assert_eq!(r.json["total_count"], 3);
    // Figures are computed for the page asked for.
    let detail = get(&api(b, "/namespaces/ord/repositories/c"));
    let c = &ok(&detail, 200)["repository"];
    assert!(c["size"].as_u64().unwrap() > 1500);
    for figure in ["size", "tag_count", "artifact_count", "latest_tag"] {
        assert_eq!(r.json["repositories"][0][figure], c[figure], "{figure}");
    }
    let r = get(&api(b, "/namespaces/ord/repositories?page=4&page_size=1"));
    assert_eq!(names(ok(&r, 200), "repositories"), Vec::<String>::new());
    assert_eq!(r.json["total_count"], 3);
    for bad in ["status_asc", "size", "x"] {
        let r = get(&api(
            b,
            &format!("/namespaces/ord/repositories?order_by={bad}"),
        ));
        assert_err(&r, 400, "invalid_argument", Some("order_by"));
    }
    // Namespace created empty through the API: an empty list.
    create_ns(b, "empty", "");
    let r = get(&api(b, "/namespaces/empty/repositories"));
    assert_eq!(ok(&r, 200)["repositories"], json!([]));
    assert_eq!(r.json["total_count"], 0);
}

#[test]
fn names_with_several_slashes_raw_encoded_and_full() {
    let (s, _d) = Server::start();
    let b = s.url();
    let img = push_simple(b, "acme/team/sub/app", "1", 5);
    // A repository whose last component is a route keyword.
    let kw = push_simple(b, "acme/lib/tags", "t", 6);
    // A single-component repository: its own namespace.
    let solo = push_simple(b, "solo", "1", 7);

    let r = get(&api(b, "/namespaces/acme/repositories"));
    assert_eq!(
        names(ok(&r, 200), "repositories"),
        vec!["acme/lib/tags", "acme/team/sub/app"]
    );
    assert_eq!(get(&api(b, "/namespaces/acme")).json["image_count"], 2);

    let forms = [
        "team/sub/app",
        "team%2Fsub%2Fapp",
        "team%2fsub%2fapp",
        "team/sub%2Fapp",
        "acme/team/sub/app",
        "acme%2Fteam%2Fsub%2Fapp",
    ];
    for f in forms {
        let base = format!("/namespaces/acme/repositories/{f}");
        let r = get(&api(b, &base));
        assert_eq!(
            ok(&r, 200)["repository"]["name"],
            "acme/team/sub/app",
            "form {f}"
        );
        assert_eq!(r.json["repository"]["tag_count"], 1, "form {f}");
        let r = get(&api(b, &format!("{base}/tags")));
        assert_eq!(names(ok(&r, 200), "tags"), vec!["1"], "form {f}");
        let r = get(&api(b, &format!("{base}/tags/1")));
        assert_eq!(ok(&r, 200)["digest"], img.digest, "form {f}");
        let r = get(&api(b, &format!("{base}/artifacts")));
        assert_eq!(
            ok(&r, 200)["artifacts"][0]["digest"],
            img.digest,
            "form {f}"
        );
        let r = get(&api(b, &format!("{base}/artifacts/{}", img.digest)));
        assert_eq!(ok(&r, 200)["size"], img.size(), "form {f}");
    }
    // Encoded slashes keep a keyword component in the name.
    let r = get(&api(b, "/namespaces/acme/repositories/lib%2Ftags"));
    assert_eq!(ok(&r, 200)["repository"]["name"], "acme/lib/tags");
    let r = get(&api(b, "/namespaces/acme/repositories/lib%2Ftags/tags"));
    assert_eq!(names(ok(&r, 200), "tags"), vec!["t"]);
    let r = get(&api(b, "/namespaces/acme/repositories/lib%2Ftags/tags/t"));
    assert_eq!(ok(&r, 200)["digest"], kw.digest);
    // A partial name is not a repository.
    for f in ["team", "team/sub", "sub/app", "app", "team%2Fsub"] {
        assert_err(
            &get(&api(b, &format!("/namespaces/acme/repositories/{f}"))),
            404,
            "not_found",
            None,
        );
    }
    // The repository is not reachable through another namespace.
    create_ns(b, "other", "");
    assert_err(
        &get(&api(b, "/namespaces/other/repositories/acme/team/sub/app")),
        404,
        "not_found",
        None,
    );

    // Single component.
    let r = get(&api(b, "/namespaces/solo"));
    assert_eq!(ok(&r, 200)["image_count"], 1);
    assert_eq!(r.json["size"], solo.size());
    let r = get(&api(b, "/namespaces/solo/repositories"));
    assert_eq!(names(ok(&r, 200), "repositories"), vec!["solo"]);
    let r = get(&api(b, "/namespaces/solo/repositories/solo"));
    assert_eq!(ok(&r, 200)["repository"]["name"], "solo");

    // Deleting through the encoded form.
    let r = delete(&api(b, "/namespaces/acme/repositories/team%2Fsub%2Fapp"));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(catalog(b), vec!["acme/lib/tags", "solo"]);
    assert_v2_name_unknown(b, "acme/team/sub/app");
    let r = delete(&api(b, "/namespaces/acme/repositories/lib%2Ftags"));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(catalog(b), vec!["solo"]);
}

#[test]
fn size_accounting_counts_shared_layers_once() {
    let (s, _d) = Server::start();
    let b = s.url();
    let base_layer = bytes(100, 4000);
    let a = push_image(
        b,
        "acme/s1",
        "a",
        &config_bytes("a", "amd64"),
        &[base_layer.clone(), bytes(101, 300)],
    );
    let bb = push_image(
        b,
        "acme/s1",
        "b",
        &config_bytes("b", "amd64"),
        &[base_layer.clone(), bytes(102, 500)],
    );
    let base_len = base_layer.len() as u64;
    let s1 = a.size() + bb.size() - base_len;
    let r = get(&api(b, "/namespaces/acme/repositories/s1"));
    let d = ok(&r, 200);
    assert_eq!(d["repository"]["size"], s1, "shared base layer once");
    assert_eq!(d["size_breakdown"]["total"], s1);
    let per: Vec<u64> = d["size_breakdown"]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["size"].as_u64().unwrap())
        .collect();
    assert_eq!(per.iter().sum::<u64>(), a.size() + bb.size());
    let n = get(&api(b, "/namespaces/acme"));
    assert_eq!(ok(&n, 200)["size"], s1);

    // A second repository with the same base layer and one own layer.
    let c = push_image(
        b,
        "acme/s2",
        "c",
        &config_bytes("c", "amd64"),
        &[base_layer.clone(), bytes(103, 700)],
    );
    let r = get(&api(b, "/namespaces/acme/repositories/s2"));
    assert_eq!(ok(&r, 200)["repository"]["size"], c.size());
    let n = get(&api(b, "/namespaces/acme"));
    assert_eq!(ok(&n, 200)["image_count"], 2);
    assert_eq!(
        n.json["size"],
        s1 + c.size() - base_len,
        "namespace: a layer shared by two repositories counts once"
    );
    // The same manifest in two repositories counts once for the namespace.
    push_blob(b, "acme/s3", &config_bytes("a", "amd64"));
    push_blob(b, "acme/s3", &base_layer);
    push_blob(b, "acme/s3", &bytes(101, 300));
    tag_again(b, "acme/s3", "copy", &a);
    let r = get(&api(b, "/namespaces/acme/repositories/s3"));
    assert_eq!(ok(&r, 200)["repository"]["size"], a.size());
    let n = get(&api(b, "/namespaces/acme"));
    assert_eq!(n.json["size"], s1 + c.size() - base_len);
    assert_eq!(n.json["image_count"], 3);

    // Another namespace with the same base layer: its own figure.
    let o = push_image(
        b,
        "other/x",
        "1",
        &config_bytes("o", "amd64"),
        std::slice::from_ref(&base_layer),
    );
    let n = get(&api(b, "/namespaces/other"));
    assert_eq!(ok(&n, 200)["size"], o.size());
    let n = get(&api(b, "/namespaces/acme"));
    assert_eq!(n.json["size"], s1 + c.size() - base_len, "unchanged");

    // List shows the same figures.
    let r = get(&api(b, "/namespaces?order_by=name_asc"));
    let sizes: Vec<u64> = ok(&r, 200)["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![s1 + c.size() - base_len, o.size()]);
    // Figures are computed for the page asked for, whichever it is.
    let r = get(&api(b, "/namespaces?order_by=name_desc&page_size=1&page=2"));
    let page = ok(&r, 200);
    assert_eq!(page["total_count"], 2);
    assert_eq!(page["namespaces"][0]["name"], "acme");
    assert_eq!(page["namespaces"][0]["size"], s1 + c.size() - base_len);
    assert_eq!(page["namespaces"][0]["image_count"], 3);
    let r = get(&api(b, "/namespaces/acme/repositories"));
    let sizes: Vec<u64> = ok(&r, 200)["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![s1, c.size(), a.size()]);
}
