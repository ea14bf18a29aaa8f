//! HTTPS with rustls (ring provider). The certificate and key are PEM
//! files; [`Tls::reload`] reads them again (the binary calls it on SIGHUP),
//! and new connections get the new certificate while existing ones keep
//! theirs. A reload that fails keeps the old certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A certificate that can be swapped while serving.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

#[derive(Debug)]
struct Current {
    // Why a RwLock: read on every handshake, written on reload (SIGHUP).
    key: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.read().expect("certificate lock poisoned").clone())
    }
}

fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("reading certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("parsing certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("reading private key {}: {e}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("unsupported private key {}: {e}", key.display()))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| format!("{} does not match {}: {e}", key.display(), cert.display()))?;
    Ok(Arc::new(ck))
}

impl Tls {
    /// Loads the certificate chain and key.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Arc<Tls>, String> {
        let (cert, key) = (cert.into(), key.into());
        let current = Arc::new(Current {
            key: RwLock::new(load(&cert, &key)?),
        });
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Tls {
            cert,
            key,
            current,
            acceptor: TlsAcceptor::from(Arc::new(cfg)),
        }))
    }

    /// Reads the files again; on failure the old certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let ck = load(&self.cert, &self.key)?;
        *self.current.key.write().expect("certificate lock poisoned") = ck;
        Ok(())
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }
}
