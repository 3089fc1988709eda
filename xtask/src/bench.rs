//! The benchmark: boots each QEMU board several times and reports medians of the time from the
//! kernel's "Run /init" to the exec of the real init, split by stage and into the init's own
//! code versus the kernel's work inside its syscalls, with the binary size and peak memory.
//! Figures go into the README by hand, with the date and machine; no test asserts timings.

use crate::board::Board;
use crate::e2e::Ctx;
use std::collections::BTreeMap;
use std::path::Path;

/// One boot's figures in microseconds, read from kernel timestamps in dmesg.
#[derive(Debug, Default)]
struct Sample {
    total_us: f64,
    stages: BTreeMap<String, (f64, f64)>,
    switch_us: f64,
    vmhwm_kb: f64,
}

fn timestamp(line: &str) -> Option<f64> {
    let open = line.find('[')?;
    let close = line[open..].find(']')? + open;
    line[open + 1..close].trim().parse::<f64>().ok().map(|s| s * 1e6)
}

fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn parse(console: &str) -> Option<Sample> {
    let lines: Vec<&str> = console.lines().filter_map(|l| l.split_once("OI-DMESG: ").map(|(_, d)| d)).collect();
    let run_init = lines.iter().find(|l| l.contains("Run /init")).and_then(|l| timestamp(l))?;
    let exec = lines.iter().find(|l| l.contains("overlay-init: exec "))?;
    let mut s =
        Sample { total_us: timestamp(exec)? - run_init, vmhwm_kb: number_after(exec, "VmHWM ")?, ..Sample::default() };
    let mut last_stage_end = run_init;
    for l in lines.iter().filter(|l| l.contains("overlay-init: stage ")) {
        let name = l.split("stage ").nth(1)?.split_whitespace().next()?.to_string();
        let total = number_after(l, "done in ")?;
        let kernel = number_after(l, "us (")?;
        s.stages.insert(name, (total, kernel));
        last_stage_end = timestamp(l)?;
    }
    s.switch_us = timestamp(exec)? - last_stage_end;
    Some(s)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn ms(us: f64) -> String {
    format!("{:.0}", us / 1000.0)
}

pub fn main(root: &Path, runs: usize) -> Result<(), String> {
    let mut out = String::new();
    for name in ["qemu-x86_64", "qemu-aarch64"] {
        let board = Board::load(root, name)?;
        let ctx = Ctx::build(root, &board)?;
        let disk = ctx.fresh_disk("bench")?;
        let mut samples = Vec::new();
        for i in 0..runs {
            let boot = ctx.boot(&disk, "oitest=dmesg", &format!("bench-{i}"))?;
            samples.push(parse(&boot.console).ok_or(format!("{name}: no timing lines in boot {i}"))?);
        }
        let size = std::fs::metadata(root.join("target").join(&board.rust_target).join("release/overlay-init"))
            .map_err(|e| e.to_string())?
            .len();
        out.push_str(&format!("\n### {name}: median of {runs} boots (ms, from the kernel's \"Run /init\")\n\n"));
        out.push_str("| stage | total | in the kernel (syscalls) | init's own code |\n|---|---:|---:|---:|\n");
        let names: Vec<String> = samples[0].stages.keys().cloned().collect();
        let mut order: Vec<(String, f64)> = names.iter().map(|n| (n.clone(), samples[0].stages[n].0)).collect();
        order.sort_by_key(|(n, _)| {
            ["early", "modules", "devices", "mounts", "switch-check"].iter().position(|s| s == n).unwrap_or(99)
        });
        let (mut sum_total, mut sum_kernel) = (0.0, 0.0);
        for (n, _) in &order {
            let t = median(samples.iter().map(|s| s.stages.get(n).map_or(0.0, |v| v.0)).collect());
            let k = median(samples.iter().map(|s| s.stages.get(n).map_or(0.0, |v| v.1)).collect());
            sum_total += t;
            sum_kernel += k;
            out.push_str(&format!("| {n} | {} | {} | {} |\n", ms(t), ms(k), ms(t - k)));
        }
        let sw = median(samples.iter().map(|s| s.switch_us).collect());
        out.push_str(&format!("| switch (move mounts, free initramfs, chroot) | {} | | |\n", ms(sw)));
        let total = median(samples.iter().map(|s| s.total_us).collect());
        out.push_str(&format!(
            "| **Run /init → exec real init** | **{}** | {} (stages) | {} (stages) |\n",
            ms(total),
            ms(sum_kernel),
            ms(sum_total - sum_kernel)
        ));
        out.push_str(&format!(
            "\nstripped static binary ({}): {} bytes ({:.0} KiB); init peak memory VmHWM: {:.0} kB\n",
            board.rust_target,
            size,
            size as f64 / 1024.0,
            median(samples.iter().map(|s| s.vmhwm_kb).collect())
        ));
    }
    println!("{out}");
    std::fs::write(root.join("target/bench.md"), &out).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dmesg_lines() {
        let console = "OI-DMESG: [    1.000000] Run /init as init process
OI-DMESG: [    1.100000] overlay-init: stage early done in 100000 us (0 us in the kernel)
OI-DMESG: [    1.500000] overlay-init: stage modules done in 400000 us (390000 us in the kernel)
OI-DMESG: [    1.600000] overlay-init: exec /sbin/init  (peak memory VmHWM 1234 kB)
";
        let s = parse(console).unwrap();
        assert_eq!(s.total_us.round(), 600000.0);
        assert_eq!(s.stages["modules"], (400000.0, 390000.0));
        assert_eq!(s.switch_us.round(), 100000.0);
        assert_eq!(s.vmhwm_kb, 1234.0);
    }
}
