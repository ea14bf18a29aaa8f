//! Access control, black-box: the permission matrix (who × what × public or
//! private namespace, exact statuses). The other access-control suites are
//! the files `auth_*.rs`.

mod common;

use common::auth::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn permission_matrix() {
    let w = world("");
    let url = w.p.url.clone();
    let c = &w.c;
    let scopes = json!([
        {"repository": "priv/*", "actions": ["pull", "push"]},
        {"repository": "pub/*", "actions": ["pull"]}
    ]);
    let (_, token) = create_token(&w, "ci", scopes.clone(), json!({}));
    let (_, expired) = create_token(&w, "old", scopes.clone(), json!({"expires_in_seconds": 1}));
    let (revoked_id, revoked) = create_token(&w, "gone", scopes, json!({}));
    let (s, _) = api(
        c,
        Method::DELETE,
        &url,
        &format!("/tokens/{revoked_id}"),
        &w.admin,
        None,
    );
    assert_eq!(s, 204);
    std::thread::sleep(Duration::from_millis(1500));

    // (who, credentials, [pull, push, delete, list, manage] on pub, then on priv)
    let u = |n: &str| basic(n, PW);
    let rows: Vec<(&str, Cred, [u16; 5], [u16; 5])> = vec![
        ("anonymous", Cred::None, [200, 401, 401, 200, 401], [401; 5]),
        (
            "reader",
            u("reader"),
            [200, 403, 403, 200, 403],
            [200, 403, 403, 200, 403],
        ),
        (
            "writer",
            u("writer"),
            [200, 201, 403, 200, 403],
            [200, 201, 403, 200, 403],
        ),
        (
            "namespace admin",
            u("nsadmin"),
            [200, 201, 202, 200, 200],
            [200, 201, 202, 200, 200],
        ),
        (
            "registry admin",
            w.admin.clone(),
            [200, 201, 202, 200, 200],
            [200, 201, 202, 200, 200],
        ),
        (
            "user without role",
            u("outsider"),
            [200, 403, 403, 200, 403],
            [403; 5],
        ),
        (
            "scoped token",
            basic("ci", &token),
            [200, 403, 403, 200, 403],
            [200, 201, 403, 200, 403],
        ),
        (
            "scoped token as bearer",
            Cred::Bearer(token.clone()),
            [200, 403, 403, 200, 403],
            [200, 201, 403, 200, 403],
        ),
        ("expired token", basic("old", &expired), [401; 5], [401; 5]),
        ("revoked token", basic("gone", &revoked), [401; 5], [401; 5]),
        (
            "wrong password",
            basic("reader", "not-the-password"),
            [401; 5],
            [401; 5],
        ),
        ("unknown user", basic("nobody", PW), [401; 5], [401; 5]),
    ];
    let mut failures = Vec::new();
    for (i, (who, cred, on_pub, on_priv)) in rows.iter().enumerate() {
        for (ns, expected) in [("pub", on_pub), ("priv", on_priv)] {
            let repo = format!("{ns}/app");
            let img = &w.img[ns];
            // pull
            let pull = send(
                c,
                Method::GET,
                &format!("{url}/v2/{repo}/manifests/seed"),
                cred,
            )
            .header("accept", MT)
            .send()
            .unwrap()
            .status()
            .as_u16();
            // push (a new tag of the seeded image)
            let push = put_manifest(c, &url, &repo, &format!("push{i}"), img, cred);
            // delete (a tag the admin sets first)
            let tag = format!("del{i}");
            assert_eq!(put_manifest(c, &url, &repo, &tag, img, &w.admin), 201);
            let delete = send(
                c,
                Method::DELETE,
                &format!("{url}/v2/{repo}/manifests/{tag}"),
                cred,
            )
            .send()
            .unwrap()
            .status()
            .as_u16();
            // list
            let list = send(c, Method::GET, &format!("{url}/v2/{repo}/tags/list"), cred)
                .send()
                .unwrap()
                .status()
                .as_u16();
            // manage (namespace settings through the management API)
            let (manage, _) = api(
                c,
                Method::PATCH,
                &url,
                &format!("/namespaces/{ns}"),
                cred,
                Some(json!({"description": format!("set by {who}")})),
            );
            let got = [pull, push, delete, list, manage];
            if got != *expected {
                failures.push(format!("{who} on {ns}: expected {expected:?}, got {got:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "permission matrix:\n{}",
        failures.join("\n")
    );

    // `_catalog` lists what each caller may pull, nothing else.
    let catalog = |cred: &Cred| -> Vec<String> {
        let r = send(c, Method::GET, &format!("{url}/v2/_catalog"), cred)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    // Anonymous: challenged for registry:catalog:*; a token for it lists
    // the public repositories.
    let r = c.get(format!("{url}/v2/_catalog")).send().unwrap();
    assert_eq!(r.status(), 401);
    let (s, v) = get_token(c, &url, &Cred::None, &["registry:catalog:*"]);
    assert_eq!(s, 200);
    let anon = Cred::Bearer(v["token"].as_str().unwrap().to_string());
    assert_eq!(catalog(&anon), vec!["pub/app"]);
    assert_eq!(catalog(&u("outsider")), vec!["pub/app"]);
    assert_eq!(catalog(&u("reader")), vec!["priv/app", "pub/app"]);
    assert_eq!(catalog(&basic("ci", &token)), vec!["priv/app", "pub/app"]);
    // The management API's listings are filtered the same way.
    let (s, v) = api(c, Method::GET, &url, "/namespaces", &Cred::None, None);
    assert_eq!(s, 200);
    assert_eq!(v["total_count"], 1, "{v}");
    let (s, v) = api(c, Method::GET, &url, "/namespaces", &u("reader"), None);
    assert_eq!(s, 200);
    assert_eq!(v["total_count"], 2, "{v}");
    let (s, _) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/priv/repositories",
        &u("outsider"),
        None,
    );
    assert_eq!(s, 403);
    // Anonymous callers list the repositories of public namespaces only.
    let (s, v) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/pub/repositories",
        &Cred::None,
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(v["repositories"][0]["name"], "pub/app", "{v}");
    let (s, _) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/priv/repositories",
        &Cred::None,
        None,
    );
    assert_eq!(s, 401);
    let (s, _) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/priv/repositories/app/tags",
        &Cred::None,
        None,
    );
    assert_eq!(s, 401);
    // Nothing about private namespaces leaks: a missing repository answers
    // like an existing one.
    for repo in ["priv/app", "priv/nothing-here"] {
        let r = send(
            c,
            Method::GET,
            &format!("{url}/v2/{repo}/tags/list"),
            &u("outsider"),
        )
        .send()
        .unwrap();
        assert_eq!(r.status(), 403, "{repo}");
    }
    // Blobs cannot be taken from a private repository by mounting them.
    let img = &w.img["priv"];
    let cfg_digest = serde_json::from_str::<Value>(&img.manifest).unwrap()["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/namespaces/pub/grants/outsider",
        &w.admin,
        Some(json!({"role": "writer"})),
    );
    assert_eq!(s, 200);
    for from in ["&from=priv/app", ""] {
        let r = send(
            c,
            Method::POST,
            &format!("{url}/v2/pub/stolen/blobs/uploads/?mount={cfg_digest}{from}"),
            &u("outsider"),
        )
        .send()
        .unwrap();
        assert_eq!(r.status(), 202, "mount{from} must fall back to an upload");
    }
    // The writer of both may mount across them.
    let r = send(
        c,
        Method::POST,
        &format!("{url}/v2/pub/copied/blobs/uploads/?mount={cfg_digest}"),
        &u("writer"),
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 201);
}
