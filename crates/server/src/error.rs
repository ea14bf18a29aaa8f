//! Errors as clients see them: the OCI error body of `/v2` and
//! `/auth/token` ([`ApiError`]), the management API's ([`MgmtError`]), and
//! the one table from each store error to both ([`classify`]). Every HTTP
//! status an error is answered with is decided in this module.

use berth_oci::ErrorCode;
use berth_store::Error as StoreError;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};

use crate::api::dto::{ErrorBody, ErrorDetail};
use crate::{full, Body};

/// The HTTP status Berth answers an OCI error code with.
pub fn oci_status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::BlobUnknown
        | ErrorCode::BlobUploadUnknown
        | ErrorCode::ManifestUnknown
        | ErrorCode::NameUnknown => 404,
        ErrorCode::BlobUploadInvalid
        | ErrorCode::DigestInvalid
        | ErrorCode::ManifestBlobUnknown
        | ErrorCode::ManifestInvalid
        | ErrorCode::NameInvalid
        | ErrorCode::SizeInvalid => 400,
        ErrorCode::Unauthorized => 401,
        ErrorCode::Denied => 403,
        ErrorCode::Unsupported => 405,
        ErrorCode::TooManyRequests => 429,
        ErrorCode::RangeInvalid => 416,
        ErrorCode::TooLarge => 413,
        ErrorCode::Unknown => 500,
        ErrorCode::InsufficientStorage => 507,
    }
}

/// An error answered on `/v2` or `/auth/token`.
#[derive(Debug)]
pub struct ApiError {
    /// OCI error code.
    pub code: ErrorCode,
    /// HTTP status: the code's own ([`oci_status`]) unless one of the
    /// constructors below says otherwise.
    pub status: u16,
    /// Human-readable message saying what to do.
    pub message: String,
    /// Extra headers (e.g. `Range` on 416).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with the code's status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: oci_status(code),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A request Berth understands but refuses as malformed (a bad query
    /// parameter, form or grant type): `UNSUPPORTED` with 400, as
    /// distribution answers.
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            ..ApiError::new(ErrorCode::Unsupported, message)
        }
    }

    /// `/auth/token` when authentication is off: there is no such
    /// endpoint then (404).
    pub fn not_served(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            ..ApiError::new(ErrorCode::Unsupported, message)
        }
    }

    /// A refusal made from the request head or for a stalled body, with
    /// the status of that limit (401, 408, 413, 431).
    pub fn limit(status: u16, message: impl Into<String>) -> ApiError {
        let code = match status {
            401 => ErrorCode::Unauthorized,
            413 => ErrorCode::TooLarge,
            _ => ErrorCode::Unknown,
        };
        ApiError {
            status,
            ..ApiError::new(code, message)
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: String) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(&value) {
            self.headers.push((name, v));
        }
        self
    }

    /// The spec's JSON body: `{"errors":[{"code","message","detail"}]}`.
    pub fn body(&self) -> String {
        serde_json::json!({
            "errors": [{
                "code": self.code.as_str(),
                "message": self.code.message(),
                "detail": self.message,
            }]
        })
        .to_string()
    }
}

/// A management API failure.
#[derive(Debug)]
pub struct MgmtError {
    /// HTTP status.
    pub status: StatusCode,
    code: &'static str,
    message: String,
    details: serde_json::Value,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl MgmtError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> MgmtError {
        MgmtError {
            status,
            code,
            message: message.into(),
            details: serde_json::json!({}),
            headers: Vec::new(),
        }
    }

    /// 400: an invalid value, naming the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> MgmtError {
        let mut e = MgmtError::new(StatusCode::BAD_REQUEST, "invalid_argument", message);
        e.details = serde_json::json!({ "field": field });
        e
    }

    /// The request field an invalid-argument error names, if any.
    pub fn field(&self) -> Option<&str> {
        self.details.get("field").and_then(|f| f.as_str())
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> MgmtError {
        MgmtError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> MgmtError {
        MgmtError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn denied(message: impl Into<String>) -> MgmtError {
        MgmtError::new(StatusCode::FORBIDDEN, "denied", message)
    }

    /// 409 `lockout`: the change would shut the caller out.
    pub fn lockout(message: impl Into<String>) -> MgmtError {
        MgmtError::new(StatusCode::CONFLICT, "lockout", message)
    }

    /// 413.
    pub fn payload_too_large(message: impl Into<String>) -> MgmtError {
        MgmtError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 429 with the seconds to wait in the details.
    pub fn throttled(message: impl Into<String>, retry_after_secs: u64) -> MgmtError {
        let mut e = MgmtError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message);
        e.details = serde_json::json!({ "retry_after_secs": retry_after_secs });
        e
    }

    /// 429 with the seconds to wait in `Retry-After`.
    pub fn retry_after(message: impl Into<String>, after: u64) -> MgmtError {
        MgmtError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
            .with_header(http::header::RETRY_AFTER, &after.to_string())
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> MgmtError {
        MgmtError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 405, with `Allow`.
    pub fn method_not_allowed(method: &Method, path: &str, allowed: &[Method]) -> MgmtError {
        let allow = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        MgmtError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; use {allow}"),
        )
        .with_header(ALLOW, &allow)
    }

    /// A refusal made from the request head or for a stalled body, with
    /// the status of that limit (408, 413, 431).
    pub fn limit(status: u16, message: impl Into<String>) -> MgmtError {
        let (status, code) = match status {
            408 => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            413 => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            431 => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request_header_fields_too_large",
            ),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        MgmtError::new(status, code, message)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> MgmtError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// The answer: `{"error":{"code","message","details"}}`.
    pub fn response(self) -> Response<Body> {
        let body = serde_json::to_string(&ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        })
        .expect("serialisable");
        let mut r = Response::builder()
            .status(self.status)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, body.len())
            .body(full(body))
            .expect("valid response");
        for (k, v) in self.headers {
            r.headers_mut().insert(k, v);
        }
        r
    }
}

/// A refusal in the format of the plane it is answered on.
#[derive(Debug)]
pub enum Failure {
    /// `/v2`, `/healthz`, `/auth/token`: the OCI error body.
    Oci(ApiError),
    /// `/api/v1`: the management error body.
    Api(MgmtError),
}

/// How the management API answers a store error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MgmtKind {
    /// 400 `invalid_argument`, naming the field.
    Invalid,
    /// 404 `not_found`.
    NotFound,
    /// 409 `conflict`.
    Conflict,
    /// 500 `internal`, logged.
    Internal,
}

/// Whether a store error reaching `/v2` is a server fault to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client's doing: not logged.
    No,
    /// A management-plane error that no `/v2` handler should meet.
    Misrouted,
    /// Storage failed.
    Storage,
}

/// The one table: for each store error, the OCI code `/v2` answers (its
/// status is [`oci_status`]), whether that is a logged fault, and how the
/// management API answers. The message is the error's own text on both
/// planes. Exhaustive: a new store variant does not compile until it has a
/// row.
pub fn classify(e: &StoreError) -> (ErrorCode, Fault, MgmtKind) {
    use ErrorCode as C;
    use Fault as F;
    use MgmtKind as M;
    match e {
        StoreError::BlobUnknown { .. } => (C::BlobUnknown, F::No, M::NotFound),
        // GC is removing the bytes: to the client the blob is gone, and it
        // uploads it again.
        StoreError::BlobBeingDeleted { .. } => (C::BlobUnknown, F::No, M::NotFound),
        StoreError::TooManyUploads { .. } => (C::TooManyRequests, F::No, M::Internal),
        StoreError::UploadUnknown { .. } => (C::BlobUploadUnknown, F::No, M::Internal),
        StoreError::UploadOffset { .. } => (C::RangeInvalid, F::No, M::Internal),
        StoreError::SizeMismatch { .. } => (C::SizeInvalid, F::No, M::Internal),
        StoreError::DigestMismatch { .. } => (C::DigestInvalid, F::No, M::Internal),
        StoreError::ManifestUnknown { .. } => (C::ManifestUnknown, F::No, M::NotFound),
        StoreError::RepoUnknown { .. } => (C::NameUnknown, F::No, M::NotFound),
        StoreError::NamespaceExists { .. } => (C::Unknown, F::Misrouted, M::Conflict),
        StoreError::NamespaceUnknown { .. } => (C::NameUnknown, F::No, M::NotFound),
        // Pushes into a namespace or repository being deleted: refused,
        // and the message says to retry once the deletion is done.
        StoreError::BeingDeleted { .. } => (C::Denied, F::No, M::Conflict),
        StoreError::Exists { .. } => (C::Unknown, F::Misrouted, M::Conflict),
        StoreError::NotFound { .. } => (C::Unknown, F::Misrouted, M::NotFound),
        StoreError::GcBusy => (C::Unknown, F::Misrouted, M::Conflict),
        // Only ever a run's recorded failure, never a response; listed so
        // that the table stays exhaustive.
        StoreError::GcLeaseLost => (C::Unknown, F::Misrouted, M::Conflict),
        StoreError::GcRunUnknown { .. } => (C::Unknown, F::Misrouted, M::NotFound),
        StoreError::InvalidInput { .. } => (C::Unknown, F::Misrouted, M::Invalid),
        StoreError::ManifestInvalid { .. } => (C::ManifestInvalid, F::No, M::Internal),
        StoreError::ManifestBlobUnknown { .. } => (C::ManifestBlobUnknown, F::No, M::Internal),
        StoreError::ManifestTooLarge { .. } => (C::TooLarge, F::No, M::Internal),
        StoreError::BodyRead { .. } => (C::BlobUploadInvalid, F::No, M::Internal),
        StoreError::StorageFull { .. } => (C::InsufficientStorage, F::No, M::Internal),
        StoreError::Storage { .. }
        | StoreError::BlobFile { .. }
        | StoreError::DataDir { .. }
        | StoreError::Metadata { .. }
        | StoreError::TaskFailed { .. }
        | StoreError::GcPanicked { .. }
        | StoreError::PasswordHash { .. }
        | StoreError::CorruptRecord { .. }
        | StoreError::FormatMarker { .. }
        | StoreError::CorruptDatabase { .. }
        | StoreError::Corrupt { .. }
        | StoreError::Config { .. }
        | StoreError::Locked { .. } => (C::Unknown, F::Storage, M::Internal),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let (code, fault, _) = classify(&e);
        match fault {
            Fault::No => {}
            Fault::Misrouted => {
                tracing::error!(error = %e, "management error on the distribution API")
            }
            Fault::Storage => tracing::error!(error = %e, "storage failure"),
        }
        let err = ApiError::new(code, e.to_string());
        match e {
            // Where the session ends, so that the client resumes there.
            StoreError::UploadOffset { expected, .. } => err.with_header(
                http::header::RANGE,
                format!("0-{}", expected.saturating_sub(1)),
            ),
            _ => err,
        }
    }
}

impl From<StoreError> for MgmtError {
    fn from(e: StoreError) -> MgmtError {
        let msg = e.to_string();
        match classify(&e).2 {
            MgmtKind::Invalid => {
                let field = match &e {
                    StoreError::InvalidInput { field, .. } => field.as_str(),
                    _ => "",
                };
                MgmtError::invalid(field, msg)
            }
            MgmtKind::NotFound => MgmtError::not_found(msg),
            MgmtKind::Conflict => MgmtError::new(StatusCode::CONFLICT, "conflict", msg),
            MgmtKind::Internal => {
                tracing::error!(error = %e, "management request failed");
                MgmtError::internal(msg)
            }
        }
    }
}

/// Sent on every distribution API answer, errors included.
pub(crate) const API_VERSION: &str = "docker-distribution-api-version";

/// The distribution API's answer for an error (also used by the token
/// endpoint and the connection limits, which speak the same error format).
pub(crate) fn oci_response(e: ApiError) -> Response<Body> {
    let body = e.body();
    let mut b = Response::builder()
        .status(e.status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len());
    for (k, v) in e.headers {
        b = b.header(k, v);
    }
    b = b.header(API_VERSION, "registry/2.0");
    b.body(full(body)).unwrap_or_else(|e| {
        tracing::error!(error = %e, "error response could not be built");
        let mut r = Response::new(full(bytes::Bytes::new()));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_4xx() {
        for c in [
            ErrorCode::BlobUnknown,
            ErrorCode::DigestInvalid,
            ErrorCode::NameInvalid,
            ErrorCode::RangeInvalid,
        ] {
            assert!((400..500).contains(&oci_status(c)), "{c:?}");
        }
        assert_eq!(oci_status(ErrorCode::Unknown), 500);
    }

    #[test]
    fn the_table_keeps_both_planes_apart() {
        let deleting = StoreError::BeingDeleted {
            what: "namespace a".into(),
        };
        assert_eq!(ApiError::from(deleting).status, 403);
        let deleting = StoreError::BeingDeleted {
            what: "namespace a".into(),
        };
        assert_eq!(MgmtError::from(deleting).status, StatusCode::CONFLICT);
        let offset = ApiError::from(StoreError::UploadOffset {
            expected: 10,
            got: 3,
        });
        assert_eq!(offset.status, 416);
        assert_eq!(offset.headers[0].1, "0-9");
    }
}
