//! What a receiver gets: the body in the webhook's format, and its
//! signature.

use berth_store::{Event, EventKind, PayloadFormat};
use serde_json::{json, Value};

/// Content type of CloudEvents in structured mode.
pub const CLOUDEVENTS_TYPE: &str = "application/cloudevents+json";
/// Content type of the distribution notification envelope.
pub const DISTRIBUTION_TYPE: &str = "application/vnd.docker.distribution.events.v2+json";

/// `X-Berth-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-berth-signature-256";
/// The event id, for de-duplication.
pub const EVENT_ID_HEADER: &str = "x-berth-event-id";
/// The delivery (the event's sequence number within the webhook).
pub const DELIVERY_ID_HEADER: &str = "x-berth-delivery-id";

/// The header value signing `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `host/ns/repo@digest`, the reference a client pulls.
fn pull_reference(host: &str, e: &Event) -> Option<String> {
    Some(format!(
        "{host}/{}@{}",
        e.repository.as_ref()?,
        e.digest.as_ref()?
    ))
}

fn subject(e: &Event) -> String {
    match (&e.repository, &e.tag, &e.digest) {
        (Some(r), Some(t), _) => format!("{r}:{t}"),
        (Some(r), None, Some(d)) => format!("{r}@{d}"),
        (Some(r), None, None) => r.clone(),
        (None, ..) => e.namespace.clone(),
    }
}

/// The body and its content type.
pub fn body(format: PayloadFormat, e: &Event, host: &str) -> (Vec<u8>, &'static str) {
    let v = match format {
        PayloadFormat::CloudEvents => cloudevent(e, host),
        PayloadFormat::Distribution => distribution(e, host),
    };
    let ct = match format {
        PayloadFormat::CloudEvents => CLOUDEVENTS_TYPE,
        PayloadFormat::Distribution => DISTRIBUTION_TYPE,
    };
    (serde_json::to_vec(&v).expect("JSON values serialise"), ct)
}

/// CloudEvents 1.0, structured mode.
fn cloudevent(e: &Event, host: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": e.id,
        "source": format!("//{host}/{}", e.namespace),
        "type": format!("io.berth.{}", e.kind.as_str()),
        "time": rfc3339(e.at),
        "subject": subject(e),
        "datacontenttype": "application/json",
        "data": {
            "sequence": e.seq,
            "namespace": e.namespace,
            "repository": e.repository,
            "tag": e.tag,
            "tags": e.tags,
            "digest": e.digest,
            "previousDigest": e.previous_digest,
            "mediaType": e.media_type,
            "artifactType": e.artifact_type,
            "size": e.size,
            "actor": e.actor,
            "clientAddress": e.client_addr,
            "requestId": e.request_id,
            "reference": pull_reference(host, e),
        }
    })
}

/// The CNCF distribution notification envelope, as the distribution
/// registry sends it, so that receivers written for it work unchanged.
fn distribution(e: &Event, host: &str) -> Value {
    let action = match e.kind {
        EventKind::ArtifactPushed | EventKind::TagUpdated => "push",
        EventKind::ArtifactPulled => "pull",
        EventKind::ArtifactDeleted
        | EventKind::TagDeleted
        | EventKind::RepositoryDeleted
        | EventKind::NamespaceDeleted => "delete",
        EventKind::Test => "test",
    };
    let repo = e.repository.clone().unwrap_or_else(|| e.namespace.clone());
    let mut target = json!({ "repository": repo });
    if let Some(d) = &e.digest {
        target["digest"] = json!(d);
        target["url"] = json!(format!("http://{host}/v2/{repo}/manifests/{d}"));
    }
    if let Some(mt) = &e.media_type {
        target["mediaType"] = json!(mt);
    }
    if let Some(size) = e.size {
        target["size"] = json!(size);
        target["length"] = json!(size);
    }
    if let Some(t) = &e.tag {
        target["tag"] = json!(t);
    }
    json!({
        "events": [{
            "id": e.id,
            "timestamp": rfc3339(e.at),
            "action": action,
            "target": target,
            "request": {
                "id": e.request_id.clone().unwrap_or_default(),
                "addr": e.client_addr.clone().unwrap_or_default(),
                "host": host,
            },
            "actor": { "name": e.actor.clone().unwrap_or_default() },
            "source": { "addr": host },
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_of_rfc4231_case_2() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
