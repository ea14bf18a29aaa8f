//! Request checks of the management API that name the JSON field at
//! fault. The store keeps what it is given; every value a request can set
//! is checked here first, so a refused request changes nothing.

use berth_store::RegistrySettings as StoreSettings;

use super::dto::RetentionPolicy;
use super::Result;
use crate::auth::parse_cidr;
use crate::error::MgmtError;

/// Most CIDRs an allow-list may hold.
pub const MAX_ALLOW_LIST: usize = 25;

/// Most retention policies a namespace may have.
pub const MAX_POLICIES: usize = 20;

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn invalid(field: &str, reason: impl Into<String>) -> MgmtError {
    let reason = reason.into();
    MgmtError::invalid(field, format!("{field}: {reason}"))
}

/// Checks the settings a `PATCH /api/v1/registry` would leave; the error
/// names the first bad field.
pub(super) fn settings(s: &StoreSettings) -> Result<()> {
    if s.name.trim().is_empty() || s.name.len() > 128 {
        return Err(invalid("name", "must be 1 to 128 characters"));
    }
    if s.region.trim().is_empty() || s.region.len() > 64 {
        return Err(invalid("region", "must be 1 to 64 characters"));
    }
    if let Some(s) = &s.garbage_collection_schedule {
        if s.days.is_empty() {
            return Err(invalid(
                "garbage_collection_schedule.days",
                "name at least one weekday",
            ));
        }
        for d in &s.days {
            if !WEEKDAYS.contains(&d.as_str()) {
                return Err(invalid(
                    "garbage_collection_schedule.days",
                    format!("{d:?} is not one of {}", WEEKDAYS.join(", ")),
                ));
            }
        }
        let ok = s.time.len() == 5
            && s.time.as_bytes()[2] == b':'
            && s.time[..2].parse::<u8>().is_ok_and(|h| h < 24)
            && s.time[3..].parse::<u8>().is_ok_and(|m| m < 60)
            && s.time
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 2 || b.is_ascii_digit());
        if !ok {
            return Err(invalid(
                "garbage_collection_schedule.time",
                format!("{:?} is not HH:MM (UTC, 00:00 to 23:59)", s.time),
            ));
        }
    }
    if s.api_subnet_allow_list.len() > MAX_ALLOW_LIST {
        return Err(invalid(
            "api_subnet_allow_list",
            format!(
                "at most {MAX_ALLOW_LIST} CIDRs, got {}",
                s.api_subnet_allow_list.len()
            ),
        ));
    }
    for c in &s.api_subnet_allow_list {
        if parse_cidr(c).is_none() {
            return Err(invalid(
                "api_subnet_allow_list",
                format!("{c:?} is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32"),
            ));
        }
    }
    Ok(())
}

/// Checks a namespace's new retention policies; the error names the first
/// bad field.
pub(super) fn policies(policies: &[RetentionPolicy]) -> Result<()> {
    if policies.len() > MAX_POLICIES {
        return Err(invalid(
            "policies",
            format!("at most {MAX_POLICIES} policies per namespace"),
        ));
    }
    for p in policies {
        if p.repositories.is_empty() || p.repositories.len() > 255 {
            return Err(invalid("repositories", "a glob of 1 to 255 characters"));
        }
        if p.keep_last.is_none()
            && p.older_than_days.is_none()
            && p.untagged_older_than_days.is_none()
        {
            return Err(invalid(
                "keep_last",
                "a policy needs keep_last, older_than_days or untagged_older_than_days",
            ));
        }
        for (field, pattern) in [
            ("include_tags", &p.include_tags),
            ("exclude_tags", &p.exclude_tags),
        ] {
            if let Some(r) = pattern {
                berth_store::tag_pattern(r)
                    .map_err(|e| invalid(field, format!("not a valid regular expression: {e}")))?;
            }
        }
    }
    Ok(())
}

/// Longest repository glob or tag pattern of a webhook.
pub const MAX_WEBHOOK_PATTERN: usize = 256;

/// A webhook's `url`: http or https, no credentials, bounded; with
/// private targets refused, no private address literal.
pub(super) fn webhook_url(url: &str, allow_private: bool) -> Result<()> {
    crate::webhooks::target::check_url(url, allow_private)
        .map(|_| ())
        .map_err(|e| invalid("url", e))
}

/// A webhook's `events`: at least one, each known; duplicates dropped.
pub(super) fn webhook_events(events: &[String]) -> Result<Vec<berth_store::EventKind>> {
    use berth_store::EventKind;
    if events.is_empty() {
        return Err(invalid("events", "name at least one event type"));
    }
    let mut out = Vec::new();
    for e in events {
        let Some(k) = EventKind::parse(e) else {
            let known: Vec<&str> = EventKind::SUBSCRIBABLE.iter().map(|k| k.as_str()).collect();
            return Err(invalid(
                "events",
                format!("{e:?} is not one of {}", known.join(", ")),
            ));
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// A webhook's `repositories` glob (`*` matches any run of characters,
/// over full repository names) and `tags` regular expression (over whole
/// tags, compiled as the store compiles it); empty means no filter.
pub(super) fn webhook_filters(repositories: Option<&str>, tags: Option<&str>) -> Result<()> {
    for (field, v) in [("repositories", repositories), ("tags", tags)] {
        if v.is_some_and(|v| v.len() > MAX_WEBHOOK_PATTERN) {
            return Err(invalid(
                field,
                format!("at most {MAX_WEBHOOK_PATTERN} characters"),
            ));
        }
    }
    if let Some(g) = repositories {
        if g.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid(
                "repositories",
                "a glob has no spaces or control characters",
            ));
        }
    }
    if let Some(t) = tags.filter(|t| !t.is_empty()) {
        berth_store::tag_pattern(t)
            .map_err(|e| invalid("tags", format!("not a valid regular expression: {e}")))?;
    }
    Ok(())
}

/// A webhook's `format`.
pub(super) fn webhook_format(f: &str) -> Result<berth_store::PayloadFormat> {
    match f {
        "cloudevents" => Ok(berth_store::PayloadFormat::CloudEvents),
        "distribution" => Ok(berth_store::PayloadFormat::Distribution),
        _ => Err(invalid(
            "format",
            format!("{f:?} is not one of cloudevents, distribution"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<()>) -> String {
        r.expect_err("refused")
            .field()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn settings_errors_name_the_field() {
        let ok = StoreSettings::default();
        assert!(settings(&ok).is_ok());
        let with = |f: &dyn Fn(&mut StoreSettings)| {
            let mut s = StoreSettings::default();
            f(&mut s);
            field(settings(&s))
        };
        assert_eq!(with(&|s| s.name = " ".into()), "name");
        assert_eq!(with(&|s| s.region = "r".repeat(65)), "region");
        let sched = |days: &[&str], time: &str| berth_store::GcSchedule {
            days: days.iter().map(|d| d.to_string()).collect(),
            time: time.into(),
        };
        assert_eq!(
            with(&|s| s.garbage_collection_schedule = Some(sched(&[], "01:00"))),
            "garbage_collection_schedule.days"
        );
        assert_eq!(
            with(&|s| s.garbage_collection_schedule = Some(sched(&["funday"], "01:00"))),
            "garbage_collection_schedule.days"
        );
        for t in ["24:00", "1:00", "01:60", "0a:00", "01-00"] {
            assert_eq!(
                with(&|s| s.garbage_collection_schedule = Some(sched(&["monday"], t))),
                "garbage_collection_schedule.time",
                "{t}"
            );
        }
        assert_eq!(
            with(&|s| s.api_subnet_allow_list = vec!["10.0.0.0/33".into()]),
            "api_subnet_allow_list"
        );
        assert_eq!(
            with(&|s| s.api_subnet_allow_list = vec!["10.0.0.1/32".into(); MAX_ALLOW_LIST + 1]),
            "api_subnet_allow_list"
        );
    }

    #[test]
    fn policy_errors_name_the_field() {
        let p = |keep: Option<u32>, include: Option<&str>| RetentionPolicy {
            repositories: "*".into(),
            keep_last: keep,
            older_than_days: None,
            include_tags: include.map(str::to_string),
            exclude_tags: None,
            untagged_older_than_days: None,
        };
        assert!(policies(&[p(Some(1), Some("v[0-9]+"))]).is_ok());
        assert_eq!(
            field(policies(&[p(Some(1), Some("v[0-9"))])),
            "include_tags"
        );
        assert_eq!(field(policies(&[p(None, None)])), "keep_last");
        let many: Vec<_> = (0..=MAX_POLICIES).map(|_| p(Some(1), None)).collect();
        assert_eq!(field(policies(&many)), "policies");
    }
}
