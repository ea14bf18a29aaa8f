//! `berth`: a self-hosted OCI container registry.

mod cli;
mod config;

fn main() -> std::process::ExitCode {
    // The process-wide TLS crypto provider for HTTPS clients (the
    // management subcommands); a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli::main()
}
