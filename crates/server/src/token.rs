//! `/auth/token`: the Docker token endpoint (`GET`, credentials in a Basic
//! header or none) and its OAuth2 form (`POST` with
//! `grant_type=password`, as containerd sends). It answers a short-lived
//! JWT granting the intersection of the scopes asked for and the caller's
//! rights. The endpoint exists only while authentication is on (see
//! `authorize::decide`).

use crate::body::Incoming;
use berth_oci::ErrorCode;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::auth::{self, AuthFailure, Caller, Principal};
use crate::error::ApiError;
use crate::{full, AppState, Body};

pub(crate) const MAX_FORM: usize = 64 << 10;

/// The 401/429 answer to failed credentials on `/auth/token`.
pub(crate) fn failure_error(f: AuthFailure) -> ApiError {
    match f {
        AuthFailure::Unauthorized(m) => ApiError::new(ErrorCode::Unauthorized, m).with_header(
            http::header::WWW_AUTHENTICATE,
            "Basic realm=\"berth\"".into(),
        ),
        f => {
            let (msg, after) = f.throttle().unwrap_or_default();
            ApiError::new(ErrorCode::TooManyRequests, msg)
                .with_header(http::header::RETRY_AFTER, after.to_string())
        }
    }
}

pub(crate) async fn dispatch(
    state: &AppState,
    caller: Caller,
    req: Request<Incoming>,
) -> Response<Body> {
    match handle(state, caller, req).await {
        Ok(r) => r,
        Err(e) => crate::error::oci_response(e),
    }
}

fn pairs(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

async fn handle(
    state: &AppState,
    caller: Caller,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let cfg = &state.config.auth;
    let method = req.method().clone();
    let mut params = pairs(req.uri().query().unwrap_or(""));
    let mut principal = caller.principal.clone();
    let post = method == Method::POST;
    if post {
        let body = http_body_util::Limited::new(req.into_body(), MAX_FORM)
            .collect()
            .await
            .map_err(|_| ApiError::malformed("form body too large or unreadable"))?
            .to_bytes();
        params.extend(pairs(&String::from_utf8_lossy(&body)));
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        match get("grant_type").as_deref() {
            Some("password") => {
                let user = get("username").unwrap_or_default();
                let pw = get("password").unwrap_or_default();
                principal = auth::login(state, caller.addr, &user, &pw)
                    .await
                    .map_err(failure_error)?;
            }
            Some("refresh_token") => {
                return Err(ApiError::malformed(
                    "refresh tokens are not issued; use grant_type=password",
                ));
            }
            Some(other) => {
                return Err(ApiError::malformed(format!(
                    "grant_type {other:?} is not supported; use password"
                )));
            }
            None => {}
        }
    }
    // A bearer token is never exchanged for another: that would let it
    // renew itself past its expiry, and widen to its subject's rights.
    // Clients re-authenticate with their stored credentials instead.
    if matches!(principal, Principal::Bearer { .. }) {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "a bearer token cannot be exchanged for a new one; authenticate with your user name and password (Basic) or a scoped token",
        )
        .with_header(
            http::header::WWW_AUTHENTICATE,
            "Basic realm=\"berth\"".into(),
        ));
    }
    if let Some((_, s)) = params.iter().find(|(k, _)| k == "service") {
        if *s != cfg.service {
            return Err(ApiError::malformed(format!(
                "this token endpoint serves service {:?}, not {s:?}",
                cfg.service
            )));
        }
    }
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let reg = &state.registry;
    let access = auth::grant_scopes(reg, &principal, &scopes).await?;
    let sub = auth::subject_of(&principal);
    let (token, claims) = auth::issue_jwt(state, &principal, access.clone()).await?;
    let issued_at = time::OffsetDateTime::from_unix_timestamp(claims.iat)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let granted: Vec<String> = access
        .iter()
        .map(|a| format!("{}:{}:{}", a.typ, a.name, a.actions.join(",")))
        .collect();
    if !matches!(principal, Principal::Anonymous) {
        tracing::debug!(subject = %sub, scopes = ?granted, "token issued");
    }
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": claims.exp - claims.iat,
        "issued_at": issued_at,
        "scope": granted.join(" "),
    })
    .to_string();
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .header("cache-control", "no-store")
        .body(full(body))
        .expect("valid response"))
}
