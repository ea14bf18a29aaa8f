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

/// What [`Registry::namespace_access`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceAccess {
    /// The user's role on the namespace.
    pub role: Option<Role>,
    /// Whether the namespace is public (read only when asked and the user
    /// has no role; `false` otherwise).
    pub public: bool,
}

impl Registry {
    /// The role of a user on a namespace.
    pub async fn role_of(&self, user: &str, ns: &str) -> Result<Option<Role>> {
        let user = user.to_owned();
        let ns = ns.to_owned();
        self.meta_point(move |r| r.role_of_blocking(&user, &ns))
            .await
    }

    /// [`Registry::role_of`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn role_of_blocking(&self, user: &str, ns: &str) -> Result<Option<Role>> {
        Ok(self
            .db()
            .get_json::<GrantRecord>(Table::Grants, &keys::grant(user, ns))?
            .map(|g| g.role))
    }

    /// What an access decision on namespace `ns` reads, in one gate call:
    /// the role of `user` there (when given) and, only when `want_public`
    /// and no role was found, whether the namespace is public (every role
    /// allows pulling, so the visibility matters only without one).
    pub async fn namespace_access(
        &self,
        user: Option<&str>,
        ns: &str,
        want_public: bool,
    ) -> Result<NamespaceAccess> {
        if user.is_none() && !want_public {
            return Ok(NamespaceAccess::default());
        }
        let (user, ns) = (user.map(str::to_owned), ns.to_owned());
        self.meta_point(move |r| {
            let role = match &user {
                Some(u) => r.role_of_blocking(u, &ns)?,
                None => None,
            };
            let public = want_public
                && role.is_none()
                && r.namespace_record_blocking(&ns)?
                    .is_some_and(|n| n.is_public);
            Ok(NamespaceAccess { role, public })
        })
        .await
    }

    /// Every grant, optionally only those on one namespace.
    pub async fn grants(&self, namespace: Option<&str>) -> Result<Vec<Grant>> {
        let namespace = namespace.map(str::to_owned);
        self.meta(move |r| r.grants_blocking(namespace.as_deref()))
            .await
    }

    /// [`Registry::grants`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn grants_blocking(&self, namespace: Option<&str>) -> Result<Vec<Grant>> {
        let mut out = Vec::new();
        for (k, v) in self.db().scan(Table::Grants, b"", None, usize::MAX)? {
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
        let rec = GrantRecord {
            role,
            granted_at: now_millis(),
            granted_by: by.to_string(),
        };
        let (ns_o, user_o, rec_o) = (ns.to_owned(), user.to_owned(), rec.clone());
        self.meta(move |r| {
            let (ns, user) = (ns_o.as_str(), user_o.as_str());
            r.namespace_blocking(ns)?;
            r.user_or_404(user)?;
            r.db().transact(|tx| {
                if tx.get(Table::Users, &keys::user(user))?.is_none() {
                    return Err(Error::NotFound {
                        what: format!("user {user}"),
                    }
                    .into());
                }
                meta::tx_put(tx, Table::Grants, &keys::grant(user, ns), &rec_o)
            })
        })
        .await?;
        self.durable().await?;
        Ok(Grant {
            user: user.to_string(),
            namespace: ns.to_string(),
            record: rec,
        })
    }

    /// Removes a user's role on a namespace.
    pub async fn revoke(&self, ns: &str, user: &str) -> Result<()> {
        let (ns, user) = (ns.to_owned(), user.to_owned());
        self.meta(move |r| {
            let key = keys::grant(&user, &ns);
            r.db().transact(|tx| {
                if tx.get(Table::Grants, &key)?.is_none() {
                    return Err(Error::NotFound {
                        what: format!("a role for {user} on namespace {ns}"),
                    }
                    .into());
                }
                tx.delete(Table::Grants, &key)
            })
        })
        .await?;
        self.durable().await
    }

    /// Removes every role granted on a namespace (when it is deleted, so
    /// that a namespace created later under the same name starts empty).
    pub async fn grants_drop_namespace(&self, ns: &str) -> Result<()> {
        let ns = ns.to_owned();
        let dropped = self
            .meta(move |r| {
                let rows: Vec<Vec<u8>> = r
                    .grants_blocking(Some(&ns))?
                    .iter()
                    .map(|g| keys::grant(&g.user, &ns))
                    .collect();
                if rows.is_empty() {
                    return Ok(false);
                }
                r.db().transact(|tx| {
                    for k in &rows {
                        tx.delete(Table::Grants, k)?;
                    }
                    Ok(())
                })?;
                Ok(true)
            })
            .await?;
        if !dropped {
            return Ok(());
        }
        self.durable().await
    }
}
