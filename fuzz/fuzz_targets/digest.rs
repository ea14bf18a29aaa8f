//! `Digest::from_str`, checked against the image spec's digest grammar.
//!
//! Invariants: nothing panics; a digest is accepted exactly when it is
//! `sha256:` + 64 or `sha512:` + 128 lowercase hex characters; an accepted
//! digest displays as the input, re-parses to an equal value and survives
//! a serde round trip; the error kind matches the grammar (malformed, then
//! unsupported algorithm, then bad encoding); the hex part is safe in a
//! file path.
#![no_main]

use std::sync::LazyLock;

use berth_oci::{Algorithm, Digest, DigestError};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

static GRAMMAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$").unwrap());
static ACCEPTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$").unwrap());

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = s.parse::<Digest>();
    match &parsed {
        Ok(d) => {
            assert!(ACCEPTED.is_match(s), "{s:?} accepted");
            assert_eq!(d.to_string(), s);
            assert_eq!(d.to_string().parse::<Digest>().as_ref(), Ok(d));
            assert_eq!(d.hex().len(), d.algorithm().hex_len());
            assert!(d
                .hex()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            let json = serde_json::to_string(d).unwrap();
            assert_eq!(serde_json::from_str::<Digest>(&json).ok().as_ref(), Some(d));
            // from_raw of the decoded bytes gives the same digest.
            let raw: Vec<u8> = (0..d.hex().len() / 2)
                .map(|i| u8::from_str_radix(&d.hex()[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            assert_eq!(&Digest::from_raw(d.algorithm(), &raw), d);
            let alg = match d.algorithm() {
                Algorithm::Sha256 => "sha256",
                Algorithm::Sha512 => "sha512",
            };
            assert_eq!(d.algorithm().as_str(), alg);
        }
        Err(DigestError::Malformed(m)) => {
            assert_eq!(m, s);
            assert!(
                !GRAMMAR.is_match(s),
                "{s:?} is well-formed but reported malformed"
            );
        }
        Err(DigestError::UnsupportedAlgorithm(a)) => {
            assert!(GRAMMAR.is_match(s), "{s:?}");
            assert!(a != "sha256" && a != "sha512");
            assert!(s.starts_with(&format!("{a}:")));
        }
        Err(DigestError::BadEncoding(m, len)) => {
            assert_eq!(m, s);
            assert!(GRAMMAR.is_match(s), "{s:?}");
            assert!(!ACCEPTED.is_match(s));
            assert!(*len == 64 || *len == 128);
        }
        Err(e) => panic!("unexpected error kind {e:?}"),
    }
    // Through serde as a JSON string, the same verdict.
    let json = serde_json::to_string(s).unwrap();
    assert_eq!(
        serde_json::from_str::<Digest>(&json).is_ok(),
        parsed.is_ok()
    );
});
