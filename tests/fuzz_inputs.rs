//! Every fuzz seed (fuzz/seeds/<target>/) and every saved crash input
//! (fuzz/regressions/<target>/) through the fuzz targets' checks, in the normal suite.

use std::path::Path;

use switchyard::fuzz_checks;

/// One fuzz target's property check.
type Check = fn(&[u8]);

fn run_dir(dir: &Path, check: Check) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let data = std::fs::read(e.path()).expect("read input");
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{} fails its check", e.path().display());
        n += 1;
    }
    n
}

#[test]
fn seeds_and_regressions_pass_their_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let targets: [(&str, Check); 6] = [
        ("newline_framing", fuzz_checks::newline_framing),
        ("decoder_limits", fuzz_checks::decoder_limits),
        ("sse_parse", fuzz_checks::sse_parse),
        ("envelope", fuzz_checks::envelope),
        ("http_request", fuzz_checks::http_request),
        ("config", fuzz_checks::config),
    ];
    for (name, check) in targets {
        let seeds = run_dir(&root.join("seeds").join(name), check);
        assert!(seeds > 0, "no seeds for {name}");
        run_dir(&root.join("regressions").join(name), check);
    }
}
