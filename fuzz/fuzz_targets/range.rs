//! `Range` (blob GET) and `Content-Range` (upload PATCH) parsing:
//! `ByteRange::parse_get_range` and `ByteRange::parse_content_range`.
//!
//! Input: 8 bytes of object size (little endian; the high bytes are masked
//! so that small sizes are common), then the header value.
//!
//! Invariants: nothing panics (overflow checks are on in fuzz builds); every
//! range has start <= end and a length that does not overflow; a GET range
//! lies inside the object; a Content-Range prints back as `start-end` that
//! re-parses equal; both parsers agree with a simple reference parser.
#![no_main]

use berth_oci::ByteRange;
use libfuzzer_sys::fuzz_target;

fn number(s: &str) -> Option<u64> {
    // Digits only, as RFC 9110 says; Berth takes at most 19 (fits in u64).
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Reference for `Content-Range`: `[bytes=|bytes ]<a>-<b>[/anything]`.
fn reference_content_range(s: &str) -> Option<(u64, u64)> {
    let t = s.trim();
    let t = t
        .strip_prefix("bytes=")
        .or_else(|| t.strip_prefix("bytes "))
        .unwrap_or(t);
    let t = match t.find('/') {
        Some(i) => &t[..i],
        None => t,
    };
    let dash = t.find('-')?;
    let (a, b) = (number(&t[..dash])?, number(&t[dash + 1..])?);
    (a <= b).then_some((a, b))
}

/// Reference for `Range` against `size`: `Err` = malformed or inverted,
/// `Ok(None)` = unsatisfiable.
fn reference_get_range(s: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let t = s.trim().strip_prefix("bytes=").ok_or(())?;
    if t.contains(',') {
        return Err(());
    }
    let dash = t.find('-').ok_or(())?;
    let (a, b) = (t[..dash].trim(), t[dash + 1..].trim());
    if a.is_empty() {
        let n = number(b).ok_or(())?;
        if n == 0 || size == 0 {
            return Ok(None);
        }
        return Ok(Some((size - n.min(size), size - 1)));
    }
    let a = number(a).ok_or(())?;
    let b = if b.is_empty() {
        None
    } else {
        Some(number(b).ok_or(())?)
    };
    if b.is_some_and(|b| b < a) {
        return Err(());
    }
    if a >= size {
        return Ok(None);
    }
    Ok(Some((a, b.map_or(size - 1, |b| b.min(size - 1)))))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let mut size = u64::from_le_bytes(data[..8].try_into().unwrap());
    // Mostly small sizes, sometimes huge ones.
    if size & 1 == 0 {
        size = (size >> 1) & 0xffff;
    }
    let Ok(s) = std::str::from_utf8(&data[8..]) else {
        return;
    };

    let cr = ByteRange::parse_content_range(s);
    assert_eq!(
        cr.as_ref().ok().map(|r| (r.start, r.end)),
        reference_content_range(s),
        "Content-Range {s:?}: {cr:?}"
    );
    if let Ok(r) = cr {
        assert!(r.start <= r.end);
        assert!(!r.is_empty());
        assert_eq!(r.len(), r.end - r.start + 1);
        for printed in [
            format!("{}-{}", r.start, r.end),
            format!("bytes {}-{}/*", r.start, r.end),
            format!("bytes={}-{}", r.start, r.end),
        ] {
            assert_eq!(ByteRange::parse_content_range(&printed), Ok(r), "{printed}");
        }
    }

    let gr = ByteRange::parse_get_range(s, size);
    assert_eq!(
        gr.as_ref()
            .map(|o| o.map(|r| (r.start, r.end)))
            .map_err(|_| ()),
        reference_get_range(s, size),
        "Range {s:?} of {size} bytes: {gr:?}"
    );
    if let Ok(Some(r)) = gr {
        assert!(r.start <= r.end, "{r:?}");
        assert!(r.end < size, "{r:?} beyond {size}");
        assert!(r.len() <= size);
        // The Content-Range header of the 206 answer describes it again
        // (Content-Range numbers have at most 19 digits: up to 8 EiB).
        if r.end < 10_000_000_000_000_000_000 {
            let header = format!("bytes {}-{}/{size}", r.start, r.end);
            assert_eq!(ByteRange::parse_content_range(&header), Ok(r));
        }
    }
});
