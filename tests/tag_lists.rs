//! Black-box tests of whole tag listings (`GET /v2/<name>/tags/list`
//! without `n`), which the server keeps between requests: every way a tag
//! changes (a new tag, a moved tag, a tag delete, an artifact delete, a
//! repository deleted and pushed again) shows in the very next listing,
//! and the listing equals the one walked page by page.

mod common;

use common::management::*;
use common::Server;

const TAGS: usize = 450; // about 7 KiB of JSON: large enough to be kept

fn whole(b: &str, repo: &str) -> Vec<String> {
    let r = get(&format!("{b}/v2/{repo}/tags/list"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["name"], repo);
    tag_names(&r.json)
}

fn paged(b: &str, repo: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut url = format!("{b}/v2/{repo}/tags/list?n=100");
    loop {
        let r = get(&url);
        assert_eq!(r.status, 200, "{}", r.text);
        out.extend(tag_names(&r.json));
        let Some(next) = r.headers.get("link") else {
            return out;
        };
        let next = next.to_str().unwrap();
        let path = next.trim_start_matches('<').split('>').next().unwrap();
        url = format!("{b}{path}");
    }
}

fn tag_names(v: &serde_json::Value) -> Vec<String> {
    let tags = v["tags"].as_array();
    let tags = tags.unwrap_or_else(|| panic!("tags array expected: {v}"));
    tags.iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn expected(tags: &[String]) -> Vec<String> {
    let mut t = tags.to_vec();
    t.sort();
    t
}

#[test]
fn whole_listing_follows_every_tag_change() {
    let (s, _d) = Server::start();
    let b = s.url();
    let repo = "acme/many";
    let mut tags: Vec<String> = (0..TAGS).map(|i| format!("release-{i:04}")).collect();
    let a = push_simple(b, repo, &tags[0], 1);
    for t in &tags[1..] {
        tag_again(b, repo, t, &a);
    }
    assert_eq!(whole(b, repo), expected(&tags));
    assert_eq!(whole(b, repo), expected(&tags), "asked again");
    assert_eq!(paged(b, repo), expected(&tags), "walked with n=100");

    tag_again(b, repo, "zz-new", &a);
    tags.push("zz-new".into());
    assert_eq!(whole(b, repo), expected(&tags), "after a new tag");

    let r = delete(&api(
        b,
        &format!("/namespaces/acme/repositories/many/tags/{}", tags[1]),
    ));
    assert_eq!(r.status, 204, "{}", r.text);
    tags.remove(1);
    assert_eq!(whole(b, repo), expected(&tags), "after a tag delete");

    // A tag moved to another artifact, which is then deleted by digest:
    // the tag goes with it.
    let moved = tags[2].clone();
    let other = push_simple(b, repo, &moved, 2);
    assert_eq!(whole(b, repo), expected(&tags), "after a moved tag");
    let r = delete(&format!("{b}/v2/{repo}/manifests/{}", other.digest));
    assert_eq!(r.status, 202, "{}", r.text);
    tags.retain(|t| *t != moved);
    assert_eq!(whole(b, repo), expected(&tags), "after an artifact delete");
    assert_eq!(paged(b, repo), expected(&tags));

    // Deleted and pushed again: only the new tags, never the old listing.
    let r = delete(&api(b, "/namespaces/acme/repositories/many"));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_v2_name_unknown(b, repo);
    let fresh: Vec<String> = (0..TAGS).map(|i| format!("second-{i:04}")).collect();
    let config = config_bytes("fresh", "amd64");
    wait_for(20, || {
        (push_blob_status(b, repo, &config) == 201).then_some(())
    })
    .expect("the repository can be pushed again once its deletion finished");
    let c = push_image(b, repo, &fresh[0], &config, &[]);
    for t in &fresh[1..] {
        tag_again(b, repo, t, &c);
    }
    assert_eq!(
        whole(b, repo),
        expected(&fresh),
        "after delete and push again"
    );
}
