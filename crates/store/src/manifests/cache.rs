//! Manifest bytes by digest, in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_oci::Digest;
use bytes::Bytes;

/// Manifest bytes by digest. Manifests are small and read far more often
/// than written; serving them from memory is what makes manifest GETs cheap.
#[derive(Default)]
pub(crate) struct Cache {
    // Why a Mutex: short critical sections (a lookup or an insert) from many
    // request tasks; never held across an await.
    map: Mutex<(HashMap<Digest, Bytes>, usize)>,
}

/// Bound on cached manifest bytes; past it the cache starts over.
const CACHE_BYTES: usize = 64 << 20;

impl Cache {
    pub(crate) fn forget(&self, d: &Digest) {
        let mut g = self.map.lock().expect("cache lock poisoned");
        if let Some(old) = g.0.remove(d) {
            g.1 -= old.len();
        }
    }

    pub(crate) fn get(&self, d: &Digest) -> Option<Bytes> {
        self.map
            .lock()
            .expect("cache lock poisoned")
            .0
            .get(d)
            .cloned()
    }

    pub(crate) fn insert(&self, d: Digest, b: Bytes) {
        let mut g = self.map.lock().expect("cache lock poisoned");
        if g.1 + b.len() > CACHE_BYTES {
            g.0.clear();
            g.1 = 0;
        }
        g.1 += b.len();
        if let Some(old) = g.0.insert(d, b) {
            g.1 -= old.len();
        }
    }
}
