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
    for name in crate::QEMU_BOARDS {
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

/// The boot time a factory reset adds with a large upper (`files` files), against deleting that
/// upper in place (timed by the background deleter, which does exactly that work).
pub fn reset(root: &Path, files: usize, boards: &[String]) -> Result<(), String> {
    let mut out = String::new();
    for name in boards {
        let board = Board::load(root, name)?;
        let ctx = Ctx::build(root, &board)?;
        let disk = big_upper_disk(&ctx, files)?;
        // The guest waits for the deletion, longer than the board's watchdog would allow.
        let ab = "oinit.a=PARTLABEL=rootfs oinit.b=PARTLABEL=rootfs_b oinit.watchdog=none oitest=dmesg,wait-trash";
        // The first boot creates the state record and records the image; the second is the baseline.
        ctx.boot(&disk, ab, "bench-reset-first")?;
        let plain = ctx.boot(&disk, ab, "bench-reset-0")?;
        let reset = ctx.boot(&disk, &format!("{ab} oinit.factoryreset"), "bench-reset-1")?;
        let mounts = |b: &crate::qemu::Boot| parse(&b.console).and_then(|s| s.stages.get("mounts").map(|v| v.0));
        let (t0, t1) = (
            mounts(&plain).ok_or("no timing in the plain boot")?,
            mounts(&reset).ok_or("no timing in the reset boot")?,
        );
        let deleted = reset
            .console
            .lines()
            .find_map(|l| l.split_once("old uppers deleted: ").map(|(_, r)| r.trim().to_string()))
            .ok_or("the background deletion never finished")?;
        out.push_str(&format!(
            "| {name} | {files} | {} ms | {} ms | {:+.0} ms | {deleted} |\n",
            ms(t0),
            ms(t1),
            (t1 - t0) / 1000.0
        ));
    }
    let table = format!("| board | files in the upper | mounts stage, no reset | with factory reset | reset adds | deleting in place (off the boot path) |\n|---|---:|---:|---:|---:|---|\n{out}");
    println!("{table}");
    std::fs::write(root.join("target/bench-reset.md"), table).map_err(|e| e.to_string())
}

/// A disk like the board's, with a 400 MiB data partition whose slot-a upper holds `files` files.
fn big_upper_disk(ctx: &Ctx<'_>, files: usize) -> Result<std::path::PathBuf, String> {
    use crate::{image, sh};
    let out = ctx.board.out_dir(ctx.root);
    let content = out.join("bench-content");
    let _ = std::fs::remove_dir_all(&content);
    // 1000 files a directory: mke2fs -d fills a directory in linear time per entry.
    let many = content.join("overlay/a/upper/var/lib/many");
    for i in 0..files {
        let dir = many.join((i / 1000).to_string());
        if i % 1000 == 0 {
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(dir.join(i.to_string()), b"").map_err(|e| e.to_string())?;
    }
    let disk = out.join("bench-reset.img");
    let _ = std::fs::remove_file(&disk);
    sh::run(sh::cmd("truncate").args(["-s", "460M"]).arg(&disk))?;
    let layout = "label: gpt\nfirst-lba: 2048\nstart=2048, size=24MiB, name=rootfs\nsize=400MiB, name=userdata\nsize=24MiB, name=rootfs_b\n";
    sh::run_stdin(sh::cmd("sfdisk").args(["--quiet", "--no-reread", "--no-tell-kernel"]).arg(&disk), layout)?;
    let parts = image::partitions(&disk)?;
    let sqfs = std::fs::read(&ctx.sqfs).map_err(|e| e.to_string())?;
    for p in ["rootfs", "rootfs_b"] {
        image::write_at(&disk, image::part(&parts, p)?.start, &sqfs)?;
    }
    let data = image::part(&parts, "userdata")?;
    let img = out.join("bench-userdata.ext4");
    let _ = std::fs::remove_file(&img);
    let inodes = (files + 10_000).to_string();
    sh::run(
        sh::cmd("mkfs.ext4")
            .args(["-q", "-F", "-L", "userdata", "-N", &inodes, "-d"])
            .arg(&content)
            .arg(&img)
            .arg(format!("{}k", data.size / 1024)),
    )?;
    image::write_at(&disk, data.start, &std::fs::read(&img).map_err(|e| e.to_string())?)?;
    let _ = std::fs::remove_file(&img);
    let _ = std::fs::remove_dir_all(&content);
    Ok(disk)
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
