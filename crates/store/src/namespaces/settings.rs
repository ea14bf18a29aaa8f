//! Registry-wide settings: one JSON document in the `settings` table
//! (key `registry`), with its validation.
//!
//! Persisted records (these settings, retention policies, every record in
//! `crate::records`) are read leniently: a field this binary does not know
//! (written by a newer one) is ignored and a missing one (written by an
//! older one) takes its default, so upgrades and rollbacks within one
//! database format keep opening. Request bodies are strict; they are the
//! server's own types.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table, TxResult, Txn};
use crate::Registry;

/// A garbage-collection schedule: days of the week and a UTC time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GcSchedule {
    /// Weekday names, lower case (`monday` ... `sunday`).
    pub days: Vec<String>,
    /// `HH:MM`, UTC.
    pub time: String,
}

/// Registry-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistrySettings {
    /// Display name.
    pub name: String,
    /// Region label reported on namespaces.
    pub region: String,
    /// When garbage collection runs; `None` = never automatically.
    pub garbage_collection_schedule: Option<GcSchedule>,
    /// CIDRs allowed to reach the API; empty = everyone.
    pub api_subnet_allow_list: Vec<String>,
    /// Feature switches.
    pub features: Features,
}

/// Feature switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Features {
    /// Vulnerability scanning (recorded; no scanner yet).
    pub vulnerability_scanning: Toggle,
}

/// An on/off switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Toggle {
    /// On or off.
    pub enabled: bool,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            name: "berth".into(),
            region: "local".into(),
            garbage_collection_schedule: None,
            api_subnet_allow_list: Vec::new(),
            features: Features::default(),
        }
    }
}

/// Most CIDRs an allow-list may hold.
pub const MAX_ALLOW_LIST: usize = 25;

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The canonical form of a CIDR: a bare address is `/32` (IPv4) or `/128`
/// (IPv6), and host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn normalize_cidr(s: &str) -> Option<String> {
    let (ip, len) = parse_cidr(s)?;
    let net = match ip {
        std::net::IpAddr::V4(a) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            std::net::IpAddr::V4((u32::from(a) & mask).into())
        }
        std::net::IpAddr::V6(a) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            std::net::IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    Some(format!("{net}/{len}"))
}

/// Validates an IPv4 or IPv6 CIDR such as `10.0.0.0/8` or `2001:db8::/32`;
/// a bare address means `/32` or `/128`.
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    if !s.contains('/') {
        let ip: std::net::IpAddr = s.parse().ok()?;
        return Some((ip, if ip.is_ipv4() { 32 } else { 128 }));
    }
    let (ip, len) = s.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

impl RegistrySettings {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.len() > 128 {
            return Err(invalid("name", "must be 1 to 128 characters"));
        }
        if self.region.trim().is_empty() || self.region.len() > 64 {
            return Err(invalid("region", "must be 1 to 64 characters"));
        }
        if let Some(s) = &self.garbage_collection_schedule {
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
        if self.api_subnet_allow_list.len() > MAX_ALLOW_LIST {
            return Err(invalid(
                "api_subnet_allow_list",
                format!(
                    "at most {MAX_ALLOW_LIST} CIDRs, got {}",
                    self.api_subnet_allow_list.len()
                ),
            ));
        }
        for c in &self.api_subnet_allow_list {
            if parse_cidr(c).is_none() {
                return Err(invalid(
                    "api_subnet_allow_list",
                    format!("{c:?} is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32"),
                ));
            }
        }
        Ok(())
    }
}

impl Registry {
    /// Registry settings (defaults until first changed).
    pub async fn settings(&self) -> Result<RegistrySettings> {
        self.meta_point(move |r| r.settings_blocking()).await
    }

    /// [`Registry::settings`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn settings_blocking(&self) -> Result<RegistrySettings> {
        Ok(self
            .db()
            .get_json(Table::Settings, keys::SETTINGS)?
            .unwrap_or_default())
    }

    /// Replaces the settings after validating them; allow-list entries are
    /// stored in canonical form (see [`normalize_cidr`]).
    pub async fn settings_put(&self, s: &RegistrySettings) -> Result<()> {
        s.validate()?;
        let mut s = s.clone();
        s.api_subnet_allow_list = s
            .api_subnet_allow_list
            .iter()
            .map(|c| normalize_cidr(c).unwrap_or_else(|| c.clone()))
            .collect();
        self.meta(move |r| {
            r.db().transact(|tx: &dyn Txn| -> TxResult<()> {
                meta::tx_put(tx, Table::Settings, keys::SETTINGS, &s)
            })
        })
        .await?;
        self.durable().await
    }
}
