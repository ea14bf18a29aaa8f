//! Whole responses for the suites that check status, headers and JSON
//! bodies together (the GC and management suites share these).
#![allow(dead_code)]

use reqwest::blocking::Client;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

use super::http;

/// A response, read whole: the body as bytes, as text (lossy) and as JSON
/// (`null` when it is none).
pub struct R {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub text: String,
    pub json: Value,
}

impl R {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// One request with `headers` and an optional body; an error (not a panic)
/// when the request itself fails, for callers that race a server.
pub fn send_with(
    c: &Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<R, String> {
    let mut b = c.request(method.clone(), url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if let Some(body) = body {
        b = b.body(body);
    }
    let r = b.send().map_err(|e| format!("{method} {url}: {e}"))?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r
        .bytes()
        .map_err(|e| format!("{method} {url}: reading body: {e}"))?
        .to_vec();
    let text = String::from_utf8_lossy(&body).to_string();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(R {
        status,
        headers,
        body,
        text,
        json,
    })
}

#[track_caller]
pub fn get(url: &str) -> R {
    send_with(http(), Method::GET, url, &[], None).unwrap_or_else(|e| panic!("{e}"))
}

#[track_caller]
pub fn delete(url: &str) -> R {
    send_with(http(), Method::DELETE, url, &[], None).unwrap_or_else(|e| panic!("{e}"))
}

#[track_caller]
pub fn post_json(url: &str, v: &Value) -> R {
    send_with(
        http(),
        Method::POST,
        url,
        &[("Content-Type", "application/json")],
        Some(v.to_string().into_bytes()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}
