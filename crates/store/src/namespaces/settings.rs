//! Registry-wide settings: one JSON document in the `settings` table
//! (key `registry`). Requests are checked by the server before they
//! reach [`Registry::settings_put`].
//!
//! Persisted records (these settings, retention policies, every record in
//! `crate::records`) are read leniently: a field this binary does not know
//! (written by a newer one) is ignored and a missing one (written by an
//! older one) takes its default, so upgrades and rollbacks within one
//! database format keep opening. Request bodies are strict; they are the
//! server's own types.

use serde::{Deserialize, Serialize};

use crate::error::Result;
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

    /// Replaces the settings. The server has checked and normalised them
    /// (the allow-list's CIDRs, the schedule); the store keeps what it is
    /// given.
    pub async fn settings_put(&self, s: &RegistrySettings) -> Result<()> {
        let s = s.clone();
        self.meta(move |r| {
            r.db().transact(|tx: &dyn Txn| -> TxResult<()> {
                meta::tx_put(tx, Table::Settings, keys::SETTINGS, &s)
            })
        })
        .await?;
        self.durable().await
    }
}
