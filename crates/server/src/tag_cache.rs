//! Whole tag listings (`GET /v2/<name>/tags/list` without `n` or `last`,
//! as skopeo, crane and image-update bots ask), kept as the bytes sent.
//!
//! Building a listing costs a scan of every tag of the repository; serving
//! a kept one costs one point read of the repository's tags version (the
//! store changes it in every transaction that touches a tag). A listing is
//! served only while the stored version is still the one it was built
//! under, so no process ever answers a stale listing, whichever process
//! changed the tags.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

/// Bound on kept listing bytes; past it the cache starts over.
const CACHE_BYTES: usize = 16 << 20;
/// Listings smaller than this are cheap to build again and are not kept
/// (so the map holds at most `CACHE_BYTES / MIN_BYTES` entries).
pub(crate) const MIN_BYTES: usize = 4 << 10;
/// Larger listings are not kept: one would take a large share of the bound.
const MAX_BYTES: usize = 4 << 20;

/// A listing body with the tags version it was built under, by repository;
/// and the bytes they hold.
type Kept = (HashMap<String, (u64, Bytes)>, usize);

/// Listing bodies by repository, each with the tags version it was built
/// under.
#[derive(Default)]
pub(crate) struct TagLists {
    // Why a Mutex: short critical sections (a lookup or an insert) from many
    // request tasks; never held across an await.
    map: Mutex<Kept>,
}

impl TagLists {
    /// The listing of `repo` built under `version`, if one is kept.
    pub(crate) fn get(&self, repo: &str, version: u64) -> Option<Bytes> {
        let g = self.map.lock().expect("tag list cache lock poisoned");
        match g.0.get(repo) {
            Some((v, body)) if *v == version => Some(body.clone()),
            _ => None,
        }
    }

    /// Keeps `body`, the whole listing of `repo` read after its tags
    /// version was `version`. Reading the version first is what makes this
    /// safe: a change that lands during the read gives the repository a
    /// new version, under which this body is never served.
    pub(crate) fn insert(&self, repo: &str, version: u64, body: Bytes) {
        if !(MIN_BYTES..=MAX_BYTES).contains(&body.len()) {
            return;
        }
        let mut g = self.map.lock().expect("tag list cache lock poisoned");
        if let Some((_, old)) = g.0.remove(repo) {
            g.1 -= old.len();
        }
        if g.1 + body.len() > CACHE_BYTES {
            g.0.clear();
            g.1 = 0;
        }
        g.1 += body.len();
        g.0.insert(repo.to_string(), (version, body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn serves_only_the_version_it_was_built_under() {
        let c = TagLists::default();
        c.insert("a/b", 7, body(MIN_BYTES));
        assert_eq!(c.get("a/b", 7).map(|b| b.len()), Some(MIN_BYTES));
        assert!(c.get("a/b", 8).is_none(), "another version is a miss");
        assert!(c.get("a/c", 7).is_none());
        c.insert("a/b", 8, body(MIN_BYTES + 1));
        assert!(c.get("a/b", 7).is_none(), "replaced, not kept beside");
        assert_eq!(c.get("a/b", 8).map(|b| b.len()), Some(MIN_BYTES + 1));
    }

    #[test]
    fn keeps_only_mid_sized_listings_within_the_bound() {
        let c = TagLists::default();
        c.insert("small", 1, body(MIN_BYTES - 1));
        c.insert("huge", 1, body(MAX_BYTES + 1));
        assert!(c.get("small", 1).is_none() && c.get("huge", 1).is_none());
        for i in 0..=CACHE_BYTES / MAX_BYTES {
            c.insert(&format!("r{i}"), 1, body(MAX_BYTES));
        }
        let g = c.map.lock().unwrap();
        assert!(g.1 <= CACHE_BYTES, "{} bytes kept", g.1);
        assert_eq!(g.1, g.0.values().map(|(_, b)| b.len()).sum::<usize>());
    }
}
