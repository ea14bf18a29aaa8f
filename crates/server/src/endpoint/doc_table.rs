//! `docs/ARCHITECTURE.md` lists every endpoint with its required access:
//! this checks each row against the parser, and that no endpoint is
//! missing from it.

use std::collections::BTreeSet;

use http::Method;

use super::Endpoint;

const DOC: &str = include_str!("../../../../docs/ARCHITECTURE.md");

/// Concrete values for the table's placeholders.
const VALUES: [(&str, &str); 10] = [
    (
        "<digest>",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    ("<invalid-reference>", "-not-a-tag"),
    ("<reference>", "latest"),
    ("<name>", "acme/web"),
    ("<namespace>", "acme"),
    ("<repository>", "team/web"),
    ("<tag>", "v1"),
    ("<user>", "alice"),
    ("<id>", "abc123"),
    ("<delivery>", "7"),
];

struct Row {
    method: Method,
    path: String,
    endpoint: String,
    access: String,
}

/// The rows of the table under `## Endpoints`.
fn rows() -> Vec<Row> {
    let section = DOC
        .split("\n## ")
        .find(|s| s.starts_with("Endpoints\n"))
        .expect("docs/ARCHITECTURE.md has an Endpoints section");
    let mut rows = Vec::new();
    let mut header_seen = false;
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().replace(['\\', '`'], ""))
            .collect();
        if !header_seen {
            assert_eq!(
                cells,
                ["Method", "Path", "Endpoint", "Required access"],
                "the table's header"
            );
            header_seen = true;
            continue;
        }
        if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
            continue;
        }
        assert_eq!(cells.len(), 4, "{line}");
        rows.push(Row {
            method: cells[0].parse().expect("a method"),
            path: cells[1].clone(),
            endpoint: cells[2].clone(),
            access: cells[3].clone(),
        });
    }
    rows
}

#[test]
fn every_row_parses_to_its_endpoint_with_its_access() {
    let rows = rows();
    assert!(rows.len() > 50, "only {} rows", rows.len());
    for row in &rows {
        let mut path = row.path.clone();
        for (k, v) in VALUES {
            path = path.replace(k, v);
        }
        assert!(!path.contains('<'), "unknown placeholder in {}", row.path);
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path, None),
        };
        let e = Endpoint::parse(&row.method, &path, query.as_deref())
            .unwrap_or_else(|e| panic!("{} {} does not parse: {e:?}", row.method, row.path));
        assert_eq!(e.route_label(), row.endpoint, "{} {}", row.method, row.path);
        assert_eq!(
            e.required_access().summary(),
            row.access,
            "{} {}",
            row.method,
            row.path
        );
    }
}

#[test]
fn every_endpoint_is_in_the_table() {
    let listed: BTreeSet<String> = rows().into_iter().map(|r| r.endpoint).collect();
    for label in Endpoint::ROUTE_LABELS {
        assert!(
            listed.contains(*label),
            "{label} is missing from docs/ARCHITECTURE.md"
        );
    }
    assert_eq!(listed.len(), Endpoint::ROUTE_LABELS.len());
}

#[test]
fn a_known_path_with_another_method_is_refused() {
    for (m, path) in [
        (Method::POST, "/v2/acme/web/tags/list"),
        (Method::POST, "/healthz"),
        (Method::DELETE, "/auth/token"),
        (Method::DELETE, "/api/v1/me"),
        (Method::PUT, "/api/v1/usage/history"),
    ] {
        assert!(Endpoint::parse(&m, path, None).is_err(), "{m} {path}");
    }
}
