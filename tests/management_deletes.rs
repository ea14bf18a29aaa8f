//! Black-box tests of deletes through the management API: the last tag,
//! an artifact with two tags (by `/v2` DELETE and by the REST form), the
//! sizes an artifact delete gives back, and a repository delete.

mod common;

use common::bytes;
use common::management::*;
use common::Server;
use serde_json::json;
use std::collections::BTreeSet;

#[test]
fn deleting_the_last_tag_keeps_the_artifact() {
    let (s, _d) = Server::start();
    let b = s.url();
    let img = push_simple(b, "acme/t", "only", 3);
    let r = delete(&api(b, "/namespaces/acme/repositories/t/tags/only"));
    assert_eq!(r.status, 204, "{}", r.text);
    let r = get(&api(b, "/namespaces/acme/repositories/t"));
    let d = ok(&r, 200);
    assert_eq!(d["repository"]["tag_count"], 0);
    assert_eq!(d["repository"]["artifact_count"], 1);
    assert!(d["repository"]["latest_tag"].is_null());
    assert_eq!(d["tags"], json!([]));
    assert_eq!(d["artifacts"][0]["digest"], img.digest);
    assert_eq!(d["artifacts"][0]["tags"], json!([]));
    assert_eq!(d["repository"]["size"], img.size());
    let r = get(&api(b, "/namespaces/acme/repositories/t/tags"));
    assert_eq!(ok(&r, 200)["total_count"], 0);
    // /v2: the digest still resolves, the tag does not; the repository stays.
    assert_eq!(
        get(&format!("{b}/v2/acme/t/manifests/{}", img.digest)).status,
        200
    );
    let r = get(&format!("{b}/v2/acme/t/manifests/only"));
    assert_eq!(r.status, 404);
    assert_eq!(r.json["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let r = get(&format!("{b}/v2/acme/t/tags/list"));
    assert_eq!(r.status, 200);
    assert!(r.json["tags"].as_array().is_none_or(|t| t.is_empty()));
    assert_eq!(catalog(b), vec!["acme/t"]);
    // Again: 404.
    assert_err(
        &delete(&api(b, "/namespaces/acme/repositories/t/tags/only")),
        404,
        "not_found",
        None,
    );
    assert_err(
        &delete(&api(b, "/namespaces/acme/repositories/t/tags/.bad")),
        400,
        "invalid_argument",
        Some("tag"),
    );
    // Deleting a tag leaves a second tag of the same manifest.
    tag_again(b, "acme/t", "x", &img);
    tag_again(b, "acme/t", "y", &img);
    assert_eq!(
        delete(&api(b, "/namespaces/acme/repositories/t/tags/x")).status,
        204
    );
    let r = get(&api(b, "/namespaces/acme/repositories/t/tags"));
    assert_eq!(names(ok(&r, 200), "tags"), vec!["y"]);
    assert_eq!(get(&format!("{b}/v2/acme/t/manifests/y")).status, 200);
}

/// Deletes the artifact `x` that tags `a` and `b` point at, with `how`,
/// and checks that only it and its tags went.
fn shared_artifact_delete(how: &str) {
    let (s, _d) = Server::start();
    let b = s.url();
    let repo = "acme/d";
    let x_config = config_bytes("x", "amd64");
    let x_layers = [bytes(1, 800)];
    let x = push_image(b, repo, "a", &x_config, &x_layers);
    tag_again(b, repo, "b", &x);
    let y = push_simple(b, repo, "c", 2);
    let z = push_simple(b, repo, "", 4); // untagged
                                         // The same manifest in another repository.
    let other = push_image(b, "acme/keep", "a", &x_config, &x_layers);
    assert_eq!(other.digest, x.digest);

    let path = match how {
        "delete-request" => format!(
            "/namespaces/acme/repositories/d/delete-request?digest={}",
            x.digest
        ),
        _ => format!("/namespaces/acme/repositories/d/artifacts/{}", x.digest),
    };
    let r = delete(&api(b, &path));
    assert_eq!(r.status, 204, "{how}: {}", r.text);

    let r = get(&api(b, "/namespaces/acme/repositories/d"));
    let d = ok(&r, 200);
    assert_eq!(names(d, "tags"), vec!["c"], "{how}");
    let arts: BTreeSet<String> = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        arts,
        [y.digest.clone(), z.digest.clone()].into_iter().collect()
    );
    assert_eq!(d["repository"]["tag_count"], 1);
    assert_eq!(d["repository"]["artifact_count"], 2);
    assert_eq!(d["repository"]["latest_tag"], "c");
    for tag in ["a", "b"] {
        let r = get(&format!("{b}/v2/{repo}/manifests/{tag}"));
        assert_eq!(r.status, 404, "{how}: tag {tag} still resolves");
    }
    assert_eq!(
        get(&format!("{b}/v2/{repo}/manifests/{}", x.digest)).status,
        404
    );
    assert_eq!(get(&format!("{b}/v2/{repo}/manifests/c")).status, 200);
    assert_eq!(
        get(&format!("{b}/v2/{repo}/manifests/{}", z.digest)).status,
        200
    );
    let r = get(&format!("{b}/v2/{repo}/tags/list"));
    assert_eq!(r.json["tags"], json!(["c"]));
    // The same manifest in another repository is untouched.
    assert_eq!(get(&format!("{b}/v2/acme/keep/manifests/a")).status, 200);
    let r = get(&api(b, "/namespaces/acme/repositories/keep"));
    assert_eq!(names(ok(&r, 200), "tags"), vec!["a"]);

    // Again: 404; bad or missing digest: 400.
    assert_err(&delete(&api(b, &path)), 404, "not_found", None);
    let r = delete(&api(b, "/namespaces/acme/repositories/d/delete-request"));
    assert_err(&r, 400, "invalid_argument", Some("digest"));
    let r = delete(&api(
        b,
        "/namespaces/acme/repositories/d/delete-request?digest=sha256:zz",
    ));
    assert_err(&r, 400, "invalid_argument", Some("digest"));
    let r = delete(&api(b, "/namespaces/acme/repositories/d/artifacts/latest"));
    assert_err(&r, 400, "invalid_argument", Some("digest"));
    let r = delete(&api(
        b,
        &format!("/namespaces/acme/repositories/nope/artifacts/{}", y.digest),
    ));
    assert_err(&r, 404, "not_found", None);
    // Nothing else changed.
    let r = get(&api(b, "/namespaces/acme/repositories/d"));
    assert_eq!(r.json["repository"]["artifact_count"], 2);
}

#[test]
fn deleting_an_artifact_with_two_tags_via_delete_request() {
    shared_artifact_delete("delete-request");
}

#[test]
fn deleting_an_artifact_with_two_tags_via_rest_form() {
    shared_artifact_delete("rest");
}

#[test]
fn artifact_delete_shrinks_repository_and_namespace_size() {
    // Sizes describe what the remaining artifacts hold: once an artifact is
    // deleted, its own manifest, config and layers no longer count (layers
    // it shares with remaining artifacts still do, once).
    let (s, _d) = Server::start();
    let b = s.url();
    let base_layer = bytes(500, 3000);
    let x = push_image(
        b,
        "acme/sz",
        "x",
        &config_bytes("x", "amd64"),
        &[base_layer.clone(), bytes(501, 2000)],
    );
    let y = push_image(
        b,
        "acme/sz",
        "y",
        &config_bytes("y", "amd64"),
        &[base_layer.clone(), bytes(502, 100)],
    );
    let both = x.size() + y.size() - base_layer.len() as u64;
    let r = get(&api(b, "/namespaces/acme/repositories/sz"));
    assert_eq!(ok(&r, 200)["repository"]["size"], both);
    let r = delete(&api(
        b,
        &format!("/namespaces/acme/repositories/sz/artifacts/{}", x.digest),
    ));
    assert_eq!(r.status, 204, "{}", r.text);
    let r = get(&api(b, "/namespaces/acme/repositories/sz"));
    let d = ok(&r, 200);
    assert_eq!(d["repository"]["artifact_count"], 1);
    assert_eq!(
        d["size_breakdown"]["artifacts"],
        json!([{"digest": y.digest, "size": y.size()}])
    );
    assert_eq!(
        (
            d["repository"]["size"].as_u64(),
            d["size_breakdown"]["total"].as_u64(),
            get(&api(b, "/namespaces/acme")).json["size"].as_u64(),
        ),
        (Some(y.size()), Some(y.size()), Some(y.size())),
        "(repository size, size_breakdown.total, namespace size) after deleting \
         artifact {} ({} bytes, {} of them its own); before: {both}",
        x.digest,
        x.size(),
        both - y.size()
    );
}

#[test]
fn repository_delete_removes_it_from_api_catalog_and_v2() {
    let (s, _d) = Server::start();
    let b = s.url();
    let r1 = push_simple(b, "acme/r1", "1", 1);
    push_simple(b, "acme/r1", "2", 2);
    let r2 = push_simple(b, "acme/r2", "1", 3);
    assert_eq!(catalog(b), vec!["acme/r1", "acme/r2"]);
    let r = delete(&api(b, "/namespaces/acme/repositories/r1"));
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_err(
        &get(&api(b, "/namespaces/acme/repositories/r1")),
        404,
        "not_found",
        None,
    );
    assert_err(
        &get(&api(b, "/namespaces/acme/repositories/r1/tags")),
        404,
        "not_found",
        None,
    );
    let r = get(&api(b, "/namespaces/acme/repositories"));
    assert_eq!(names(ok(&r, 200), "repositories"), vec!["acme/r2"]);
    assert_eq!(r.json["total_count"], 1);
    assert_eq!(catalog(b), vec!["acme/r2"]);
    assert_v2_name_unknown(b, "acme/r1");
    assert_eq!(
        get(&format!("{b}/v2/acme/r1/manifests/{}", r1.digest)).status,
        404
    );
    assert_eq!(
        get(&format!("{b}/v2/acme/r1/blobs/{}", r1.layers[0].0)).status,
        404,
        "blobs of a deleted repository are no longer served from it"
    );
    let n = get(&api(b, "/namespaces/acme"));
    assert_eq!(ok(&n, 200)["image_count"], 1);
    assert_eq!(n.json["size"], r2.size());
    assert_err(
        &delete(&api(b, "/namespaces/acme/repositories/r1")),
        404,
        "not_found",
        None,
    );
    // A new push re-creates it, fresh.
    let again = push_simple(b, "acme/r1", "3", 4);
    let r = get(&api(b, "/namespaces/acme/repositories/r1"));
    let d = ok(&r, 200);
    assert_eq!(names(d, "tags"), vec!["3"]);
    assert_eq!(d["repository"]["artifact_count"], 1);
    assert_eq!(d["repository"]["size"], again.size());
    assert!(d["repository"]["last_pull"].is_null());
}
