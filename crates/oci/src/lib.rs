//! OCI domain types shared by every Berth crate.
//!
//! Everything here is pure: no I/O, no async runtime, no HTTP. Values of these
//! types are validated when they are built, so code that holds a [`Digest`] or
//! a [`RepoName`] never has to check it again ("never trust
//! deserialised input to be validated").
#![warn(missing_docs)]

mod digest;
mod error;
pub mod image_config;
pub mod manifest;
pub mod media_type;
mod name;
mod range;

pub use digest::{Algorithm, Digest, DigestError};
pub use error::ErrorCode;
pub use image_config::{HistoryEntry, ImageDetails};
pub use manifest::{Descriptor, ManifestError, ManifestKind, ParsedManifest, Platform};
pub use name::{NameError, Reference, RepoName, Tag};
pub use range::{ByteRange, RangeError};
