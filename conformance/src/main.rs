//! `berth-conformance`: runs the distribution-spec conformance suite against a
//! live registry and exits 1 when any check fails.
//!
//! Usage: `berth-conformance --url http://127.0.0.1:5000` (or set
//! `BERTH_CONFORMANCE_URL`).

use std::process::ExitCode;

const USAGE: &str = "usage: berth-conformance --url URL   (or set BERTH_CONFORMANCE_URL)";

fn main() -> ExitCode {
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => match args.next() {
                Some(u) => url = Some(u),
                None => {
                    eprintln!("--url needs a value\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => match other.strip_prefix("--url=") {
                Some(u) => url = Some(u.to_string()),
                None => {
                    eprintln!("unexpected argument {other:?}\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
        }
    }
    let url = match url.or_else(|| std::env::var("BERTH_CONFORMANCE_URL").ok()) {
        Some(u) if !u.is_empty() => u,
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let report = berth_conformance::run(&url);
    report.print();
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
