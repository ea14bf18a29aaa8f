//! HTTPS, black-box: certificate reload on SIGHUP, and skopeo pushing over
//! HTTPS with credentials.

mod common;

use common::auth::*;
use serde_json::json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "berth test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    /// Writes a leaf for localhost and 127.0.0.1; returns its DER.
    fn leaf(&self, cn: &str, cert: &Path, key: &Path) -> Vec<u8> {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let leaf = params.signed_by(&leaf_key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(cert, leaf.pem()).unwrap();
        std::fs::write(key, leaf_key.serialize_pem()).unwrap();
        leaf.der().to_vec()
    }
}

/// One HTTPS GET with a client that trusts only the test CA; returns the
/// status line and the server certificate.
fn https_get(addr: &str, ca: &[u8], path: &str) -> (String, Vec<u8>) {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca.to_vec()))
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let cert = tls.conn.peer_certificates().unwrap()[0].to_vec();
    (text.lines().next().unwrap_or("").to_string(), cert)
}

#[test]
fn https_with_certificate_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let first = pki.leaf("first", &cert, &key);
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        "",
        &[],
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let addr = p
        .url
        .strip_prefix("https://")
        .expect("https URL")
        .to_string();
    let (status, got) = https_get(&addr, pki.ca.der(), "/v2/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(got, first);
    // Plain HTTP on the TLS port does not get an answer.
    let plain = common::client().get(format!("http://{addr}/v2/")).send();
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));

    // New files + SIGHUP: new connections get the new certificate.
    let second = pki.leaf("second", &cert, &key);
    assert_ne!(first, second);
    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    };
    hup(p.child.id());
    let (status, got) = https_get(&addr, pki.ca.der(), "/healthz");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(got, second);
    // A broken file is refused and the old certificate stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    hup(p.child.id());
    let (status, got) = https_get(&addr, pki.ca.der(), "/healthz");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(got, second);
}

/// Writes a one-layer OCI image layout and returns its directory.
fn oci_layout(dir: &Path) -> PathBuf {
    let root = dir.join("layout");
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| -> (String, usize) {
        let d = common::digest(b);
        std::fs::write(blobs.join(d.strip_prefix("sha256:").unwrap()), b).unwrap();
        (d, b.len())
    };
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (cd, cl) = put(config);
    let (ld, ll) = put(b"not really a tarball, but skopeo does not look");
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MT,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cl},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ll}],
    })
    .to_string();
    let (md, ml) = put(manifest.as_bytes());
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        root.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{"mediaType": MT, "digest": md, "size": ml, "annotations": {"org.opencontainers.image.ref.name": "1"}}]}).to_string(),
    )
    .unwrap();
    root
}

#[test]
fn skopeo_pushes_over_https_with_credentials() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        // scripts/test.sh installs skopeo before the tests.
        skip!("skopeo is not installed (scripts/test.sh installs it before cargo test)");
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    pki.leaf("registry", &cert, &key);
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), pki.ca.pem()).unwrap();
    user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        &token_config(""),
        &[],
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let host = p
        .url
        .strip_prefix("https://")
        .unwrap()
        .replace("127.0.0.1", "localhost");
    let layout = oci_layout(dir.path());
    let skopeo = |args: &[&str]| {
        let out = Command::new("skopeo")
            .args(["--registries.d", dir.path().to_str().unwrap()])
            .args(args)
            .env("REGISTRY_AUTH_FILE", dir.path().join("auth.json"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let dest = format!("docker://{host}/team/app:1");
    let cert_dir = certs.to_str().unwrap();
    // Without credentials: refused.
    let (ok, _) = skopeo(&[
        "copy",
        "--dest-cert-dir",
        cert_dir,
        &format!("oci:{}:1", layout.display()),
        &dest,
    ]);
    assert!(!ok, "anonymous push succeeded");
    // With credentials, over HTTPS verified against the test CA.
    let creds = format!("admin:{ADMIN_PW}");
    let (ok, err) = skopeo(&[
        "copy",
        "--dest-cert-dir",
        cert_dir,
        "--dest-creds",
        &creds,
        &format!("oci:{}:1", layout.display()),
        &dest,
    ]);
    assert!(ok, "skopeo push: {err}");
    let out_dir = dir.path().join("pulled");
    let (ok, err) = skopeo(&[
        "copy",
        "--src-cert-dir",
        cert_dir,
        "--src-creds",
        &creds,
        &dest,
        &format!("oci:{}:1", out_dir.display()),
    ]);
    assert!(ok, "skopeo pull: {err}");
    let (ok, _) = skopeo(&["inspect", "--cert-dir", cert_dir, "--raw", &dest]);
    assert!(!ok, "anonymous read of a private namespace succeeded");
}
