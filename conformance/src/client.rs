//! HTTP plumbing: the shared context, requests, responses and assertions on
//! them. Every failure message names the request and the response it got.

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::blocking::{Body, Client};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::Outcome;

/// Error codes defined by distribution-spec v1.1.
pub const SPEC_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Percent-encodes a query-string value (everything but unreserved characters).
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends `key=value` (already encoded) to a URL or path that may already
/// have a query string.
pub fn with_query(url: &str, kv: &str) -> String {
    if url.contains('?') {
        format!("{url}&{kv}")
    } else {
        format!("{url}?{kv}")
    }
}

/// The path of a URL or of a `Location` value, without scheme, authority and
/// query string.
pub fn path_of(loc: &str) -> String {
    let rest = match loc.find("://") {
        Some(i) => {
            let after = &loc[i + 3..];
            match after.find('/') {
                Some(j) => &after[j..],
                None => "/",
            }
        }
        None => loc,
    };
    rest.split(['?', '#']).next().unwrap_or("").to_string()
}

/// The value of a query parameter in a URL or path, undecoded.
pub fn query_param(url: &str, key: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| v.to_string())
    })
}

/// What a request carries as its body.
pub enum Payload {
    /// No body.
    None,
    /// A buffered body, sent with `Content-Length`.
    Bytes(Vec<u8>),
    /// A streamed body of unknown length, sent with
    /// `Transfer-Encoding: chunked` and no `Content-Length`.
    Chunked(Vec<u8>),
}

/// Shared state of a run: HTTP client, base URL and the run's unique names.
pub struct Ctx {
    client: Client,
    base: String,
    /// Replicas of one registry: each request goes to the next one, so
    /// that every workflow crosses them (empty: everything to `base`).
    spread: Vec<String>,
    /// Which replica the next request goes to. Why an atomic: `send`
    /// takes `&self`.
    turn: std::sync::atomic::AtomicUsize,
    run_id: String,
    /// `Authorization` header value sent with every request, if any.
    authorization: Option<String>,
}

impl Ctx {
    /// A context for the registry at `base_url`.
    pub fn new(base_url: &str) -> Ctx {
        // reqwest is built with rustls and no built-in crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("building the HTTP client");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let local = 0u8;
        let seed = format!("{nanos}-{}-{:p}", std::process::id(), &local);
        let run_id = hex::encode(Sha256::digest(seed.as_bytes()))[..12].to_string();
        Ctx {
            client,
            base: base_url.trim_end_matches('/').to_string(),
            spread: Vec::new(),
            turn: std::sync::atomic::AtomicUsize::new(0),
            run_id,
            authorization: None,
        }
    }

    /// A context for a registry served by several replicas at `bases`:
    /// request after request goes to the next replica, `Location` URLs
    /// included, so an upload started on one continues on the others.
    pub fn spread(bases: &[String]) -> Ctx {
        let mut ctx = Ctx::new(bases.first().expect("at least one replica"));
        ctx.spread = bases
            .iter()
            .map(|b| b.trim_end_matches('/').to_string())
            .collect();
        ctx
    }

    /// The base URL of the next request.
    fn next_base(&self) -> &str {
        if self.spread.is_empty() {
            return &self.base;
        }
        let i = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.spread[i % self.spread.len()]
    }

    /// Sends `Authorization: <value>` with every request (a registry with
    /// authentication on, e.g. `Basic <base64 user:password>`).
    pub fn with_authorization(mut self, value: &str) -> Ctx {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("a valid header value"),
        );
        self.client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .default_headers(headers)
            .build()
            .expect("building the HTTP client");
        self.authorization = Some(value.to_string());
        self
    }

    /// The run's unique id (lowercase hex).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// `conformance/<run-id>/<name>`.
    pub fn repo(&self, name: &str) -> String {
        format!("conformance/{}/{}", self.run_id, name)
    }

    /// The prefix of every repository of this run, `conformance/<run-id>`.
    pub fn repo_prefix(&self) -> String {
        format!("conformance/{}", self.run_id)
    }

    /// Deterministic pseudo-random bytes of length `len`, unique to this run
    /// and `label`.
    pub fn data(&self, label: &str, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 32);
        let mut block = Sha256::digest(format!("{}/{label}", self.run_id).as_bytes());
        while out.len() < len {
            out.extend_from_slice(&block);
            block = Sha256::digest(block);
        }
        out.truncate(len);
        out
    }

    /// Resolves a path (`/v2/...`), a full URL or a `Location` value against
    /// the base URL.
    pub fn resolve(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            // A replica's own URL goes to the next replica instead.
            match self.spread.iter().find(|b| target.starts_with(b.as_str())) {
                Some(b) => format!("{}{}", self.next_base(), &target[b.len()..]),
                None => target.to_string(),
            }
        } else if target.starts_with('/') {
            format!("{}{}", self.next_base(), target)
        } else {
            format!("{}/{}", self.next_base(), target)
        }
    }

    /// Sends a request and reads the whole answer.
    pub fn send(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        payload: Payload,
    ) -> Outcome<Resp> {
        let url = self.resolve(target);
        let mut rb = self.client.request(method.clone(), &url);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let body_note = match &payload {
            Payload::None => String::new(),
            Payload::Bytes(b) => format!(" [{} body bytes]", b.len()),
            Payload::Chunked(b) => format!(" [{} body bytes, chunked]", b.len()),
        };
        rb = match payload {
            Payload::None => rb,
            Payload::Bytes(b) => rb.body(b),
            Payload::Chunked(b) => rb.body(Body::new(Cursor::new(b))),
        };
        let hdrs: String = headers.iter().map(|(k, v)| format!(" {k}: {v};")).collect();
        let req = format!(
            "{method} {}{hdrs}{body_note}",
            shorten(&url_tail(&url), 300)
        );
        let resp = rb
            .send()
            .map_err(|e| format!("{req} -> transport error: {}", error_chain(&e)))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .map_err(|e| {
                format!(
                    "{req} -> {status}, reading body failed: {}",
                    error_chain(&e)
                )
            })?
            .to_vec();
        Ok(Resp {
            req,
            status,
            headers,
            body,
            head: method == Method::HEAD,
        })
    }

    /// GET with an `Accept` header listing every manifest media type.
    pub fn get(&self, target: &str) -> Outcome<Resp> {
        self.send(
            Method::GET,
            target,
            &[("Accept", ACCEPT_ALL)],
            Payload::None,
        )
    }

    /// HEAD with an `Accept` header listing every manifest media type.
    pub fn head(&self, target: &str) -> Outcome<Resp> {
        self.send(
            Method::HEAD,
            target,
            &[("Accept", ACCEPT_ALL)],
            Payload::None,
        )
    }

    /// DELETE without a body.
    pub fn delete(&self, target: &str) -> Outcome<Resp> {
        self.send(Method::DELETE, target, &[], Payload::None)
    }

    /// Sends a request over a raw TCP connection, with the request target
    /// exactly as given (no URL normalisation: `..` and `%2e` survive).
    pub fn raw(&self, method: &str, target: &str) -> Outcome<Resp> {
        let req = format!("{method} {} (raw)", shorten(target, 300));
        let url = reqwest::Url::parse(&self.base).map_err(|e| format!("bad base URL: {e}"))?;
        let host = url.host_str().ok_or("base URL without host")?.to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let io = |e: std::io::Error| format!("{req} -> I/O error: {e}");
        let mut s = TcpStream::connect((host.as_str(), port)).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(io)?;
        s.set_write_timeout(Some(Duration::from_secs(60)))
            .map_err(io)?;
        let auth = self
            .authorization
            .as_ref()
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(io)?;
        let split =
            find(&raw, b"\r\n\r\n").ok_or_else(|| format!("{req} -> malformed response"))?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{req} -> bad status line {status_line:?}"))?;
        let mut headers = HeaderMap::new();
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.trim().as_bytes()),
                    HeaderValue::from_str(v.trim()),
                ) {
                    headers.append(k, v);
                }
            }
        }
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            body = dechunk(&body);
        } else if let Some(n) = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
        {
            body.truncate(n);
        }
        Ok(Resp {
            req,
            status,
            headers,
            body,
            head: method == "HEAD",
        })
    }
}

/// `Accept` value naming every manifest type the suite pushes.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.conformance.custom.manifest.v1+json, */*";

fn url_tail(url: &str) -> String {
    let p = path_of(url);
    match url.split_once('?') {
        Some((_, q)) => format!("{p}?{q}"),
        None => p,
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_string()
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...({} bytes)", &s[..end], s.len())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = find(b, b"\r\n") {
        let size_str = String::from_utf8_lossy(&b[..i]);
        let size =
            usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[(i + 4 + size).min(b.len())..];
    }
    out
}

/// A complete HTTP answer plus a description of the request that produced it.
pub struct Resp {
    /// `METHOD /path?query` and the headers sent, for failure messages.
    pub req: String,
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body (empty for HEAD).
    pub body: Vec<u8>,
    head: bool,
}

impl Resp {
    /// `request -> status body-snippet`, for failure messages.
    pub fn show(&self) -> String {
        let body = if self.body.is_empty() {
            String::from("(empty body)")
        } else {
            shorten(&String::from_utf8_lossy(&self.body), 300)
        };
        let interesting = [
            "location",
            "range",
            "content-range",
            "content-type",
            "content-length",
            "docker-content-digest",
            "oci-subject",
            "oci-filters-applied",
            "link",
        ];
        let hdrs: String = interesting
            .iter()
            .filter_map(|h| self.hdr(h).map(|v| format!(" {h}: {v};")))
            .collect();
        format!("{} -> {}{hdrs} {body}", self.req, self.status)
    }

    /// Fails unless the status is `want`.
    pub fn expect(&self, want: u16) -> Outcome<&Resp> {
        if self.status == want {
            Ok(self)
        } else {
            Err(format!("expected {want}: {}", self.show()))
        }
    }

    /// A header's value as a string, if present and valid text.
    pub fn hdr(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A header's value; fails when it is missing.
    pub fn need(&self, name: &str) -> Outcome<String> {
        self.hdr(name)
            .map(str::to_string)
            .ok_or_else(|| format!("missing header {name}: {}", self.show()))
    }

    /// Fails unless header `name` is exactly `want`.
    pub fn hdr_eq(&self, name: &str, want: &str) -> Outcome {
        let got = self.need(name)?;
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "header {name} is {got:?}, want {want:?}: {}",
                self.show()
            ))
        }
    }

    /// Fails unless the media type of `Content-Type` (ignoring parameters) is
    /// `want`.
    pub fn content_type_is(&self, want: &str) -> Outcome {
        let got = self.need("content-type")?;
        let mt = got.split(';').next().unwrap_or("").trim();
        if mt.eq_ignore_ascii_case(want) {
            Ok(())
        } else {
            Err(format!(
                "Content-Type is {got:?}, want {want:?}: {}",
                self.show()
            ))
        }
    }

    /// Fails unless `Content-Length` is `len`.
    pub fn content_length_is(&self, len: usize) -> Outcome {
        self.hdr_eq("content-length", &len.to_string())
    }

    /// Fails unless the body is exactly `want`.
    pub fn body_is(&self, want: &[u8]) -> Outcome {
        if self.body == want {
            Ok(())
        } else {
            Err(format!(
                "body differs from what was pushed ({} bytes, digest {}; want {} bytes, digest {}): {}",
                self.body.len(),
                digest(&self.body),
                want.len(),
                digest(want),
                self.show()
            ))
        }
    }

    /// Fails unless the path of the `Location` header is `want`.
    pub fn location_is(&self, want: &str) -> Outcome {
        let loc = self.need("location")?;
        if path_of(&loc) == want {
            Ok(())
        } else {
            Err(format!(
                "Location {loc:?}, want path {want:?}: {}",
                self.show()
            ))
        }
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Outcome<Value> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("body is not JSON ({e}): {}", self.show()))
    }

    /// Checks that the body is a spec error body
    /// (`{"errors":[{"code","message","detail"}]}` with the spec's codes, sent
    /// as JSON) and returns its codes.
    pub fn error_codes(&self) -> Outcome<Vec<String>> {
        let v = self.json()?;
        let errs = v
            .get("errors")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("error body without an \"errors\" array: {}", self.show()))?;
        if errs.is_empty() {
            return Err(format!("empty \"errors\" array: {}", self.show()));
        }
        let mut codes = Vec::new();
        for e in errs {
            let code = e
                .get("code")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("error without a string \"code\": {}", self.show()))?;
            if !SPEC_CODES.contains(&code) {
                return Err(format!(
                    "error code {code:?} is not a spec code: {}",
                    self.show()
                ));
            }
            if let Some(m) = e.get("message") {
                if !m.is_string() {
                    return Err(format!(
                        "error \"message\" is not a string: {}",
                        self.show()
                    ));
                }
            }
            codes.push(code.to_string());
        }
        let ct = self.need("content-type")?;
        if !ct.to_ascii_lowercase().starts_with("application/json") {
            return Err(format!(
                "error body Content-Type is {ct:?}, want application/json: {}",
                self.show()
            ));
        }
        Ok(codes)
    }

    /// Fails unless the status is `status` and (except for HEAD, which has no
    /// body) the body is a spec error body whose codes include `code`.
    pub fn expect_error(&self, status: u16, code: &str) -> Outcome {
        self.expect_error_any(&[(status, code)])
    }

    /// Like [`Resp::expect_error`] with several acceptable (status, code)
    /// pairs.
    pub fn expect_error_any(&self, allowed: &[(u16, &str)]) -> Outcome {
        let want: Vec<String> = allowed.iter().map(|(s, c)| format!("{s} {c}")).collect();
        let want = want.join(" or ");
        if !allowed.iter().any(|(s, _)| *s == self.status) {
            return Err(format!("expected {want}: {}", self.show()));
        }
        if self.head {
            return Ok(());
        }
        let codes = self
            .error_codes()
            .map_err(|e| format!("expected {want}: {e}"))?;
        if allowed
            .iter()
            .any(|(s, c)| *s == self.status && codes.iter().any(|x| x == c))
        {
            Ok(())
        } else {
            Err(format!(
                "expected {want}, got codes {codes:?}: {}",
                self.show()
            ))
        }
    }
}
