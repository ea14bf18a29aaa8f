//! Repository names, tags and manifest references (`RepoName`, `Tag`,
//! `Reference` from `FromStr`), checked against the distribution spec's
//! grammar written as regular expressions.
//!
//! Invariants: nothing panics; a string is accepted exactly when the spec's
//! grammar (and Berth's 255-byte name limit) accepts it; an accepted value
//! displays as the input and re-parses to an equal value; a name's namespace
//! is its first component; a reference is a digest exactly when it contains
//! a colon.
#![no_main]

use std::sync::LazyLock;

use berth_oci::{NameError, Reference, RepoName, Tag};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

static NAME: LazyLock<Regex> = LazyLock::new(|| {
    let component = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*";
    Regex::new(&format!("^{component}(?:/{component})*$")).unwrap()
});
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").unwrap());

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    let name = s.parse::<RepoName>();
    let spec_ok = s.len() <= RepoName::MAX_LEN && NAME.is_match(s);
    assert_eq!(name.is_ok(), spec_ok, "RepoName {s:?}: {name:?}");
    match &name {
        Ok(n) => {
            assert_eq!(n.as_str(), s);
            assert_eq!(n.to_string(), s);
            assert_eq!(n.to_string().parse::<RepoName>().as_ref(), Ok(n));
            assert_eq!(Some(n.namespace()), s.split('/').next());
            assert!(!n.as_str().contains(".."));
        }
        Err(NameError::NameTooLong(len)) => assert_eq!(*len, s.len()),
        Err(_) => assert!(s.len() <= RepoName::MAX_LEN),
    }

    let tag = s.parse::<Tag>();
    assert_eq!(tag.is_ok(), TAG.is_match(s), "Tag {s:?}: {tag:?}");
    if let Ok(t) = &tag {
        assert_eq!(t.to_string(), s);
        assert_eq!(t.as_str().parse::<Tag>().as_ref(), Ok(t));
    }

    match s.parse::<Reference>() {
        Ok(r) => {
            assert_eq!(r.to_string(), s);
            assert_eq!(r.to_string().parse::<Reference>(), Ok(r.clone()));
            match r {
                Reference::Tag(t) => assert_eq!(tag.as_ref(), Ok(&t)),
                Reference::Digest(d) => {
                    assert!(s.contains(':'));
                    assert_eq!(d.to_string(), s);
                }
            }
        }
        Err(NameError::Digest(_)) => assert!(s.contains(':')),
        Err(_) => assert!(!s.contains(':') && tag.is_err()),
    }
});
