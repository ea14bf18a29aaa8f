//! A lean OCI client: one HTTP/1.1 connection per worker (hyper's
//! connection-level client, so "32 connections" means exactly 32 sockets),
//! `Location` and `Link` resolution, and checks on every status and digest.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use http::header::{HeaderMap, CONTENT_LENGTH, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest as _, Sha256};

/// Request bodies: whole buffers or streams of shared slices.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Media type of the image manifests the benchmark pushes.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A blob the benchmark pushes: its bytes as a list of shared slices (so a
/// 256 MiB blob costs no copy per push) and its digest.
#[derive(Clone)]
pub struct Blob {
    pub parts: Vec<Bytes>,
    pub len: u64,
    pub digest: String,
}

impl Blob {
    /// A small blob held in one buffer.
    pub fn small(bytes: Bytes) -> Blob {
        Blob {
            len: bytes.len() as u64,
            digest: sha256_digest(&bytes),
            parts: vec![bytes],
        }
    }

    /// The slices covering `start..end`.
    pub fn range(&self, start: u64, end: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut off = 0u64;
        for p in &self.parts {
            let (a, b) = (off, off + p.len() as u64);
            off = b;
            if b <= start || a >= end {
                continue;
            }
            let s = start.max(a) - a;
            let e = end.min(b) - a;
            out.push(p.slice(s as usize..e as usize));
        }
        out
    }
}

/// A body streaming the given slices, one frame each.
pub fn stream_body(parts: Vec<Bytes>) -> Body {
    let s = futures::stream::iter(parts.into_iter().map(|b| Ok(Frame::data(b))));
    BodyExt::boxed_unsync(StreamBody::new(s))
}

pub fn full_body(b: impl Into<Bytes>) -> Body {
    BodyExt::boxed_unsync(Full::new(b.into()))
}

pub fn empty_body() -> Body {
    BodyExt::boxed_unsync(Empty::new())
}

/// A response whose body has been read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Fails unless the status is `want`, quoting the request and body.
    pub fn expect(self, want: StatusCode, what: &str) -> Result<Reply> {
        if self.status != want {
            bail!(
                "{what}: expected {want}, got {} ({})",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(400)])
            );
        }
        Ok(self)
    }

    /// The `Location` header resolved to a request target.
    pub fn location(&self, c: &Client, current: &str) -> Result<String> {
        let loc = self
            .header("location")
            .context("response has no Location")?;
        c.resolve(current, loc)
    }
}

/// One HTTP/1.1 connection to one registry, reopened if the server closes it.
pub struct Client {
    addr: SocketAddr,
    authority: String,
    sender: Option<SendRequest<Body>>,
}

impl Client {
    /// `base` is `http://HOST:PORT` on loopback.
    pub fn new(base: &str) -> Result<Client> {
        let authority = base
            .strip_prefix("http://")
            .context("only http:// URLs")?
            .trim_end_matches('/')
            .to_string();
        let addr: SocketAddr = authority
            .parse()
            .with_context(|| format!("{authority} is not IP:PORT"))?;
        ensure!(addr.ip().is_loopback(), "benchmark targets loopback only");
        Ok(Client {
            addr,
            authority,
            sender: None,
        })
    }

    async fn ready(&mut self) -> Result<&mut SendRequest<Body>> {
        let alive = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !alive {
            let tcp = tokio::net::TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connecting to {}", self.addr))?;
            tcp.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected"))
    }

    /// Sends a request; the caller reads (or drops) the body.
    pub async fn send(
        &mut self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Body,
        len: Option<u64>,
    ) -> Result<http::Response<Incoming>> {
        let mut b = Request::builder()
            .method(method.clone())
            .uri(target)
            .header(HOST, &self.authority);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(l) = len {
            b = b.header(CONTENT_LENGTH, l);
        } else if method == Method::POST || method == Method::PUT || method == Method::PATCH {
            b = b.header(CONTENT_LENGTH, 0);
        }
        let req = b.body(body)?;
        let sender = self.ready().await?;
        sender
            .send_request(req)
            .await
            .with_context(|| format!("{method} {target}"))
    }

    /// Sends a request and reads the whole response.
    pub async fn call(
        &mut self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Body,
        len: Option<u64>,
    ) -> Result<Reply> {
        let resp = self
            .send(method.clone(), target, headers, body, len)
            .await?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .with_context(|| format!("reading the body of {method} {target}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&mut self, target: &str) -> Result<Reply> {
        self.call(Method::GET, target, &[], empty_body(), None)
            .await
    }

    /// Resolves a `Location` or `Link` target, relative or absolute, to a
    /// request target on this connection's server.
    pub fn resolve(&self, current: &str, loc: &str) -> Result<String> {
        resolve(&self.authority, current, loc)
    }

    /// Starts an upload session; returns its target.
    pub async fn start_upload(&mut self, repo: &str) -> Result<String> {
        let t = format!("/v2/{repo}/blobs/uploads/");
        let r = self
            .call(Method::POST, &t, &[], empty_body(), Some(0))
            .await?
            .expect(StatusCode::ACCEPTED, "POST upload")?;
        r.location(self, &t)
    }

    /// Monolithic push: POST, then one PUT with the whole body. Checks the
    /// 201, its `Location` and `Docker-Content-Digest`.
    pub async fn push_blob(&mut self, repo: &str, blob: &Blob) -> Result<()> {
        let loc = self.start_upload(repo).await?;
        let put = with_digest(&loc, &blob.digest);
        let r = self
            .call(
                Method::PUT,
                &put,
                &[("content-type", "application/octet-stream")],
                stream_body(blob.parts.clone()),
                Some(blob.len),
            )
            .await?
            .expect(StatusCode::CREATED, "PUT blob")?;
        check_blob_created(&r, blob)
    }

    /// Chunked push: POST, PATCH `chunk` bytes at a time with
    /// `Content-Range`, following each `Location`, then PUT `?digest=`.
    pub async fn push_blob_chunked(&mut self, repo: &str, blob: &Blob, chunk: u64) -> Result<()> {
        let mut loc = self.start_upload(repo).await?;
        let mut off = 0;
        while off < blob.len {
            let end = (off + chunk).min(blob.len);
            let range = format!("{off}-{}", end - 1);
            let r = self
                .call(
                    Method::PATCH,
                    &loc,
                    &[
                        ("content-type", "application/octet-stream"),
                        ("content-range", &range),
                    ],
                    stream_body(blob.range(off, end)),
                    Some(end - off),
                )
                .await?
                .expect(StatusCode::ACCEPTED, "PATCH chunk")?;
            let want = format!("0-{}", end - 1);
            ensure!(
                r.header("range") == Some(want.as_str()),
                "PATCH answered Range {:?}, expected {want}",
                r.header("range")
            );
            loc = r.location(self, &loc)?;
            off = end;
        }
        let put = with_digest(&loc, &blob.digest);
        let r = self
            .call(Method::PUT, &put, &[], empty_body(), Some(0))
            .await?
            .expect(StatusCode::CREATED, "PUT closing chunked upload")?;
        check_blob_created(&r, blob)
    }

    /// HEAD a blob: whether the repository has it (as clients check before
    /// uploading).
    pub async fn blob_exists(&mut self, repo: &str, digest: &str) -> Result<bool> {
        let t = format!("/v2/{repo}/blobs/{digest}");
        let r = self.call(Method::HEAD, &t, &[], empty_body(), None).await?;
        match r.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => bail!("HEAD {t}: unexpected {s}"),
        }
    }

    /// Cross-repository mount; false when the registry opened a session
    /// instead (the session is cancelled).
    pub async fn mount(&mut self, repo: &str, digest: &str, from: &str) -> Result<bool> {
        let t = format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
        let r = self
            .call(Method::POST, &t, &[], empty_body(), Some(0))
            .await?;
        match r.status {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                let loc = r.location(self, &t)?;
                let _ = self
                    .call(Method::DELETE, &loc, &[], empty_body(), None)
                    .await?;
                Ok(false)
            }
            s => bail!("mount {t}: unexpected {s}"),
        }
    }

    /// PUT a manifest by tag or digest; checks 201 and the digest.
    pub async fn put_manifest(&mut self, repo: &str, reference: &str, bytes: &Bytes) -> Result<()> {
        let t = format!("/v2/{repo}/manifests/{reference}");
        let r = self
            .call(
                Method::PUT,
                &t,
                &[("content-type", OCI_MANIFEST)],
                full_body(bytes.clone()),
                Some(bytes.len() as u64),
            )
            .await?
            .expect(StatusCode::CREATED, "PUT manifest")?;
        let want = sha256_digest(bytes);
        ensure!(
            r.header("docker-content-digest") == Some(want.as_str()),
            "manifest PUT answered digest {:?}, expected {want}",
            r.header("docker-content-digest")
        );
        ensure!(
            r.header("location").is_some(),
            "manifest PUT without Location"
        );
        Ok(())
    }

    /// GET a manifest; checks 200 and that the body hashes to `digest`.
    pub async fn get_manifest(&mut self, repo: &str, reference: &str, digest: &str) -> Result<()> {
        let t = format!("/v2/{repo}/manifests/{reference}");
        let r = self
            .call(
                Method::GET,
                &t,
                &[("accept", ACCEPT_MANIFESTS)],
                empty_body(),
                None,
            )
            .await?
            .expect(StatusCode::OK, "GET manifest")?;
        let got = sha256_digest(&r.body);
        ensure!(
            got == digest,
            "manifest body hashes to {got}, expected {digest}"
        );
        if let Some(h) = r.header("docker-content-digest") {
            ensure!(
                h == digest,
                "manifest Docker-Content-Digest {h}, expected {digest}"
            );
        }
        Ok(())
    }

    /// GET a blob, streaming and hashing it; checks status, length and digest.
    pub async fn pull_blob(&mut self, repo: &str, blob: &Blob) -> Result<u64> {
        let t = format!("/v2/{repo}/blobs/{}", blob.digest);
        let resp = self.send(Method::GET, &t, &[], empty_body(), None).await?;
        let status = resp.status();
        if status != StatusCode::OK {
            let body = resp.into_body().collect().await?.to_bytes();
            bail!("GET {t}: {status} ({})", String::from_utf8_lossy(&body));
        }
        if let Some(h) = resp.headers().get("docker-content-digest") {
            ensure!(
                h.as_bytes() == blob.digest.as_bytes(),
                "pull: wrong Docker-Content-Digest"
            );
        }
        let mut h = Sha256::new();
        let mut n = 0u64;
        let mut frames = BodyStream::new(resp.into_body());
        while let Some(f) = frames.next().await {
            if let Ok(d) = f?.into_data() {
                h.update(&d);
                n += d.len() as u64;
            }
        }
        ensure!(
            n == blob.len,
            "pull of {t}: {n} bytes, expected {}",
            blob.len
        );
        let got = format!("sha256:{}", hex::encode(h.finalize()));
        ensure!(got == blob.digest, "pull of {t}: bytes hash to {got}");
        Ok(n)
    }

    /// Walks a paginated list (`_catalog` or tags) from `first`, following
    /// `Link: <...>; rel="next"`; returns every entry of `field` and the
    /// number of pages.
    pub async fn walk_list(&mut self, first: &str, field: &str) -> Result<(Vec<String>, usize)> {
        let mut out = Vec::new();
        let mut next = Some(first.to_string());
        let mut pages = 0;
        while let Some(t) = next.take() {
            let r = self.get(&t).await?.expect(StatusCode::OK, "GET list")?;
            pages += 1;
            ensure!(pages <= 100_000, "list {first} does not end");
            let v: serde_json::Value =
                serde_json::from_slice(&r.body).with_context(|| format!("{t} is not JSON"))?;
            if let Some(items) = v.get(field).and_then(|a| a.as_array()) {
                out.extend(items.iter().filter_map(|s| s.as_str().map(String::from)));
            }
            if let Some(link) = r.header("link") {
                let target = parse_next_link(link)
                    .with_context(|| format!("unreadable Link header {link:?}"))?;
                next = Some(self.resolve(&t, &target)?);
            }
        }
        Ok((out, pages))
    }
}

fn check_blob_created(r: &Reply, blob: &Blob) -> Result<()> {
    ensure!(
        r.header("docker-content-digest") == Some(blob.digest.as_str()),
        "blob PUT answered digest {:?}, expected {}",
        r.header("docker-content-digest"),
        blob.digest
    );
    ensure!(r.header("location").is_some(), "blob PUT without Location");
    Ok(())
}

/// Appends `digest=` to an upload location, which may carry a query already
/// (distribution's `_state`).
pub fn with_digest(loc: &str, digest: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={digest}")
}

/// The target of `rel="next"` in a `Link` header.
pub fn parse_next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let part = part.trim();
        let (url, params) = part.strip_prefix('<')?.split_once('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| url.to_string())
    })
}

/// Resolves an absolute (`http://host/...`), absolute-path (`/v2/...`) or
/// relative reference against the request target `current`.
pub fn resolve(authority: &str, current: &str, loc: &str) -> Result<String> {
    if let Some(rest) = loc
        .strip_prefix("http://")
        .or_else(|| loc.strip_prefix("https://"))
    {
        let cut = rest.find('/').unwrap_or(rest.len());
        let (auth, path) = rest.split_at(cut);
        ensure!(
            auth.eq_ignore_ascii_case(authority),
            "server sent us to {auth}, not {authority}"
        );
        return Ok(if path.is_empty() {
            "/".into()
        } else {
            path.into()
        });
    }
    if loc.starts_with('/') {
        return Ok(loc.to_string());
    }
    let base = current.split('?').next().unwrap_or("/");
    let dir = &base[..base.rfind('/').map(|i| i + 1).unwrap_or(0)];
    Ok(format!("{dir}{loc}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_relative_and_absolute() {
        let a = "127.0.0.1:5000";
        assert_eq!(
            resolve(
                a,
                "/v2/x/blobs/uploads/",
                "http://127.0.0.1:5000/v2/x/blobs/uploads/u?_state=s"
            )
            .unwrap(),
            "/v2/x/blobs/uploads/u?_state=s"
        );
        assert_eq!(
            resolve(a, "/v2/x/blobs/uploads/", "/v2/x/blobs/uploads/u").unwrap(),
            "/v2/x/blobs/uploads/u"
        );
        assert_eq!(
            resolve(a, "/v2/x/blobs/uploads/?a=b", "u1").unwrap(),
            "/v2/x/blobs/uploads/u1"
        );
        assert!(resolve(a, "/", "http://10.0.0.1/v2/").is_err());
    }

    #[test]
    fn next_links_are_found() {
        assert_eq!(
            parse_next_link("</v2/_catalog?n=2&last=b>; rel=\"next\"").as_deref(),
            Some("/v2/_catalog?n=2&last=b")
        );
        assert_eq!(
            parse_next_link("<http://h/v2/x/tags/list?last=t>; rel=next").as_deref(),
            Some("http://h/v2/x/tags/list?last=t")
        );
        assert_eq!(parse_next_link("</a>; rel=\"prev\""), None);
    }

    #[test]
    fn digest_goes_after_an_existing_query() {
        assert_eq!(
            with_digest("/u?_state=x", "sha256:ab"),
            "/u?_state=x&digest=sha256:ab"
        );
        assert_eq!(with_digest("/u", "sha256:ab"), "/u?digest=sha256:ab");
    }

    #[test]
    fn blob_ranges_cover_the_parts() {
        let b = Blob {
            parts: vec![Bytes::from_static(b"abcd"), Bytes::from_static(b"efg")],
            len: 7,
            digest: String::new(),
        };
        let r: Vec<u8> = b.range(2, 6).concat();
        assert_eq!(r, b"cdef");
    }
}
