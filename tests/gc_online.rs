//! Black-box test of online garbage collection under concurrent pushes and
//! repository deletes: every acknowledged image still pulls, and what the
//! runs free is exactly what nothing needs.

mod common;

use common::gc::*;
use common::gc_load;

/// Online GC with grace 0 running back to back while 8 threads push and
/// delete repositories for 30 s: every acknowledged image of a surviving
/// repository pulls with verified digests, and fsck is clean.
#[test]
fn online_gc_under_concurrent_pushes_and_deletes() {
    let mut reg = Reg::start("grace_period_secs = 0");
    let bases = [reg.base()];
    let log = gc_load::run(&bases, 8, 30);
    gc_load::check(&log, &bases);

    reg.stop();
    let (code, report, raw) = fsck(&reg.data(), &[]);
    assert_eq!(code, Some(0), "fsck after the load: {raw}");
    assert!(problems(&report).is_empty(), "fsck problems: {raw}");
    assert!(n(&report, "blobs_checked") > 0, "{raw}");
}
