//! Offline administration of users and authentication, directly on the
//! data directory (the server must be stopped: the metadata database
//! allows one process). With the server running, use the management API
//! (`/api/v1/users`, `/api/v1/tokens`, `/api/v1/signing-key`).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_store::{Action, Registry, TokenScope};
use clap::Subcommand;

use crate::config::Config;

/// `berth user ...`
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user. The password is read from standard input (one line)
    /// or, on a terminal, prompted for twice.
    Add {
        /// User name (lower-case letters, digits, '.', '_', '-').
        name: String,
        /// Make the user a registry administrator.
        #[arg(long)]
        admin: bool,
        /// Data directory (overrides [storage] data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Set a user's password (read like `add`).
    Passwd {
        /// User name.
        name: String,
        /// Data directory (overrides [storage] data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// List users.
    List {
        /// Data directory (overrides [storage] data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Delete a user and their roles.
    Delete {
        /// User name.
        name: String,
        /// Data directory (overrides [storage] data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Give a user a role on a namespace (reader, writer, admin).
    Grant {
        /// User name.
        name: String,
        /// Namespace.
        namespace: String,
        /// reader, writer or admin.
        role: String,
        /// Data directory (overrides [storage] data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// `berth auth ...`
#[derive(Subcommand, Debug)]
pub enum AuthCmd {
    /// Replace the key that signs bearer tokens; tokens it signed keep
    /// working until they expire.
    RotateKey {
        /// Data directory (overrides [storage] data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Empty the subnet allow-list (after locking yourself out).
    ClearAllowList {
        /// Data directory (overrides [storage] data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Create a scoped token and print its secret (shown once).
    CreateToken {
        /// Display name.
        name: String,
        /// Scope as PATTERN:ACTIONS, e.g. 'acme/*:pull,push' (repeat for more;
        /// actions: pull, push, delete, manage).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime in days (default: no expiry).
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Data directory (overrides [storage] data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Multi-threaded: the store's gates block a worker while a database
    // server answers, which needs a runtime with workers to spare.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn open(cfg: &Config, data_dir: Option<PathBuf>) -> anyhow::Result<Registry> {
    let dir = data_dir.unwrap_or_else(|| cfg.storage.data_dir.clone());
    let mut store = cfg.store();
    store.data_dir = dir.clone();
    store.gc_scheduler = false;
    let opening = super::opening(&store);
    Registry::open(store)
        .await
        .with_context(|| format!("{opening} (stop the server first, or use the management API)"))
}

/// Reads a password: one line from standard input, or a double prompt on
/// a terminal. Never echoed, never logged.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("password: ")?;
        let b = rpassword::prompt_password("again: ")?;
        if a != b {
            bail!("the passwords differ");
        }
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// Runs `berth user ...`.
pub fn user(cfg: &Config, cmd: UserCmd) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async move {
        match cmd {
            UserCmd::Add {
                name,
                admin,
                data_dir,
            } => {
                berth_store::validate_user_name(&name)?;
                let pw = read_password()?;
                let reg = open(cfg, data_dir).await?;
                reg.user_create(&name, &pw, admin).await?;
                reg.flush().await?;
                println!(
                    "user {name} created{}",
                    if admin {
                        " (registry administrator)"
                    } else {
                        ""
                    }
                );
            }
            UserCmd::Passwd { name, data_dir } => {
                let pw = read_password()?;
                let reg = open(cfg, data_dir).await?;
                reg.user_set_password(&name, &pw).await?;
                reg.flush().await?;
                println!("password of {name} changed");
            }
            UserCmd::List { data_dir } => {
                let reg = open(cfg, data_dir).await?;
                println!("NAME  ADMIN");
                for u in reg.users().await? {
                    println!("{}  {}", u.name, u.admin);
                }
            }
            UserCmd::Delete { name, data_dir } => {
                let reg = open(cfg, data_dir).await?;
                reg.user_delete(&name).await?;
                reg.flush().await?;
                println!("user {name} deleted");
            }
            UserCmd::Grant {
                name,
                namespace,
                role,
                data_dir,
            } => {
                let reg = open(cfg, data_dir).await?;
                let role: berth_store::Role = role.parse()?;
                reg.grant(&namespace, &name, role, "cli").await?;
                reg.flush().await?;
                println!("{name} is {} on {namespace}", role.as_str());
            }
        }
        Ok(())
    })
}

fn parse_scope(s: &str) -> anyhow::Result<TokenScope> {
    let (pattern, actions) = s
        .rsplit_once(':')
        .with_context(|| format!("scope {s:?} is not PATTERN:ACTIONS, e.g. 'acme/*:pull,push'"))?;
    let actions = actions
        .split(',')
        .map(|a| match a.trim() {
            "pull" => Ok(Action::Pull),
            "push" => Ok(Action::Push),
            "delete" => Ok(Action::Delete),
            "manage" => Ok(Action::Manage),
            other => bail!("{other:?} is not an action: pull, push, delete, manage"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(TokenScope {
        repository: pattern.to_string(),
        actions,
    })
}

/// Runs `berth auth ...`.
pub fn auth(cfg: &Config, cmd: AuthCmd) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async move {
        match cmd {
            AuthCmd::RotateKey { data_dir } => {
                let reg = open(cfg, data_dir).await?;
                let k = reg.signing_key_rotate().await?;
                reg.flush().await?;
                println!("signing key rotated; new key id {}", k.current.kid);
            }
            AuthCmd::ClearAllowList { data_dir } => {
                let reg = open(cfg, data_dir).await?;
                let mut s = reg.settings().await?;
                s.api_subnet_allow_list.clear();
                reg.settings_put(&s).await?;
                reg.flush().await?;
                println!("subnet allow-list cleared: every address may connect");
            }
            AuthCmd::CreateToken {
                name,
                scopes,
                expires_in_days,
                data_dir,
            } => {
                let scopes = scopes
                    .iter()
                    .map(|s| parse_scope(s))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let expires_at = expires_in_days.map(|d| {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    now + i64::from(d) * 86_400_000
                });
                let reg = open(cfg, data_dir).await?;
                let (t, secret) = reg.token_create(&name, scopes, expires_at, "cli").await?;
                reg.flush().await?;
                eprintln!(
                    "token {} ({name}) created; its secret is shown only now:",
                    t.id
                );
                println!("{secret}");
            }
        }
        Ok(())
    })
}
