//! The Docker token endpoint, black-box: challenges, anonymous and scoped
//! tokens (the intersection of what is asked and allowed), tampered and
//! foreign tokens refused, the OAuth2 form, scoped tokens as passwords, and
//! signing-key rotation.

mod common;

use base64::Engine as _;
use common::auth::*;
use reqwest::Method;
use serde_json::{json, Value};

#[test]
fn docker_token_protocol() {
    let w = world("");
    let url = w.p.url.clone();
    let c = &w.c;
    // Challenges name the realm, the service and the scope needed.
    let r = c.get(format!("{url}/v2/")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Bearer realm=\"{url}/auth/token\",service=\"berth\"").as_str()
    );
    let r = c
        .get(format!("{url}/v2/priv/app/manifests/seed"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Bearer realm=\"{url}/auth/token\",service=\"berth\",scope=\"repository:priv/app:pull\"").as_str()
    );
    let body: Value = r.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    let r = c
        .post(format!("{url}/v2/priv/app/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .ends_with("scope=\"repository:priv/app:pull,push\""));

    // Anonymous tokens grant public pulls only.
    let (s, v) = get_token(
        c,
        &url,
        &Cred::None,
        &["repository:pub/app:pull,push", "repository:priv/app:pull"],
    );
    assert_eq!(s, 200);
    let claims = jwt_claims(v["token"].as_str().unwrap());
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "pub/app", "actions": ["pull"]}])
    );
    assert_eq!(v["token"], v["access_token"]);
    assert_eq!(v["expires_in"], 300);
    assert!(v["issued_at"].as_str().unwrap().ends_with('Z'));

    // The intersection of what is asked and what is allowed.
    let reader = basic("reader", PW);
    let (s, v) = get_token(c, &url, &reader, &["repository:priv/app:pull,push,delete"]);
    assert_eq!(s, 200);
    let reader_jwt = v["token"].as_str().unwrap().to_string();
    assert_eq!(
        jwt_claims(&reader_jwt)["access"][0]["actions"],
        json!(["pull"])
    );
    assert_eq!(jwt_claims(&reader_jwt)["sub"], "reader");
    let writer = basic("writer", PW);
    let (_, v) = get_token(c, &url, &writer, &["repository:priv/app:pull,push,delete"]);
    let writer_jwt = v["token"].as_str().unwrap().to_string();
    assert_eq!(
        jwt_claims(&writer_jwt)["access"][0]["actions"],
        json!(["pull", "push"])
    );

    // Tokens work on /v2; a token without the scope gets a new challenge.
    let img = &w.img["priv"];
    assert_eq!(
        put_manifest(
            c,
            &url,
            "priv/app",
            "jwt",
            img,
            &Cred::Bearer(writer_jwt.clone())
        ),
        201
    );
    let r = send(
        c,
        Method::PUT,
        &format!("{url}/v2/priv/app/manifests/nope"),
        &Cred::Bearer(reader_jwt.clone()),
    )
    .header("content-type", MT)
    .body(img.manifest.clone())
    .send()
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    let r = send(
        c,
        Method::GET,
        &format!("{url}/v2/"),
        &Cred::Bearer(reader_jwt.clone()),
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 200);
    // A token for one repository does not open another.
    let r = send(
        c,
        Method::GET,
        &format!("{url}/v2/pub/app/manifests/seed"),
        &Cred::Bearer(reader_jwt.clone()),
    )
    .header("accept", MT)
    .send()
    .unwrap();
    assert_eq!(r.status(), 401);

    // A tampered token is refused.
    let mut parts: Vec<String> = writer_jwt.split('.').map(str::to_string).collect();
    let mut claims = jwt_claims(&writer_jwt);
    claims["access"][0]["actions"] = json!(["pull", "push", "delete"]);
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = parts.join(".");
    let r = send(
        c,
        Method::DELETE,
        &format!("{url}/v2/priv/app/manifests/jwt"),
        &Cred::Bearer(forged),
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 401);

    // Wrong credentials and a foreign service are refused.
    let (s, _) = get_token(c, &url, &basic("reader", "wrong-password"), &[]);
    assert_eq!(s, 401);
    let r = c
        .get(format!("{url}/auth/token?service=elsewhere"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    // The OAuth2 form (containerd).
    let r = c
        .post(format!("{url}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "password"),
            ("username", "writer"),
            ("password", PW),
            ("service", "berth"),
            ("scope", "repository:priv/app:pull repository:pub/app:pull"),
            ("client_id", "containerd"),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    let claims = jwt_claims(v["access_token"].as_str().unwrap());
    assert_eq!(claims["access"].as_array().unwrap().len(), 2, "{claims}");
    let r = c
        .post(format!("{url}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "password"),
            ("username", "writer"),
            ("password", "nope-nope"),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    // A scoped token logs in like a password (docker login -p <secret>).
    let (_, secret) = create_token(
        &w,
        "robot",
        json!([{"repository": "priv/*", "actions": ["pull"]}]),
        json!({}),
    );
    let (s, v) = get_token(
        c,
        &url,
        &basic("robot", &secret),
        &["repository:priv/app:pull,push"],
    );
    assert_eq!(s, 200);
    assert_eq!(
        jwt_claims(v["token"].as_str().unwrap())["access"][0]["actions"],
        json!(["pull"])
    );

    // Rotation: tokens signed by the previous key stop working at once.
    let pull = |jwt: &str| {
        send(
            c,
            Method::GET,
            &format!("{url}/v2/priv/app/tags/list"),
            &Cred::Bearer(jwt.to_string()),
        )
        .send()
        .unwrap()
        .status()
        .as_u16()
    };
    assert_eq!(pull(&reader_jwt), 200);
    let (s, k1) = api(c, Method::POST, &url, "/signing-key", &w.admin, None);
    assert_eq!(s, 200);
    assert_eq!(pull(&reader_jwt), 401);
    let (_, k2) = api(c, Method::POST, &url, "/signing-key", &w.admin, None);
    assert_eq!(k2["previous_kid"], k1["kid"]);
    let (s, _) = api(c, Method::POST, &url, "/signing-key", &reader, None);
    assert_eq!(s, 403);
}
