//! Command-line interface.

mod admin;
mod maintenance;
mod serve;
mod user;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

/// Berth: a self-hosted OCI container registry in one binary.
///
/// With no configuration `berth serve` listens on 127.0.0.1:5000 and keeps
/// everything under ./berth-data. Every configuration key can be set in a
/// TOML file (--config), overridden by an environment variable
/// BERTH_<SECTION>__<KEY> (e.g. BERTH_SERVER__ADDR=0.0.0.0:5000), and the
/// common ones by flags.
#[derive(Parser, Debug)]
#[command(name = "berth", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file (see config/ for examples).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format: human-readable text or one JSON object per line
    /// (overrides [log] format).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(flatten)]
    api: admin::ApiArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the registry server.
    Serve(serve::ServeArgs),
    /// Offline garbage collection: with the server stopped, delete every
    /// blob, manifest and upload nothing needs (mark and sweep).
    Gc(maintenance::GcArgs),
    /// Verify every blob's digest and size and the metadata's consistency;
    /// with --repair, remove dangling metadata.
    Fsck(maintenance::FsckArgs),
    /// Configuration utilities.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create the PostgreSQL schema or bring it up to this version, then
    /// exit (for operators who set metadata.migrate = false); nothing to do
    /// with sled.
    MigrateSchema,
    /// Copy the whole registry to other backends (sled and the disk,
    /// PostgreSQL and S3, in any direction): every blob, verified against
    /// its digest, then every metadata row. Both stopped; run it again to
    /// resume an interrupted copy (blobs already copied are kept).
    Migrate(maintenance::MigrateArgs),
    /// Namespaces: list, show, create, update, delete (management API client).
    #[command(subcommand)]
    Namespace(admin::NamespaceCmd),
    /// Repositories: list, show with tags and artifacts, delete.
    #[command(subcommand)]
    Repo(admin::RepoCmd),
    /// Artifacts: list, show, delete by digest.
    #[command(subcommand)]
    Artifact(admin::ArtifactCmd),
    /// Tags: list, delete.
    #[command(subcommand)]
    Tag(admin::TagCmd),
    /// Registry settings: show, change.
    #[command(subcommand)]
    Registry(admin::RegistryCmd),
    /// Webhooks: create, list, show, update, delete, test, deliveries,
    /// redeliver, rotate-secret (management API client).
    #[command(subcommand)]
    Webhook(webhook::WebhookCmd),
    /// Users: add (password from stdin or a prompt), passwd, list, delete,
    /// grant. Works on the data directory with the server stopped.
    #[command(subcommand)]
    User(user::UserCmd),
    /// Authentication: rotate the token-signing key, clear the subnet
    /// allow-list, create a scoped token. Server stopped.
    #[command(subcommand)]
    Auth(user::AuthCmd),
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Parse and validate a configuration file (with environment overrides
    /// applied) and print the effective configuration.
    Check {
        /// The TOML file to check.
        file: PathBuf,
    },
}

/// Entry point.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined by ": ". A store error names its cause
/// in its own message and also keeps it as its source (so programs can
/// inspect it); a cause whose text its parent already ends with is not
/// repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => {
            let cfg = Config::load(Some(&file))?;
            println!("{} is valid; effective configuration:\n", file.display());
            println!("{}", toml_string(&cfg));
            Ok(())
        }
        Command::MigrateSchema => {
            maintenance::migrate_schema(&Config::load(cli.config.as_deref())?)
        }
        Command::Migrate(args) => maintenance::migrate(
            cli.log_format.unwrap_or(crate::config::LogFormat::Text),
            args,
        ),
        Command::Gc(args) => maintenance::gc(Config::load(cli.config.as_deref())?, args),
        Command::Fsck(args) => maintenance::fsck(Config::load(cli.config.as_deref())?, args),
        Command::Namespace(c) => admin::namespace(&cli.api, c),
        Command::Repo(c) => admin::repo(&cli.api, c),
        Command::Artifact(c) => admin::artifact(&cli.api, c),
        Command::Tag(c) => admin::tag(&cli.api, c),
        Command::Registry(c) => admin::registry(&cli.api, c),
        Command::Webhook(c) => webhook::webhook(&cli.api, c),
        Command::User(c) => user::user(&Config::load(cli.config.as_deref())?, c),
        Command::Auth(c) => user::auth(&Config::load(cli.config.as_deref())?, c),
        Command::Serve(args) => {
            let mut cfg = Config::load(cli.config.as_deref())?;
            if let Some(f) = cli.log_format {
                cfg.log.format = f;
            }
            serve::run(cfg, args)
        }
    }
}

fn toml_string(cfg: &Config) -> String {
    // figment can produce TOML through serde; keep it dependency-free by
    // printing the JSON form, which is unambiguous.
    let mut v = serde_json::to_value(cfg).unwrap_or_default();
    // Secrets are configured, not shown.
    if let Some(s) = v.pointer_mut("/storage/secret_access_key") {
        if s.as_str().is_some_and(|s| !s.is_empty()) {
            *s = "<redacted>".into();
        }
    }
    if let Some(s) = v.pointer_mut("/metadata/url") {
        if let Some(url) = s.as_str() {
            *s = berth_store::redact_url(url).into();
        }
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Sets up `tracing` on stderr (stdout is reserved for the listening line
/// and command output).
pub(crate) fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

/// What a failure to open the store was doing, naming every part a
/// configuration can point elsewhere: the data directory and both backends.
pub(crate) fn opening(store: &berth_store::StoreConfig) -> String {
    format!(
        "opening the registry (data directory {}, {} metadata, {} object storage)",
        store.data_dir.display(),
        store.metadata.name(),
        store.objects.name()
    )
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "blob storage failed: {}", self.0)
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_named_in_its_parent_is_not_repeated() {
        let io = std::io::Error::other("disk full");
        let e = anyhow::Error::new(Wrapper(io)).context("pushing");
        assert_eq!(error_chain(&e), "pushing: blob storage failed: disk full");
        let plain = anyhow::Error::new(std::io::Error::other("gone")).context("reading x");
        assert_eq!(error_chain(&plain), "reading x: gone");
    }
}
