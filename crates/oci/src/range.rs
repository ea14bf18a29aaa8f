/// An inclusive byte range `start..=end`, as in `Content-Range` and `Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset, inclusive.
    pub end: u64,
}

/// Why a range header was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// Not of a form Berth understands.
    #[error("malformed range {0:?}")]
    Malformed(String),
    /// Start beyond end.
    #[error("range {0:?} ends before it starts")]
    Inverted(String),
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: an inclusive range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Parses an upload `Content-Range`: `<start>-<end>`, optionally prefixed
    /// by `bytes ` or `bytes=` (clients differ).
    pub fn parse_content_range(s: &str) -> Result<ByteRange, RangeError> {
        let t = s.trim();
        let t = t
            .strip_prefix("bytes=")
            .or_else(|| t.strip_prefix("bytes "))
            .unwrap_or(t);
        // Some clients append "/<total>" or "/*".
        let t = t.split('/').next().unwrap_or(t);
        let (a, b) = t
            .split_once('-')
            .ok_or_else(|| RangeError::Malformed(s.to_string()))?;
        let start = parse_u64(a).ok_or_else(|| RangeError::Malformed(s.to_string()))?;
        let end = parse_u64(b).ok_or_else(|| RangeError::Malformed(s.to_string()))?;
        if end < start {
            return Err(RangeError::Inverted(s.to_string()));
        }
        Ok(ByteRange { start, end })
    }

    /// Parses a GET `Range: bytes=<a>-<b>` / `bytes=<a>-` / `bytes=-<n>`
    /// against an object of `size` bytes. `Ok(None)` means the range cannot be
    /// satisfied (416). Multiple ranges are not supported and are reported
    /// as malformed.
    pub fn parse_get_range(s: &str, size: u64) -> Result<Option<ByteRange>, RangeError> {
        let t = s
            .trim()
            .strip_prefix("bytes=")
            .ok_or_else(|| RangeError::Malformed(s.to_string()))?;
        if t.contains(',') {
            return Err(RangeError::Malformed(s.to_string()));
        }
        let (a, b) = t
            .split_once('-')
            .ok_or_else(|| RangeError::Malformed(s.to_string()))?;
        let (a, b) = (a.trim(), b.trim());
        if a.is_empty() {
            let n = parse_u64(b).ok_or_else(|| RangeError::Malformed(s.to_string()))?;
            if n == 0 || size == 0 {
                return Ok(None);
            }
            let n = n.min(size);
            return Ok(Some(ByteRange {
                start: size - n,
                end: size - 1,
            }));
        }
        let start = parse_u64(a).ok_or_else(|| RangeError::Malformed(s.to_string()))?;
        let end = if b.is_empty() {
            u64::MAX
        } else {
            parse_u64(b).ok_or_else(|| RangeError::Malformed(s.to_string()))?
        };
        if end < start {
            return Err(RangeError::Inverted(s.to_string()));
        }
        if start >= size {
            return Ok(None);
        }
        Ok(Some(ByteRange {
            start,
            end: end.min(size - 1),
        }))
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        let r = ByteRange { start: 0, end: 9 };
        assert_eq!(ByteRange::parse_content_range("0-9").unwrap(), r);
        assert_eq!(ByteRange::parse_content_range("bytes=0-9").unwrap(), r);
        assert_eq!(ByteRange::parse_content_range("bytes 0-9/10").unwrap(), r);
        assert!(ByteRange::parse_content_range("9-0").is_err());
        assert!(ByteRange::parse_content_range("a-b").is_err());
        assert!(ByteRange::parse_content_range("-5").is_err());
        assert!(ByteRange::parse_content_range("+1-5").is_err());
    }

    #[test]
    fn get_range_forms() {
        assert_eq!(
            ByteRange::parse_get_range("bytes=2-", 10).unwrap(),
            Some(ByteRange { start: 2, end: 9 })
        );
        assert_eq!(
            ByteRange::parse_get_range("bytes=-3", 10).unwrap(),
            Some(ByteRange { start: 7, end: 9 })
        );
        assert_eq!(
            ByteRange::parse_get_range("bytes=0-100", 10).unwrap(),
            Some(ByteRange { start: 0, end: 9 })
        );
        assert_eq!(ByteRange::parse_get_range("bytes=10-", 10).unwrap(), None);
        assert!(ByteRange::parse_get_range("bytes=0-1,3-4", 10).is_err());
        assert!(ByteRange::parse_get_range("items=0-1", 10).is_err());
    }
}
