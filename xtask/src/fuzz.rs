//! `cargo xtask fuzz [SECONDS] [TARGET...]`: runs each libFuzzer target of fuzz/ (cargo-fuzz,
//! nightly) for SECONDS, starting from the committed corpus, and reports the executions. The
//! suite runs it briefly as a smoke test; run it long by hand. A crash fails the command and
//! names the input libFuzzer saved: fix the bug, then add the input to fuzz/regressions/TARGET/,
//! which `cargo test` replays on stable.

use crate::sh;
use std::path::Path;

pub const TARGETS: [&str; 14] = [
    "settings",
    "devspec",
    "uevent",
    "superblocks",
    "modules",
    "state",
    "keep_list",
    "report_json",
    "newc",
    "write_log",
    "verity",
    "signature",
    "verity_meta",
    "reconcile_walk",
];

pub fn main(root: &Path, seconds: u32, only: &[String]) -> Result<(), String> {
    let fuzz = root.join("fuzz");
    let targets: Vec<&str> = TARGETS.into_iter().filter(|t| only.is_empty() || only.iter().any(|o| o == t)).collect();
    if targets.is_empty() {
        return Err(format!("no such fuzz target; the targets are: {}", TARGETS.join(" ")));
    }
    // cargo-fuzz needs nightly; the product and the rest of the suite build on stable.
    let nightly = sh::cmd("cargo").args(["+nightly", "--version"]).output().is_ok_and(|o| o.status.success());
    if !nightly {
        println!("SKIPPED fuzz: no nightly toolchain (rustup toolchain install nightly); the corpus and crash inputs still run on stable in cargo test");
        return Ok(());
    }
    sh::run(sh::cmd("cargo").args(["+nightly", "fuzz", "build", "-O"]).current_dir(&fuzz))?;
    let mut failed = Vec::new();
    for t in targets {
        // New inputs go to a scratch corpus; the committed one stays as it is.
        let work = fuzz.join("target/corpus").join(t);
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let out = sh::cmd("cargo")
            .args(["+nightly", "fuzz", "run", "-O", t])
            .arg(&work)
            .arg(fuzz.join("corpus").join(t))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-timeout=10", "-rss_limit_mb=1024", "-max_len=65536", "-print_final_stats=1"])
            .current_dir(&fuzz)
            .output()
            .map_err(|e| format!("cargo fuzz: {e} (tests/setup.sh installs cargo-fuzz)"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let execs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map_or("?".into(), |n| n.trim().to_string());
        if out.status.success() {
            println!("PASS fuzz {t}: {execs} executions in {seconds} s, no crash");
        } else {
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            println!("FAIL fuzz {t} after {execs} executions:");
            for l in tail.into_iter().rev() {
                println!("  {l}");
            }
            failed.push(t);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzz targets crashed: {} (inputs in fuzz/artifacts/)", failed.join(", ")))
    }
}
