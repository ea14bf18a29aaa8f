//! The one mapping from store errors to OCI error codes and HTTP statuses,
//! and the JSON error body of the distribution spec.

use berth_oci::ErrorCode;
use berth_store::Error;
use http::{HeaderName, HeaderValue};

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    /// OCI error code.
    pub code: ErrorCode,
    /// HTTP status (the code's own unless overridden).
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
            status: code.status(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Overrides the status.
    pub fn with_status(mut self, status: u16) -> ApiError {
        self.status = status;
        self
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

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let msg = e.to_string();
        let code = match &e {
            Error::BlobUnknown { .. } | Error::BlobBeingDeleted { .. } => ErrorCode::BlobUnknown,
            Error::UploadUnknown { .. } => ErrorCode::BlobUploadUnknown,
            Error::TooManyUploads { .. } => ErrorCode::TooManyRequests,
            Error::UploadOffset { expected, .. } => {
                let range = format!("0-{}", expected.saturating_sub(1));
                return ApiError::new(ErrorCode::RangeInvalid, msg)
                    .with_header(http::header::RANGE, range);
            }
            Error::SizeMismatch { .. } => ErrorCode::SizeInvalid,
            Error::DigestMismatch { .. } => ErrorCode::DigestInvalid,
            Error::ManifestUnknown { .. } => ErrorCode::ManifestUnknown,
            Error::RepoUnknown { .. } => ErrorCode::NameUnknown,
            Error::ManifestInvalid { .. } => ErrorCode::ManifestInvalid,
            Error::ManifestBlobUnknown { .. } => ErrorCode::ManifestBlobUnknown,
            Error::ManifestTooLarge { .. } => ErrorCode::TooLarge,
            Error::BodyRead { .. } => ErrorCode::BlobUploadInvalid,
            Error::StorageFull { .. } => ErrorCode::InsufficientStorage,
            // Pushes into a namespace or repository being deleted: refused,
            // and the message says to retry once the deletion is done.
            Error::BeingDeleted { .. } => ErrorCode::Denied,
            Error::NamespaceUnknown { .. } => ErrorCode::NameUnknown,
            Error::NamespaceExists { .. }
            | Error::Exists { .. }
            | Error::NotFound { .. }
            | Error::InvalidInput { .. }
            | Error::GcBusy
            | Error::GcRunUnknown { .. } => {
                // Management-plane errors never come out of /v2 handlers.
                tracing::error!(error = %e, "management error on the distribution API");
                ErrorCode::Unknown
            }
            Error::Storage { .. }
            | Error::BlobFile { .. }
            | Error::DataDir { .. }
            | Error::Metadata { .. }
            | Error::TaskFailed { .. }
            | Error::GcPanicked { .. }
            | Error::PasswordHash { .. }
            | Error::CorruptRecord { .. }
            | Error::FormatMarker { .. }
            | Error::CorruptDatabase { .. }
            | Error::Corrupt { .. }
            | Error::Locked { .. } => {
                tracing::error!(error = %e, "storage failure");
                ErrorCode::Unknown
            }
        };
        ApiError::new(code, msg)
    }
}
