//! The fuzz targets' inputs on stable: every file of the committed corpus (fuzz/corpus/TARGET/)
//! and every crash input found so far (fuzz/regressions/TARGET/) goes through the same harness
//! the fuzzers run (fuzz/src/harness.rs). A crash found by `cargo xtask fuzz` is fixed, then its
//! input is added to fuzz/regressions/ so it can never come back.

use crate::harness;
use std::path::Path;

#[test]
fn corpus_and_crash_inputs_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    // Both folders must be there: a missing one would make this test pass on nothing.
    assert!(root.join("regressions").is_dir(), "fuzz/regressions/ is missing");
    let mut total = 0;
    for (name, run) in harness::TARGETS {
        let corpus = std::fs::read_dir(root.join("corpus").join(name)).map_or(0, |d| d.count());
        assert!(corpus > 0, "fuzz target {name} has no committed corpus (fuzz/corpus/{name}/)");
        for dir in ["corpus", "regressions"] {
            // A target without crash inputs has no folder under regressions/.
            let Ok(files) = std::fs::read_dir(root.join(dir).join(name)) else { continue };
            for f in files.flatten() {
                let data = std::fs::read(f.path()).unwrap();
                let outcome = std::panic::catch_unwind(|| run(&data));
                assert!(outcome.is_ok(), "fuzz target {name} fails on {}", f.path().display());
                total += 1;
            }
        }
    }
    assert!(total >= harness::TARGETS.len(), "only {total} inputs: the corpus is missing");
}

#[test]
fn every_fuzz_target_has_a_harness_function() {
    let toml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml")).unwrap();
    let bins: Vec<&str> = toml.lines().filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"')).collect();
    let mut names: Vec<&str> = harness::TARGETS.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    let mut bins: Vec<&str> = bins.into_iter().filter(|b| *b != "overlay-init-fuzz").collect();
    bins.sort_unstable();
    assert_eq!(bins, names);
}
