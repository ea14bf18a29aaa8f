//! Credential and token parsing in `berth_server::auth` (token mode): the
//! `Authorization` header through `auth::authenticate` (Basic decoding,
//! Bearer JWTs: header, `kid`, signature, claims, expiry), scoped-token
//! secrets (`Registry::token_verify`), JWTs signed with the server's own key
//! but carrying hostile headers and claims, issued tokens round-tripping,
//! token-request scopes (`auth::grant_scopes`), `X-Forwarded-For` with
//! trusted proxies (`auth::client_addr`, `berth_server::auth::parse_cidr`), token
//! repository patterns (`berth_store::glob_match`) and the `WWW-Authenticate`
//! challenge built from a hostile `Host`.
//!
//! Input: a selector byte, then the case's bytes (several fields separated
//! by newlines).
//!
//! A real registry (sled, in `$TMPDIR/berth-fuzz-auth-<pid>`, removed by the
//! next run once the process is gone) holds the signing key and one scoped
//! token. Basic credentials that decode are checked by `parse_basic` only
//! (argon2 verification costs tens of milliseconds and records failures).
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use berth_server::auth::{
    self, AccessEntry, AuthConfig, AuthFailure, AuthMode, Caller, Claims, Principal,
};
use berth_server::{AppState, ServerConfig};
use berth_store::{Action, Registry, StoreConfig, TokenCheck, TokenScope, TOKEN_PREFIX};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const SERVICE: &str = "berth";
const LEEWAY: i64 = 5;

struct Env {
    rt: tokio::runtime::Runtime,
    state: AppState,
    /// The scoped token's secret and id.
    token: String,
    token_id: String,
    /// The current signing key.
    kid: String,
    secret: Vec<u8>,
}

fn remove_stale_dirs(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("berth-fuzz-auth-"))
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let base = std::env::temp_dir();
        remove_stale_dirs(&base);
        let dir = base.join(format!("berth-fuzz-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (state, info, token, keys) = rt.block_on(async {
            let mut cfg = StoreConfig::new(&dir);
            cfg.gc_scheduler = false;
            let reg = Registry::open(cfg).await.expect("open the registry");
            let (info, token) = reg
                .token_create(
                    "fuzz",
                    vec![TokenScope {
                        repository: "acme/*".into(),
                        actions: vec![Action::Pull],
                    }],
                    None,
                    "fuzz",
                )
                .await
                .unwrap();
            let config = ServerConfig {
                auth: AuthConfig {
                    mode: AuthMode::Token,
                    service: SERVICE.into(),
                    ..AuthConfig::default()
                },
                ..ServerConfig::default()
            };
            let state = AppState::new(reg, config);
            let keys = state.auth.keys(&state.registry).await.unwrap();
            (state, info, token, keys)
        });
        Env {
            rt,
            state,
            token,
            token_id: info.id,
            kid: keys.current.kid.clone(),
            secret: hex::decode(&keys.current.secret_hex).unwrap(),
        }
    })
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn lines(data: &[u8]) -> Vec<&str> {
    match std::str::from_utf8(data) {
        Ok(s) => s.split('\n').collect(),
        Err(_) => Vec::new(),
    }
}

const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

fn authenticate(header: &HeaderValue) -> Result<Principal, AuthFailure> {
    let e = env();
    let mut h = HeaderMap::new();
    h.insert(http::header::AUTHORIZATION, header.clone());
    e.rt.block_on(auth::authenticate(&e.state, PEER, &h))
}

fn check_bearer_claims(c: &Claims) {
    let now = now();
    assert_eq!(c.iss, SERVICE);
    assert_eq!(c.aud, SERVICE);
    assert!(c.exp >= now - LEEWAY - 1, "expired token accepted: {c:?}");
    assert!(
        c.nbf <= now + LEEWAY + 1,
        "token not yet valid accepted: {c:?}"
    );
}

/// Basic credentials: decoding and re-encoding.
fn basic(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((u, p)) = auth::parse_basic(s) {
        assert!(!u.contains(':'));
        let again = format!("Basic {}", STANDARD.encode(format!("{u}:{p}")));
        assert_eq!(auth::parse_basic(&again), Some((u.clone(), p.clone())));
        let lower = format!("basic {}", STANDARD.encode(format!("{u}:{p}")));
        assert_eq!(auth::parse_basic(&lower), Some((u, p)));
    }
}

/// An arbitrary `Authorization` header.
fn header(data: &[u8]) {
    let Ok(v) = HeaderValue::from_bytes(data) else {
        return;
    };
    if let Ok(s) = v.to_str() {
        if auth::parse_basic(s).is_some() {
            return basic(data);
        }
        let bearer = s
            .strip_prefix("Bearer ")
            .or_else(|| s.strip_prefix("bearer "))
            .map(str::trim);
        if let Some(secret) = bearer.filter(|b| b.starts_with(TOKEN_PREFIX)) {
            let e = env();
            let check = e.rt.block_on(e.state.registry.token_verify(secret)).unwrap();
            match check {
                TokenCheck::Valid(info) => {
                    assert_eq!(secret, e.token);
                    assert_eq!(info.id, e.token_id);
                }
                TokenCheck::Invalid => assert_ne!(secret, e.token),
                TokenCheck::Expired(_) => panic!("the token never expires"),
            }
            return;
        }
    }
    match authenticate(&v) {
        Err(AuthFailure::Unauthorized(_)) => {}
        other => panic!("{v:?} authenticated: {other:?}"),
    }
}

/// A JWT with a hostile header and claims, signed with the server's key.
fn signed(data: &[u8], hostile_header: bool) {
    let e = env();
    let (head, payload): (Vec<u8>, &[u8]) = if hostile_header {
        let nl = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
        (data[..nl].to_vec(), &data[(nl + 1).min(data.len())..])
    } else {
        (
            format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#, e.kid).into_bytes(),
            data,
        )
    };
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&head),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(&e.secret),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    let token = format!("{message}.{sig}");
    let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return;
    };
    match authenticate(&v) {
        Ok(Principal::Bearer { claims, subject }) => {
            let h: serde_json::Value = serde_json::from_slice(&head).expect("header is JSON");
            assert_eq!(h["alg"], "HS256", "{h}");
            assert_eq!(h["kid"], e.kid.as_str(), "{h}");
            check_bearer_claims(&claims);
            let direct: Claims = serde_json::from_slice(payload).expect("claims are JSON");
            assert_eq!(direct.sub, claims.sub);
            assert_eq!(direct.access, claims.access);
            match *subject {
                Principal::Anonymous => {}
                Principal::Token(t) => assert_eq!(claims.sub, format!("token:{}", t.id)),
                other => panic!("subject {other:?} for sub {:?}", claims.sub),
            }
        }
        Ok(other) => panic!("a JWT gave {other:?}"),
        Err(AuthFailure::Unauthorized(_)) => {}
        Err(other) => panic!("{other:?}"),
    }
}

/// Tokens the server issues verify, with their claims intact; a changed
/// signature does not.
fn issued(data: &[u8]) {
    let l = lines(data);
    // A JWT names a user that exists (its identity and password generation
    // are checked on use): the anonymous subject, which always resolves,
    // stands in; the fuzzer varies the access names.
    let Some((_, rest)) = l.split_first() else {
        return;
    };
    let sub = "";
    let access: Vec<AccessEntry> = rest
        .iter()
        .map(|name| AccessEntry {
            typ: "repository".into(),
            name: name.to_string(),
            actions: vec!["pull".into()],
        })
        .collect();
    let e = env();
    let (token, claims) =
        e.rt.block_on(auth::issue_jwt(
            &e.state,
            &Principal::Anonymous,
            access.clone(),
        ))
        .unwrap();
    assert_eq!(claims.sub, sub);
    let v = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    match authenticate(&v) {
        Ok(Principal::Bearer { claims: got, .. }) => {
            assert_eq!(got.sub, sub);
            assert_eq!(got.access, access);
            assert_eq!(got.jti, claims.jti);
            check_bearer_claims(&got);
        }
        other => panic!("issued token refused: {other:?}"),
    }
    let dot = token.rfind('.').unwrap();
    let mut tampered = token.clone().into_bytes();
    tampered[dot + 1] = if tampered[dot + 1] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let v = HeaderValue::from_bytes(
        &format!("Bearer {}", String::from_utf8(tampered).unwrap()).into_bytes(),
    )
    .unwrap();
    assert!(authenticate(&v).is_err(), "tampered signature accepted");
}

/// `X-Forwarded-For` behind trusted proxies; CIDR parsing.
fn forwarded(data: &[u8]) {
    let l = lines(data);
    if l.len() < 3 {
        return;
    }
    let mut trusted = Vec::new();
    for c in l[0].split(',') {
        if let Some((ip, len)) = berth_server::auth::parse_cidr(c) {
            assert!(len <= if ip.is_ipv4() { 32 } else { 128 });
            assert!(auth::cidr_contains((ip, len), ip));
            assert_eq!(
                berth_server::auth::parse_cidr(&format!("{ip}/{len}")),
                Some((ip, len))
            );
            trusted.push((ip, len));
        }
    }
    let peers: [SocketAddr; 4] = [
        "127.0.0.1:4000".parse().unwrap(),
        "10.1.2.3:4000".parse().unwrap(),
        "[::1]:4000".parse().unwrap(),
        "[::ffff:10.9.9.9]:4000".parse().unwrap(),
    ];
    let peer = peers[l[1].len() % peers.len()];
    let mut h = HeaderMap::new();
    for v in l[1].split('\t') {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.append("x-forwarded-for", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(l[2]) {
        h.insert("x-forwarded-proto", v);
    }
    let cfg = AuthConfig {
        trusted_proxies: trusted.clone(),
        ..AuthConfig::default()
    };
    for tls in [false, true] {
        let (ip, scheme) = auth::client_addr(&cfg, peer, &h, tls);
        assert!(scheme == "http" || scheme == "https");
        let peer_ip = peer.ip().to_canonical();
        if !trusted.iter().any(|c| auth::cidr_contains(*c, peer_ip)) {
            assert_eq!((ip, scheme), (peer_ip, if tls { "https" } else { "http" }));
        } else if ip != peer_ip {
            // The address is one of the header's entries.
            let listed = h.get_all("x-forwarded-for").iter().any(|v| {
                v.to_str()
                    .unwrap_or("")
                    .split(',')
                    .any(|p| forwarded_ip(p) == Some(ip))
            });
            assert!(listed, "{ip} is not in {h:?}");
        }
    }
}

/// An `X-Forwarded-For` entry: an address, `[v6]`, `[v6]:port` or `v4:port`.
fn forwarded_ip(p: &str) -> Option<IpAddr> {
    let p = p.trim();
    let ip = match p.strip_prefix('[') {
        Some(r) => r.split(']').next()?.parse::<IpAddr>().ok()?,
        None => p
            .parse::<IpAddr>()
            .ok()
            .or_else(|| p.parse::<SocketAddr>().ok().map(|a| a.ip()))?,
    };
    Some(ip.to_canonical())
}

/// Reference glob matcher: dynamic programming over (pattern, name).
fn glob_reference(p: &[char], n: &[char]) -> bool {
    // m[j] = pattern prefix of length i matches name prefix of length j.
    let mut m = vec![false; n.len() + 1];
    m[0] = true;
    for &c in p {
        let mut next = vec![false; n.len() + 1];
        if c == '*' {
            let mut any = false;
            for j in 0..=n.len() {
                any |= m[j];
                next[j] = any;
            }
        } else {
            for j in 1..=n.len() {
                next[j] = m[j - 1] && n[j - 1] == c;
            }
        }
        m = next;
    }
    m[n.len()]
}

/// Token repository patterns.
fn glob(data: &[u8]) {
    let l = lines(data);
    let [pattern, name, ..] = l[..] else {
        return;
    };
    let m = berth_store::glob_match(pattern, name);
    let (pc, nc): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    if pc.len() * nc.len() <= 1 << 20 {
        assert_eq!(m, glob_reference(&pc, &nc), "{pattern:?} {name:?}");
    }
    if !pattern.contains('*') {
        assert_eq!(m, pattern == name, "{pattern:?} {name:?}");
    }
    assert!(berth_store::glob_match(name, name));
    assert!(berth_store::glob_match("*", name));
    assert!(!m || berth_store::glob_match(&format!("{pattern}*"), name));
}

/// `scope` parameters of a token request.
fn scopes(data: &[u8]) {
    let l = lines(data);
    let scopes: Vec<String> = l.iter().map(|s| s.to_string()).collect();
    let e = env();
    let reg = &e.state.registry;
    let token = match e.rt.block_on(reg.token_verify(&e.token)).unwrap() {
        TokenCheck::Valid(t) => t,
        other => panic!("{other:?}"),
    };
    for p in [
        Principal::Open,
        Principal::Anonymous,
        Principal::Token(token),
    ] {
        let granted = e.rt.block_on(auth::grant_scopes(reg, &p, &scopes)).unwrap();
        let mut seen = std::collections::HashSet::new();
        for a in &granted {
            if a.typ == "registry" {
                assert!(
                    seen.insert("registry:catalog".to_string()),
                    "duplicate {a:?}"
                );
                assert_eq!(
                    (a.name.as_str(), &a.actions[..]),
                    ("catalog", &["*".to_string()][..])
                );
                continue;
            }
            assert_eq!(a.typ, "repository");
            assert!(seen.insert(a.name.clone()), "duplicate {a:?}");
            let name: berth_oci::RepoName = a.name.parse().expect("granted a valid name");
            assert!(!a.actions.is_empty());
            let mut acts = a.actions.clone();
            acts.sort();
            acts.dedup();
            assert_eq!(acts.len(), a.actions.len(), "duplicate actions {a:?}");
            for x in &a.actions {
                assert!(["pull", "push", "delete"].contains(&x.as_str()), "{a:?}");
            }
            match &p {
                Principal::Anonymous => panic!("anonymous granted {a:?} (no public namespace)"),
                Principal::Token(_) => {
                    assert_eq!(a.actions, ["pull"]);
                    assert!(name.as_str().starts_with("acme/"), "{a:?}");
                }
                _ => {}
            }
        }
    }
}

/// `WWW-Authenticate` from a hostile `Host`.
fn challenge(data: &[u8]) {
    let e = env();
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        h.insert(http::header::HOST, v);
    }
    let caller = Caller {
        principal: Principal::Anonymous,
        addr: PEER,
        scheme: "http",
        request_id: String::new(),
    };
    for (scope, insufficient) in [(None, false), (Some("repository:a/b:pull,push"), true)] {
        let c = auth::challenge(&e.state, &caller, &h, scope, insufficient);
        let quotes = c.matches('"').count();
        let want = 4 + if scope.is_some() { 2 } else { 0 } + if insufficient { 2 } else { 0 };
        assert_eq!(quotes, want, "{c}");
        assert!(
            HeaderValue::from_str(&c).is_ok(),
            "{c:?} is not a header value"
        );
        assert!(c.starts_with("Bearer realm=\"http://"));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 9 {
        0 => basic(rest),
        1 => header(rest),
        2 => signed(rest, false),
        3 => signed(rest, true),
        4 => issued(rest),
        5 => forwarded(rest),
        6 => glob(rest),
        7 => scopes(rest),
        _ => challenge(rest),
    }
});
