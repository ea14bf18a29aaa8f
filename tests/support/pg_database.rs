//! One PostgreSQL database per data directory, for the suites that run on
//! PostgreSQL (`tests/backends/run.sh`). Shared by the store's suites and
//! the black-box suites through `#[path]`: one database serves one Berth
//! process, and a reopen of the same directory must find its rows.

use std::path::Path;
use std::process::Command;

/// The URL of `data_dir`'s database on the server of `admin` (a URL
/// ending in `/<database>`), created with `psql` on first use.
pub fn database_for(data_dir: &Path, admin: &str) -> String {
    let name: String = data_dir
        .file_name()
        .expect("a temporary directory has a name")
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let db = format!("t{name}");
    let out = Command::new("psql")
        .arg(admin)
        .args(["-q", "-c", &format!("CREATE DATABASE {db}")])
        .output()
        .expect("run psql");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("already exists"),
        "CREATE DATABASE {db}: {err}"
    );
    let (base, _) = admin
        .rsplit_once('/')
        .expect("the admin URL ends in /<database>");
    format!("{base}/{db}")
}
