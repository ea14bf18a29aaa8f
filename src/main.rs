//! `berth`: a self-hosted OCI container registry.

mod cli;
mod config;

fn main() -> std::process::ExitCode {
    cli::main()
}
