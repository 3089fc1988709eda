//! The cost of the kernel hand-over (`oinit.kexec`), beside the same boot without it: slot a on
//! the board's kernel (no hand-over) against slot b on its own kernel (bookworm-backports 6.12),
//! both good, both with `oinit.kexec=1`, on the disks of the e2e scenario. The second kernel's
//! clock starts again at zero, so the hand-over boot is the sum of what each kernel measured:
//! stage one to the hand-over (its load included), then the second kernel's start to the real
//! init. The relocation between the two (copying the segments, the jump) is not on any guest
//! clock and is left out.

use crate::board::Board;
use crate::e2e::harness::{Ctx, Needs};
use crate::e2e::kexec;
use std::path::Path;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Seconds in a dmesg line's `[    1.234567]` prefix, as milliseconds.
fn stamp_ms(line: &str) -> Option<f64> {
    let open = line.find('[')?;
    let close = line[open..].find(']')? + open;
    line[open + 1..close].trim().parse::<f64>().ok().map(|s| s * 1000.0)
}

/// The last kernel's "Run /init" and the real init's first line, in ms from that kernel's start.
fn to_real_init(console: &str) -> Option<(f64, f64)> {
    let lines: Vec<&str> = console.lines().filter_map(|l| l.split_once("OI-DMESG: ").map(|(_, d)| d)).collect();
    let at = |text: &str| lines.iter().find(|l| l.contains(text)).and_then(|l| stamp_ms(l));
    Some((at("Run /init")?, at("oi-test: real init")?))
}

/// Stage one's milliseconds before the load and the load's, from its hand-over line.
fn stage_one(console: &str) -> Option<(f64, f64)> {
    let line = console.lines().find(|l| l.contains("handing over to its own kernel after "))?;
    let num = |key: &str| line.split(key).nth(1)?.split(' ').next()?.parse::<f64>().ok();
    Some((num("kernel after ")?, num("the load took ")?))
}

pub fn main(root: &Path, runs: usize, boards: &[String]) -> Result<(), String> {
    let mut rows = String::new();
    for name in boards {
        let board = Board::load(root, name)?;
        if let Some(why) = Needs::Kexec.unmet(&board) {
            println!("bench-kexec: {name} skipped: {why}");
            continue;
        }
        let ctx = Ctx::build(root, &board)?;
        let (kb, initrd_b) = kexec::b_kernel(&ctx)?;
        let vmlinuz = kb.kernel_dir.join("vmlinuz");
        let (plain, handed) = (
            kexec::disk(&ctx, "bench-kexec-a", &kb, &vmlinuz, &initrd_b)?,
            kexec::disk(&ctx, "bench-kexec-b", &kb, &vmlinuz, &initrd_b)?,
        );
        let boot = |disk: &Path, extra: &str, log: &str| {
            ctx.boot(disk, &kexec::settings(&ctx, &format!("oinit.watchdog=none {extra}")), log)
        };
        // Both slots good: no try is spent and each boot goes the same way.
        boot(&plain, "oitest=mark-good", "bench-kexec-a-first")?;
        boot(&handed, "oitest=mark-good,rollback", "bench-kexec-b-first")?;
        boot(&handed, "oitest=mark-good", "bench-kexec-b-second")?;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..runs {
            let x = boot(&plain, "oitest=dmesg", &format!("bench-kexec-a-{i}"))?;
            a.push(to_real_init(&x.console).ok_or(format!("{name}: slot a boot {i} has no timing lines"))?);
            let y = boot(&handed, "oitest=dmesg", &format!("bench-kexec-b-{i}"))?;
            let (s1, load) = stage_one(&y.console).ok_or(format!("{name}: slot b boot {i} did not hand over"))?;
            let (run2, real2) =
                to_real_init(&y.console).ok_or(format!("{name}: slot b boot {i} has no timing lines"))?;
            b.push([s1, load, run2, real2]);
        }
        let col = |i: usize| median(b.iter().map(|x| x[i]).collect());
        let plain_total = median(a.iter().map(|x| x.1).collect());
        let (s1, load, k2, real2) = (col(0), col(1), col(2), col(3));
        let total = s1 + load + real2;
        rows.push_str(&format!(
            "| {name} | {:.0} | {s1:.0} | {load:.0} | {k2:.0} | {real2:.0} | {total:.0} | {:+.0} |\n",
            plain_total,
            total - plain_total
        ));
    }
    let table = format!(
        "median of {runs} boots each (ms; slot a on {}, no hand-over; slot b handed over to 6.12)\n\n\
         | board | slot a: kernel start → real init | slot b: stage one to the load | the load | second kernel: start → \"Run /init\" | → real init | slot b in all | hand-over adds |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n{rows}",
        "the board's kernel"
    );
    println!("{table}");
    std::fs::write(root.join("target/bench-kexec.md"), table).map_err(|e| e.to_string())
}
