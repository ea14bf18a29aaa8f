//! The Rust `oci-client` crate (the ORAS project's Rust client, also used by
//! wasmtime, krustlet and Kubewarden) pushes and pulls through a real
//! `berth serve`, and every byte comes back as pushed: an image pushed in
//! chunks and monolithically, pulled whole and blob by blob, an artifact with
//! a custom `artifactType` and the empty config attached to the image as a
//! referrer and found again through the client's referrers call, a
//! cross-repository mount, an image index resolved to its platform, tags.
//!
//! In token mode, a second test checks the cross-repository mount: the
//! client's own token exchange asks only for the destination's scope, and a
//! token for what the mount challenge names makes the same call mount.
//!
//! The client speaks plain HTTP (`ClientProtocol::Http`) to the loopback port
//! the server picked; no TLS is involved.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{authkit, client as http_client, digest, Server};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{
    ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest, OciManifest, Platform,
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;
use oci_client::{Client, Reference};

const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const ARTIFACT_TYPE: &str = "application/vnd.berth.test.sbom.v1+json";
const OTHER_ARTIFACT_TYPE: &str = "application/vnd.berth.test.signature.v1";

/// Counts warnings the client logs: oci-client warns, then silently falls
/// back to a monolithic upload, when a registry gets chunked uploads wrong.
/// A silent fallback must fail this test.
struct WarnCounter(Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WarnCounter {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        if *meta.level() <= tracing::Level::WARN && meta.target().starts_with("oci_client") {
            self.0.fetch_add(1, Ordering::SeqCst);
            let mut msg = String::new();
            event.record(&mut MessageVisitor(&mut msg));
            self.1
                .lock()
                .unwrap()
                .push(format!("{}: {msg}", meta.target()));
        }
    }
}

struct MessageVisitor<'a>(&'a mut String);

impl tracing::field::Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough to be
/// a realistic layer and reproducible across runs.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A plain-HTTP client; `monolithic` pushes each blob with one POST + PUT
/// instead of POST, PATCH per 4 MiB chunk, PUT.
fn oci(monolithic: bool) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        use_monolithic_push: monolithic,
        ..Default::default()
    })
}

/// GET a manifest over plain HTTP: (status, bytes, Content-Type, Docker-Content-Digest).
fn raw_manifest(base: &str, repo: &str, reference: &str) -> (u16, Vec<u8>, String, String) {
    let resp = http_client()
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header(
            "Accept",
            format!("{OCI_IMAGE_MEDIA_TYPE}, {OCI_IMAGE_INDEX_MEDIA_TYPE}"),
        )
        .send()
        .expect("GET manifest");
    let status = resp.status().as_u16();
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (ct, dcd) = (h("content-type"), h("docker-content-digest"));
    (status, resp.bytes().unwrap().to_vec(), ct, dcd)
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

fn has_layer(layers: &[ImageLayer], want: &[u8]) -> bool {
    layers.iter().any(|l| l.data.as_ref() == want)
}

fn raw_blob(base: &str, repo: &str, dg: &str) -> (u16, Vec<u8>) {
    let resp = http_client()
        .get(format!("{base}/v2/{repo}/blobs/{dg}"))
        .send()
        .expect("GET blob");
    (resp.status().as_u16(), resp.bytes().unwrap().to_vec())
}

#[test]
fn oci_client_pushes_and_pulls_byte_for_byte() {
    let warnings = Arc::new(AtomicUsize::new(0));
    let warning_text = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry()
            .with(WarnCounter(warnings.clone(), warning_text.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("subscriber");
    }

    // reqwest is built with rustls but no crypto provider (see Cargo.toml): install ring's.
    // Nothing here speaks TLS; reqwest only needs one to build a client.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let (srv, _dir) = Server::start();
    let base = srv.url().to_string();
    let host = base.strip_prefix("http://").expect("http url").to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let anon = RegistryAuth::Anonymous;

    // ------------------------------------------------------------ the image
    // A 9 MiB layer spans three 4 MiB PATCH chunks in the client's chunked push.
    let big = bytes(0x5eed_0001, 9 * 1024 * 1024 + 12345);
    let small = bytes(0x5eed_0002, 4321);
    let mut ann = BTreeMap::new();
    ann.insert(
        "org.opencontainers.image.title".to_string(),
        "small.tar".to_string(),
    );
    let layers = vec![
        ImageLayer::new(big.clone(), IMAGE_LAYER_GZIP_MEDIA_TYPE.to_string(), None),
        ImageLayer::new(small.clone(), IMAGE_LAYER_MEDIA_TYPE.to_string(), Some(ann)),
    ];
    let config_json = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&big), digest(&small)]},
    }))
    .unwrap();
    let config = Config::new(
        config_json.clone(),
        IMAGE_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let image: Reference = format!("{host}/rust/app:1").parse().expect("reference");

    let chunked = oci(false);
    let pushed = rt
        .block_on(chunked.push(&image, &layers, config.clone(), &anon, None))
        .expect("oci-client push (chunked)");
    assert!(
        pushed.manifest_url.contains("/v2/rust/app/manifests/"),
        "manifest url {}",
        pushed.manifest_url
    );

    // What the registry serves is what the client built.
    let (st, manifest_bytes, ct, dcd) = raw_manifest(&base, "rust/app", "1");
    assert_eq!(st, 200);
    assert_eq!(ct, OCI_IMAGE_MEDIA_TYPE);
    let image_digest = digest(&manifest_bytes);
    assert_eq!(dcd, image_digest);
    let expected = OciImageManifest::build(&layers, &config, None);
    let served: OciImageManifest = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(
        json(&served),
        json(&expected),
        "served manifest differs from the client's"
    );
    assert_eq!(served.layers[0].digest, digest(&big));
    assert_eq!(served.layers[1].digest, digest(&small));
    assert_eq!(served.config.digest, digest(&config_json));
    for (dg, want) in [
        (digest(&big), &big),
        (digest(&small), &small),
        (digest(&config_json), &config_json),
    ] {
        let (st, got) = raw_blob(&base, "rust/app", &dg);
        assert_eq!(st, 200, "GET blob {dg}");
        assert!(got == *want, "blob {dg} bytes differ");
    }

    // The client's own view: digest, raw manifest, tags, blob existence.
    let fetched = rt
        .block_on(chunked.fetch_manifest_digest(&image, &anon))
        .expect("fetch_manifest_digest");
    assert_eq!(fetched, image_digest);
    let (raw, raw_digest) = rt
        .block_on(chunked.pull_manifest_raw(&image, &anon, &[OCI_IMAGE_MEDIA_TYPE]))
        .expect("pull_manifest_raw");
    assert_eq!(raw.as_ref(), manifest_bytes.as_slice());
    assert_eq!(raw_digest, image_digest);
    assert!(rt
        .block_on(chunked.blob_exists(&image, &digest(&big)))
        .unwrap());
    assert!(!rt
        .block_on(chunked.blob_exists(&image, &digest(b"not pushed")))
        .unwrap());

    // Pull: the client checks digests itself; compare bytes anyway.
    let pulled = rt
        .block_on(chunked.pull(
            &image,
            &anon,
            vec![IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE],
        ))
        .expect("oci-client pull");
    assert_eq!(pulled.digest.as_deref(), Some(image_digest.as_str()));
    // (layers come back in the order their downloads finished)
    assert_eq!(pulled.layers.len(), 2);
    assert!(has_layer(&pulled.layers, &big), "big layer");
    assert!(has_layer(&pulled.layers, &small), "small layer");
    assert_eq!(pulled.config.data.as_ref(), config_json.as_slice());
    assert_eq!(json(&pulled.manifest.expect("manifest")), json(&expected));

    // Blob by blob, streamed.
    let mut out = Vec::new();
    rt.block_on(chunked.pull_blob(&image, &served.layers[0], &mut out))
        .expect("pull_blob");
    assert!(out == big, "pull_blob bytes differ");

    // The same image pushed monolithically (POST + PUT) to a second tag: the
    // registry already has every blob, the manifest is the same bytes.
    let mono = oci(true);
    let image2: Reference = format!("{host}/rust/app:mono").parse().unwrap();
    rt.block_on(mono.push(&image2, &layers, config.clone(), &anon, None))
        .expect("oci-client push (monolithic)");
    let (st, m2, _, _) = raw_manifest(&base, "rust/app", "mono");
    assert_eq!(st, 200);
    assert_eq!(m2, manifest_bytes);
    // ... and a fresh monolithic push of new bytes to another repository.
    let fresh = bytes(0x5eed_0003, 70_000);
    let fresh_layers = vec![ImageLayer::new(
        fresh.clone(),
        IMAGE_LAYER_MEDIA_TYPE.to_string(),
        None,
    )];
    let image3: Reference = format!("{host}/rust/mono:1").parse().unwrap();
    rt.block_on(mono.push(&image3, &fresh_layers, config.clone(), &anon, None))
        .expect("oci-client push (monolithic, new blobs)");
    assert_eq!(raw_blob(&base, "rust/mono", &digest(&fresh)).1, fresh);

    let tags = rt
        .block_on(chunked.list_tags(&image, &anon, None, None))
        .expect("list_tags");
    assert_eq!(tags.name, "rust/app");
    assert_eq!(tags.tags, vec!["1".to_string(), "mono".to_string()]);

    // ------------------------------------------------------------ mount
    let other: Reference = format!("{host}/rust/other:1").parse().unwrap();
    assert!(!rt
        .block_on(chunked.blob_exists(&other, &digest(&big)))
        .unwrap());
    rt.block_on(chunked.mount_blob(&other, &image, &digest(&big)))
        .expect("mount_blob");
    assert!(rt
        .block_on(chunked.blob_exists(&other, &digest(&big)))
        .unwrap());
    assert_eq!(raw_blob(&base, "rust/other", &digest(&big)).1, big);

    // ------------------------------------------------------------ artifact + referrers
    // An artifact with a custom artifactType, the empty config and one layer,
    // whose subject is the image: pushed by digest, untagged, as `oras attach` does.
    let sbom = br#"{"spdxVersion":"SPDX-2.3","name":"berth-test"}"#.to_vec();
    let empty = b"{}".to_vec();
    let mut art_ann = BTreeMap::new();
    art_ann.insert(
        "org.opencontainers.image.created".to_string(),
        "2024-01-02T03:04:05Z".to_string(),
    );
    art_ann.insert("org.example.berth".to_string(), "rust".to_string());
    let artifact = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        artifact_type: Some(ARTIFACT_TYPE.to_string()),
        config: OciDescriptor {
            media_type: EMPTY_MEDIA_TYPE.to_string(),
            digest: digest(&empty),
            size: 2,
            ..Default::default()
        },
        layers: vec![OciDescriptor {
            media_type: "application/spdx+json".to_string(),
            digest: digest(&sbom),
            size: sbom.len() as i64,
            ..Default::default()
        }],
        subject: Some(OciDescriptor {
            media_type: OCI_IMAGE_MEDIA_TYPE.to_string(),
            digest: image_digest.clone(),
            size: manifest_bytes.len() as i64,
            ..Default::default()
        }),
        annotations: Some(art_ann),
    };
    let by_image_digest = Reference::with_digest(
        image.resolve_registry().to_string(),
        "rust/app".to_string(),
        image_digest.clone(),
    );
    rt.block_on(chunked.push_blob(&by_image_digest, sbom.clone(), &digest(&sbom)))
        .expect("push sbom blob");
    rt.block_on(chunked.push_blob(&by_image_digest, empty.clone(), &digest(&empty)))
        .expect("push empty config");
    let art_body = serde_json::to_vec(&artifact).unwrap();
    let art_digest = digest(&art_body);
    let art_ref = Reference::with_digest(
        image.resolve_registry().to_string(),
        "rust/app".to_string(),
        art_digest.clone(),
    );
    rt.block_on(chunked.push_manifest_raw(
        &art_ref,
        art_body.clone(),
        OCI_IMAGE_MEDIA_TYPE.parse().unwrap(),
    ))
    .expect("push artifact manifest by digest");
    let (st, got, _, dcd) = raw_manifest(&base, "rust/app", &art_digest);
    assert_eq!(st, 200);
    assert_eq!(got, art_body);
    assert_eq!(dcd, art_digest);
    // Pulled back through the client, with the artifact's own layer type.
    let art_pulled = rt
        .block_on(chunked.pull(&art_ref, &anon, vec!["application/spdx+json"]))
        .expect("pull artifact");
    assert_eq!(art_pulled.layers[0].data.as_ref(), sbom.as_slice());
    assert_eq!(art_pulled.config.data.as_ref(), b"{}");
    assert_eq!(art_pulled.config.media_type, EMPTY_MEDIA_TYPE);
    let art_manifest = art_pulled.manifest.expect("manifest");
    assert_eq!(art_manifest.artifact_type.as_deref(), Some(ARTIFACT_TYPE));
    assert_eq!(
        art_manifest.subject.as_ref().map(|s| s.digest.as_str()),
        Some(image_digest.as_str())
    );

    // The client's referrers call (GET /v2/rust/app/referrers/<digest>).
    let all = rt
        .block_on(chunked.pull_referrers(&by_image_digest, None))
        .expect("pull_referrers");
    assert_eq!(all.manifests.len(), 1, "referrers: {all:?}");
    let r = &all.manifests[0];
    assert_eq!(r.digest, art_digest);
    assert_eq!(r.size, art_body.len() as i64);
    assert_eq!(r.media_type, OCI_IMAGE_MEDIA_TYPE);
    assert_eq!(r.artifact_type.as_deref(), Some(ARTIFACT_TYPE));
    let ra = r.annotations.as_ref().expect("annotations copied");
    assert_eq!(
        ra.get("org.example.berth").map(String::as_str),
        Some("rust")
    );
    let filtered = rt
        .block_on(chunked.pull_referrers(&by_image_digest, Some(ARTIFACT_TYPE)))
        .expect("pull_referrers filtered");
    assert_eq!(filtered.manifests.len(), 1);
    let none = rt
        .block_on(chunked.pull_referrers(&by_image_digest, Some(OTHER_ARTIFACT_TYPE)))
        .expect("pull_referrers other type");
    assert!(none.manifests.is_empty(), "{none:?}");
    // A digest nobody refers to: an empty index, never a 404.
    let unknown = Reference::with_digest(
        image.resolve_registry().to_string(),
        "rust/app".to_string(),
        digest(b"nothing refers to this"),
    );
    let empty_idx = rt
        .block_on(chunked.pull_referrers(&unknown, None))
        .expect("pull_referrers unknown subject");
    assert!(empty_idx.manifests.is_empty());

    // ------------------------------------------------------------ index
    let index = OciImageIndex {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()),
        manifests: vec![ImageIndexEntry {
            media_type: OCI_IMAGE_MEDIA_TYPE.to_string(),
            digest: image_digest.clone(),
            size: manifest_bytes.len() as i64,
            platform: Some(
                serde_json::from_value::<Platform>(
                    serde_json::json!({"architecture": "amd64", "os": "linux"}),
                )
                .unwrap(),
            ),
            annotations: None,
            artifact_type: None,
        }],
        artifact_type: None,
        annotations: None,
    };
    let list_ref: Reference = format!("{host}/rust/app:list").parse().unwrap();
    rt.block_on(chunked.push_manifest_list(&list_ref, &anon, index.clone()))
        .expect("push_manifest_list");
    let (st, list_bytes, ct, _) = raw_manifest(&base, "rust/app", "list");
    assert_eq!(st, 200);
    assert_eq!(ct, OCI_IMAGE_INDEX_MEDIA_TYPE);
    let (m, list_digest) = rt
        .block_on(chunked.pull_manifest(&list_ref, &anon))
        .expect("pull_manifest index");
    assert_eq!(list_digest, digest(&list_bytes));
    assert_eq!(json(&m), json(&OciManifest::ImageIndex(index)));
    // pull through the index resolves linux/amd64 to the image
    let via_index = rt
        .block_on(chunked.pull(
            &list_ref,
            &anon,
            vec![IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE],
        ))
        .expect("pull via index");
    assert!(has_layer(&via_index.layers, &small));
    assert!(has_layer(&via_index.layers, &big));

    drop(srv);
    let warned = warnings.load(Ordering::SeqCst);
    assert_eq!(
        warned,
        0,
        "oci-client logged warnings (spec violations it worked around): {:?}",
        warning_text.lock().unwrap()
    );
}

/// Token mode, `mount_blob(dst, src, digest)`. oci-client computes the scope
/// it asks for from the operation (`repository:<dst>:pull,push`), so with
/// its own token Berth cannot see a right to read the source and answers
/// with an upload session (202), which the client reports as an error and
/// which mounts nothing. The mount's challenge names the source as well; a
/// token for exactly what it names lets the same client call mount (201).
#[test]
fn oci_client_mounts_across_repositories_in_token_mode() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (p, _dir) = authkit::token_server("", &[]);
    let base = p.url.clone();
    let host = base.strip_prefix("http://").expect("http url").to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let creds = RegistryAuth::Basic("admin".into(), authkit::ADMIN_PW.into());
    let http = authkit::client();

    let layer = bytes(0x5eed_0100, 300_000);
    let layers = vec![ImageLayer::new(
        layer.clone(),
        IMAGE_LAYER_GZIP_MEDIA_TYPE.to_string(),
        None,
    )];
    let config = Config::new(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
        IMAGE_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let src: Reference = format!("{host}/rust/src:1").parse().unwrap();
    let dst: Reference = format!("{host}/rust/dst:1").parse().unwrap();
    rt.block_on(oci(true).push(&src, &layers, config, &creds, None))
        .expect("oci-client push with a password in token mode");
    let d = digest(&layer);
    let admin = authkit::basic("admin", authkit::ADMIN_PW);
    let blob_in_dst = |cred: &authkit::Cred| {
        let r = authkit::send(
            &http,
            reqwest::Method::GET,
            &format!("{base}/v2/rust/dst/blobs/{d}"),
            cred,
        )
        .send()
        .unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    };

    // The client's own exchange: a token for the destination only.
    let own = oci(true);
    rt.block_on(own.auth(&dst, &creds, RegistryOperation::Push))
        .expect("token for the destination");
    let err = rt
        .block_on(own.mount_blob(&dst, &src, &d))
        .expect_err("without pull on the source the mount must not happen");
    assert!(
        err.to_string().contains("202"),
        "expected the upload-session answer (202), got: {err}"
    );
    assert_eq!(
        blob_in_dst(&admin).0,
        404,
        "a refused mount links nothing into the destination"
    );

    // A challenge-following client: the mount's challenge names both scopes.
    let r = http
        .post(format!(
            "{base}/v2/rust/dst/blobs/uploads/?mount={d}&from=rust/src"
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let scope = challenge
        .split("scope=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no scope in the mount challenge: {challenge}"));
    let scopes: Vec<&str> = scope.split(' ').collect();
    for want in ["repository:rust/dst:pull,push", "repository:rust/src:pull"] {
        assert!(
            scopes.contains(&want),
            "challenge lacks {want}: {challenge}"
        );
    }
    let (st, tok) = authkit::get_token(&http, &base, &admin, &scopes);
    assert_eq!(st, 200, "token for the challenged scopes: {tok}");
    let token = tok["token"].as_str().expect("token").to_string();

    let follower = oci(true);
    rt.block_on(follower.auth(
        &dst,
        &RegistryAuth::Bearer(token.clone()),
        RegistryOperation::Push,
    ))
    .expect("a given bearer token is used as is");
    rt.block_on(follower.mount_blob(&dst, &src, &d))
        .expect("mount with push on the destination and pull on the source (201)");
    let (st, body) = blob_in_dst(&authkit::Cred::Bearer(token));
    assert_eq!(st, 200, "the mounted blob is readable in the destination");
    assert_eq!(body, layer, "the mounted blob is the source's bytes");
}
