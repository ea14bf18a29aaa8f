//! Media types Berth treats specially. Any other manifest media type is
//! stored and served as pushed.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (signed); accepted as an opaque manifest.
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// The OCI empty JSON descriptor's media type.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Foreign (non-distributable) Docker layers are not required to exist.
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Prefix of OCI non-distributable layer media types.
pub const OCI_NONDISTRIBUTABLE_PREFIX: &str = "application/vnd.oci.image.layer.nondistributable.";

/// Whether a layer of this media type may be absent from the registry.
pub fn is_foreign_layer(media_type: &str) -> bool {
    media_type == DOCKER_FOREIGN_LAYER || media_type.starts_with(OCI_NONDISTRIBUTABLE_PREFIX)
}

/// Longest media type accepted, parameters included. RFC 6838 caps each
/// name at 127 characters; parameters have no limit there, but a media type
/// ends up in a response header and in metadata, so it is bounded too.
pub const MAX_LEN: usize = 1024;

/// RFC 6838 §4.2 `restricted-name`: 1 to 127 characters, the first a letter
/// or digit, the rest letters, digits or `!#$&-^_.+`.
fn is_restricted_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 127
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                )
        })
}

/// RFC 9110 `token` characters (parameter names and unquoted values).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// RFC 9110 `quoted-string` made of visible ASCII, spaces and tabs (no
/// control characters, no obs-text), with `\` escapes.
fn is_quoted_string(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return false;
    };
    let mut esc = false;
    for c in inner.bytes() {
        let printable = c == b'\t' || (0x20..0x7f).contains(&c);
        if !printable {
            return false;
        }
        if esc {
            esc = false;
        } else if c == b'\\' {
            esc = true;
        } else if c == b'"' {
            return false;
        }
    }
    !esc
}

/// Splits on `;` outside quoted strings.
fn split_params(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut esc) = (Vec::new(), 0, false, false);
    for (i, c) in s.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' if quoted => esc = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Whether `s` is a valid media type: `type/subtype` with RFC 6838
/// restricted names, then optional `; name=value` parameters (value a token
/// or quoted string), with optional spaces around the separators. Control
/// characters and non-ASCII text are never valid, so a media type that
/// passes can always be sent back as a `Content-Type` header.
pub fn is_valid(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_LEN || !s.is_ascii() {
        return false;
    }
    let parts = split_params(s);
    let Some((typ, sub)) = parts[0].split_once('/') else {
        return false;
    };
    // No space inside `type/subtype`; surrounding spaces only before
    // parameters.
    if !is_restricted_name(typ) || !is_restricted_name(sub.trim_end_matches([' ', '\t'])) {
        return false;
    }
    parts[1..].iter().all(|p| {
        let p = p.trim_matches([' ', '\t']);
        match p.split_once('=') {
            Some((name, value)) => is_token(name) && (is_token(value) || is_quoted_string(value)),
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_media_types() {
        for ok in [
            OCI_MANIFEST,
            OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_V1_SIGNED,
            "application/vnd.cncf.helm.config.v1+json",
            "application/json; charset=utf-8",
            "text/plain;charset=\"utf-8\"",
            "application/x.foo_bar-1.0",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_control_characters_and_malformed_types() {
        for bad in [
            "",
            "application/vnd.oci.image.manifest.v1+json\u{1}x",
            "application/vnd.oci.image.manifest.v1+json\nx",
            "application",
            "/json",
            "application/",
            "application/js on",
            "appl ication/json",
            "application/json;",
            "application/json; charset",
            "application/json; charset=\"a\u{7f}\"",
            "application/json; a=b c",
            "application/jsön",
            "-app/json",
            "application/json/x",
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
        assert!(!is_valid(&format!("a/{}", "b".repeat(128))));
    }
}
