//! Roles granted to users on namespaces.

use serde::{Deserialize, Serialize};

use super::invalid;
use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, Millis};
use crate::Registry;

/// A role on a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Pull.
    Reader,
    /// Pull and push.
    Writer,
    /// Pull, push, delete, and the namespace's settings and members.
    Admin,
}

impl Role {
    /// Lower-case name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            other => Err(invalid(
                "role",
                format!("{other:?} is not a role: reader, writer or admin"),
            )),
        }
    }
}

/// A role granted to a user on a namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantRecord {
    /// Role.
    pub role: Role,
    /// When granted.
    pub granted_at: Millis,
    /// Who granted it.
    #[serde(default)]
    pub granted_by: String,
}

/// A grant with its keys.
#[derive(Debug, Clone)]
pub struct Grant {
    /// User.
    pub user: String,
    /// Namespace.
    pub namespace: String,
    /// Record.
    pub record: GrantRecord,
}

impl Registry {
    /// The role of a user on a namespace.
    pub fn role_of(&self, user: &str, ns: &str) -> Result<Option<Role>> {
        Ok(self
            .meta()
            .get_json::<GrantRecord>(Table::Grants, &keys::grant(user, ns))?
            .map(|g| g.role))
    }

    /// Every grant, optionally only those on one namespace.
    pub fn grants(&self, namespace: Option<&str>) -> Result<Vec<Grant>> {
        let mut out = Vec::new();
        for (k, v) in self.meta().scan(Table::Grants, b"", None, usize::MAX)? {
            let Some((user, ns)) = keys::parse_grant(&k) else {
                continue;
            };
            if namespace.is_some_and(|n| n != ns) {
                continue;
            }
            out.push(Grant {
                user: user.to_string(),
                namespace: ns.to_string(),
                record: meta::decode(Table::Grants, &v)?,
            });
        }
        out.sort_by(|a, b| a.namespace.cmp(&b.namespace).then(a.user.cmp(&b.user)));
        Ok(out)
    }

    /// Grants (or changes) a user's role on an existing namespace.
    pub async fn grant(&self, ns: &str, user: &str, role: Role, by: &str) -> Result<Grant> {
        self.namespace(ns)?;
        self.user_or_404(user)?;
        let rec = GrantRecord {
            role,
            granted_at: now_millis(),
            granted_by: by.to_string(),
        };
        self.meta().transact(|tx| {
            if tx.get(Table::Users, &keys::user(user))?.is_none() {
                return Err(Error::NotFound {
                    what: format!("user {user}"),
                }
                .into());
            }
            meta::tx_put(tx, Table::Grants, &keys::grant(user, ns), &rec)
        })?;
        self.durable().await?;
        Ok(Grant {
            user: user.to_string(),
            namespace: ns.to_string(),
            record: rec,
        })
    }

    /// Removes a user's role on a namespace.
    pub async fn revoke(&self, ns: &str, user: &str) -> Result<()> {
        let key = keys::grant(user, ns);
        self.meta().transact(|tx| {
            if tx.get(Table::Grants, &key)?.is_none() {
                return Err(Error::NotFound {
                    what: format!("a role for {user} on namespace {ns}"),
                }
                .into());
            }
            tx.delete(Table::Grants, &key)
        })?;
        self.durable().await
    }

    /// Removes every role granted on a namespace (when it is deleted, so
    /// that a namespace created later under the same name starts empty).
    pub async fn grants_drop_namespace(&self, ns: &str) -> Result<()> {
        let rows: Vec<Vec<u8>> = self
            .grants(Some(ns))?
            .iter()
            .map(|g| keys::grant(&g.user, ns))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        self.meta().transact(|tx| {
            for k in &rows {
                tx.delete(Table::Grants, k)?;
            }
            Ok(())
        })?;
        self.durable().await
    }
}
