//! Runs the project's distribution-spec conformance suite against a freshly
//! started `berth serve`.

mod common;

#[test]
fn distribution_spec_conformance() {
    let (server, _dir) = common::Server::start();
    let report = berth_conformance::run(server.url());
    report.print();
    assert_eq!(
        report.failed(),
        0,
        "{} of {} conformance checks failed (see the FAIL lines above)",
        report.failed(),
        report.results.len()
    );
}
