//! The benchmark: boots each QEMU board several times with overlay-init and, back to back on the
//! same kernel and an identical disk (its data partition's journal clean before every boot), with
//! two yardsticks doing the same job: a hand-written busybox initramfs (initramfs/baseline/init)
//! and the floor (initramfs/floor.rs: the job with the kernel's syscalls alone, which no init
//! doing all of it can beat on one CPU). It reports medians from the kernel's start to its
//! "Run /init" (unpacking the initramfs included), from there to the real init's first line, and
//! the whole, with the ratios to the baseline; then overlay-init's stages split into the kernel's
//! work inside its syscalls and the rest, with the CPU time the kernel's own accounting gives the
//! init in user mode (its code) and in the kernel, the binary size, peak memory and the initramfs
//! size per compression. Figures go into docs/benchmark.md with the date and machine; no test
//! asserts timings.

use crate::board::Board;
use crate::e2e::harness::Ctx;
use crate::image::Hello;
use overlay_init::kmod::ModIndex;
use std::collections::BTreeMap;
use std::path::Path;

/// One stage of one boot, in microseconds: its time, the syscalls booked as the kernel's work,
/// and the CPU time the init used in user mode and in the kernel (0 from an init that does not
/// log them).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Stage {
    total: f64,
    kernel: f64,
    user: f64,
    system: f64,
}

/// One boot's figures in microseconds, read from kernel timestamps in dmesg.
#[derive(Debug, Default)]
struct Sample {
    total_us: f64,
    stages: BTreeMap<String, Stage>,
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
        let stage = Stage {
            total: number_after(l, "done in ")?,
            kernel: number_after(l, "us (")?,
            user: number_after(l, "cpu ").unwrap_or(0.0),
            system: number_after(l, "us user, ").unwrap_or(0.0),
        };
        s.stages.insert(name, stage);
        last_stage_end = timestamp(l)?;
    }
    s.switch_us = timestamp(exec)? - last_stage_end;
    Some(s)
}

/// A span between the two moments of a boot.
type Span = fn(&(f64, f64)) -> f64;

/// When the kernel ran /init and when the real init printed its first line, in µs from the
/// kernel's start.
fn moments(console: &str) -> Option<(f64, f64)> {
    let lines: Vec<&str> = console.lines().filter_map(|l| l.split_once("OI-DMESG: ").map(|(_, d)| d)).collect();
    let at = |text: &str| lines.iter().find(|l| l.contains(text)).and_then(|l| timestamp(l));
    Some((at("Run /init")?, at("oi-test: real init")?))
}

/// The two yardsticks overlay-init is booted against.
#[derive(Clone, Copy, PartialEq)]
enum Yardstick {
    /// Static busybox running initramfs/baseline/init: the classic hand-written initramfs.
    Baseline,
    /// initramfs/floor.rs: the same job with the kernel's syscalls alone, the least time for it.
    Floor,
}

/// The board's modules in dependency order, as a script author lists them: of each request's
/// alternatives the first, unless one of its modules is in `fails` (it did not load on this
/// board, see `failed_insmods`).
fn yardstick_order(index: &ModIndex, requests: &[String], fails: &[String]) -> Result<Vec<String>, String> {
    let mut order: Vec<String> = Vec::new();
    for step in index.plan(requests)? {
        let mut chains = step.chains.into_iter();
        let first = chains.clone().next().unwrap_or_default();
        let chain = chains.find(|c| !c.iter().any(|ko| fails.contains(ko))).unwrap_or(first);
        for ko in chain {
            if !order.contains(&ko) {
                order.push(ko);
            }
        }
    }
    Ok(order)
}

/// The modules busybox's insmod could not load in a baseline boot (an alternative the CPU cannot
/// run: crc32c-intel without SSE4.2 fails with ENODEV, and the ext4 data partition then does not
/// mount), as paths under /lib/modules.
fn failed_insmods(console: &str) -> Vec<String> {
    let failed = console.lines().filter_map(|l| l.split_once("can't insert '/lib/modules/")?.1.split_once('\''));
    failed.map(|(ko, _)| ko.to_string()).collect()
}

/// Err when the yardstick's boot did not do the whole job (a mount failed): its times would
/// flatter it.
fn check_whole_job(kind: &str, console: &str) -> Result<(), String> {
    match console.lines().find(|l| l.contains("mount: mounting") || l.contains("can't insert")) {
        Some(l) => Err(format!("the {kind} boot did not do the whole job: {l}")),
        None => Ok(()),
    }
}

/// The yardsticks leave the data partition mounted at power-off: it lies under their overlay root
/// and nothing of theirs is left to release it, so their next boot would replay its ext4 journal,
/// while overlay-init's way back (`/run/initramfs/shutdown`) unmounts it and boots on a clean one.
/// So that every boot of the bench starts from the same state, the journal is replayed on the
/// host (`e2fsck -p` on a copy of the partition) after each yardstick boot. A real device with
/// the script pays that replay at every boot; the bench leaves it out of the comparison.
fn replay_data_journal(disk: &Path, devices: &str) -> Result<(), String> {
    let name = devices
        .split_whitespace()
        .find_map(|w| w.strip_prefix("oinit.data=/dev/"))
        .ok_or(format!("bench_devices {devices:?} names no oinit.data=/dev/NAME"))?;
    let number = partition_number(name).ok_or(format!("{name}: no partition number at its end"))?;
    let parts = crate::image::partitions(disk)?;
    let part = parts.iter().find(|p| p.number == number).ok_or(format!("{}: no partition {number}", disk.display()))?;
    // In the superblock at byte 1024: the magic 0xef53 at 0x38, the incompatible features at 0x60
    // (0x4: the journal needs recovery).
    let sb = crate::image::read_at(disk, part.start + 1024, 0x64)?;
    if sb[0x38..0x3a] != [0x53, 0xef] || sb[0x60] & 0x4 == 0 {
        return Ok(());
    }
    let copy = disk.with_extension("data.ext4");
    std::fs::write(&copy, crate::image::read_at(disk, part.start, part.size)?).map_err(|e| e.to_string())?;
    let fsck = crate::sh::cmd("e2fsck").arg("-p").arg(&copy).output().map_err(|e| format!("e2fsck: {e}"))?;
    // 0: clean after the replay, 1: errors corrected; anything else leaves the disk as it was.
    if !matches!(fsck.status.code(), Some(0 | 1)) {
        return Err(format!(
            "e2fsck -p {} (partition {number} of {}): {}\n{}",
            copy.display(),
            disk.display(),
            fsck.status,
            String::from_utf8_lossy(&fsck.stdout).trim_end()
        ));
    }
    crate::image::write_at(disk, part.start, &std::fs::read(&copy).map_err(|e| e.to_string())?)?;
    std::fs::remove_file(&copy).map_err(|e| e.to_string())
}

/// The number at the end of a kernel partition name: 2 of `vda2`, 4 of `mmcblk2p4`.
fn partition_number(name: &str) -> Option<u32> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name[name.len() - digits..].parse().ok()
}

/// The yardstick's initramfs: its /init, and `order` (the modules, from `yardstick_order`) in
/// /etc/modules.order.
fn yardstick_initramfs(ctx: &Ctx<'_>, kind: Yardstick, order: &[String]) -> Result<std::path::PathBuf, String> {
    let b = ctx.board;
    let out = b.out_dir(ctx.root);
    let modules_order = out.join("yardstick-modules.order");
    std::fs::write(&modules_order, order.join("\n") + "\n").map_err(|e| e.to_string())?;
    let mut l = String::from("dir /bin 0755 0 0\ndir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\n");
    for d in ["/etc", "/lib", "/lib/modules", "/proc", "/sys", "/newroot"] {
        l.push_str(&format!("dir {d} 0755 0 0\n"));
    }
    let (init, name) = match kind {
        Yardstick::Baseline => {
            l.push_str(&format!("file /bin/busybox {} 0755 0 0\n", b.kernel_dir.join("busybox").display()));
            for app in ["sh", "mount", "insmod", "usleep", "mkdir", "switch_root", "cat", "echo"] {
                l.push_str(&format!("slink /bin/{app} busybox 0777 0 0\n"));
            }
            (ctx.root.join("initramfs/baseline/init"), "baseline")
        }
        Yardstick::Floor => {
            // The baseline's script makes these with `mkdir -p`.
            l.push_str("dir /lower 0755 0 0\ndir /data 0755 0 0\n");
            (crate::image::build_floor(ctx.root, b)?, "floor")
        }
    };
    l.push_str(&format!("file /init {} 0755 0 0\n", init.display()));
    l.push_str(&format!("file /etc/modules.order {} 0644 0 0\n", modules_order.display()));
    let mut dirs = std::collections::BTreeSet::new();
    for ko in order {
        let parts: Vec<&str> = ko.split('/').collect();
        for i in 1..parts.len() {
            dirs.insert(parts[..i].join("/"));
        }
    }
    let mut dirs: Vec<String> = dirs.into_iter().collect();
    dirs.sort_by_key(|d| d.matches('/').count());
    for d in dirs {
        l.push_str(&format!("dir /lib/modules/{d} 0755 0 0\n"));
    }
    for ko in order {
        l.push_str(&format!("file /lib/modules/{ko} {} 0644 0 0\n", b.module_dir().join(ko).display()));
    }
    let list = out.join(format!("{name}.list"));
    std::fs::write(&list, l).map_err(|e| e.to_string())?;
    let cpio = out.join(format!("{name}.cpio.gz"));
    initramfs::build(&list, &cpio)?;
    Ok(cpio)
}

/// The initramfs at `gz` (gzip -9) written again each way the kernel can unpack it:
/// (compression, file, bytes), uncompressed first.
fn compressions(gz: &Path) -> Result<Vec<(&'static str, std::path::PathBuf, u64)>, String> {
    use crate::sh;
    let raw = sh::output_bytes(sh::cmd("gzip").arg("-dc").arg(gz))?;
    let cpio = gz.with_extension("none");
    std::fs::write(&cpio, &raw).map_err(|e| e.to_string())?;
    let gz_len = std::fs::metadata(gz).map_err(|e| e.to_string())?.len();
    let mut out = vec![("none", cpio.clone(), raw.len() as u64), ("gzip -9", gz.to_path_buf(), gz_len)];
    for (name, ext, args) in [
        ("zstd -19", "zst", &["-19", "-c"][..]),
        ("xz", "xz", &["-9", "--check=crc32", "-c"][..]),
        ("lz4 -l", "lz4", &["-l", "-9", "-c"][..]),
    ] {
        let tool = name.split(' ').next().unwrap_or(name);
        if let Ok(b) = sh::output_bytes(sh::cmd(tool).args(args).arg(&cpio)) {
            let file = gz.with_extension(ext);
            std::fs::write(&file, &b).map_err(|e| e.to_string())?;
            out.push((name, file, b.len() as u64));
        }
    }
    Ok(out)
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

pub fn main(root: &Path, runs: usize, boards: &[String]) -> Result<(), String> {
    let mut out = String::new();
    for spec in boards {
        let (name, vcpus) = board_and_vcpus(spec)?;
        let board = Board::load(root, name)?;
        // The boards' own command line (`quiet`): the init's info lines stay in the kernel log,
        // from which the figures are read.
        // An @N entry keeps its logs beside those of the same board on one vCPU, not over them.
        let work = vcpus.map_or("e2e".to_string(), |n| format!("e2e-{n}vcpu"));
        let ctx = Ctx { show_info: false, vcpus, ..Ctx::build_in(root, &board, &work)? };
        let disk = ctx.fresh_disk("bench")?;
        let baseline_disk = ctx.fresh_disk("bench-baseline")?;
        // The same devices named the same way for all; no watchdog (the yardsticks arm none).
        let append = &format!("{} oitest=dmesg", board.bench_devices);
        // A script's author tries the script on the board and replaces a module that does not
        // load by the next alternative: one probe boot does the same.
        let mut baseline = yardstick_initramfs(
            &ctx,
            Yardstick::Baseline,
            &yardstick_order(&board.modules_index, &board.modules(), &[])?,
        )?;
        let probe = ctx.boot_with(&baseline, &baseline_disk, append, "bench-baseline-probe")?;
        replay_data_journal(&baseline_disk, &board.bench_devices)?;
        let order = yardstick_order(&board.modules_index, &board.modules(), &failed_insmods(&probe.console))?;
        baseline = yardstick_initramfs(&ctx, Yardstick::Baseline, &order)?;
        let floor = yardstick_initramfs(&ctx, Yardstick::Floor, &order)?;
        let floor_disk = ctx.fresh_disk("bench-floor")?;
        let mut samples = Vec::new();
        let (mut ours, mut theirs, mut floors) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            let boot = ctx.boot(&disk, &format!("{append} oinit.watchdog=none"), &format!("bench-{i}"))?;
            samples.push(parse(&boot.console).ok_or(format!("{name}: no timing lines in boot {i}"))?);
            ours.push(moments(&boot.console).ok_or(format!("{name}: no real init line in boot {i}"))?);
            for (initrd, disk, kind, v) in
                [(&baseline, &baseline_disk, "baseline", &mut theirs), (&floor, &floor_disk, "floor", &mut floors)]
            {
                let boot = ctx.boot_with(initrd, disk, append, &format!("bench-{kind}-{i}"))?;
                check_whole_job(kind, &boot.console)?;
                replay_data_journal(disk, &board.bench_devices)?;
                v.push(moments(&boot.console).ok_or(format!("{name}: {kind} boot {i} did not reach the real init"))?);
            }
        }
        let m = |v: &[(f64, f64)], f: Span| median(v.iter().map(f).collect());
        let cpus = vcpus.map(|n| n.to_string()).or(std::env::var("OI_SMP").ok()).unwrap_or_else(|| "1".into());
        out.push_str(&format!(
            "\n### {name}, {cpus} vCPU: overlay-init against the busybox baseline and the floor, median of {runs} \
             boots each (ms)\n\n"
        ));
        out.push_str(
            "| from → to | overlay-init | baseline | ratio | floor (kernel syscalls alone) | its ratio |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        let rows: [(&str, Span); 3] = [
            ("kernel start → \"Run /init\" (initramfs unpacked)", |x| x.0),
            ("\"Run /init\" → real init's first line", |x| x.1 - x.0),
            ("**kernel start → real init**", |x| x.1),
        ];
        for (label, f) in rows {
            let (a, b, c) = (m(&ours, f), m(&theirs, f), m(&floors, f));
            out.push_str(&format!("| {label} | {} | {} | {:.2} | {} | {:.2} |\n", ms(a), ms(b), a / b, ms(c), c / b));
        }
        out.push_str(
            "\nThe floor does the baseline's job with its syscalls alone (initramfs/floor.rs): on one vCPU no \
             init doing the whole job goes below its ratio on this kernel.\n",
        );
        if vcpus.is_none() {
            compression_table(&ctx, &baseline, &disk, append, runs, &mut out)?;
        }
        let size = std::fs::metadata(root.join("target").join(&board.rust_target).join("release/overlay-init"))
            .map_err(|e| e.to_string())?
            .len();
        out.push_str(&format!(
            "\n#### {spec}: overlay-init's stages, median of {runs} boots (ms, from \"Run /init\")\n\n"
        ));
        out.push_str(
            "| stage | total | in the kernel (booked syscalls) | init's own code (the rest) | CPU: user mode | CPU: kernel (system) |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        let names: Vec<String> = samples[0].stages.keys().cloned().collect();
        let mut order: Vec<(String, f64)> = names.iter().map(|n| (n.clone(), samples[0].stages[n].total)).collect();
        order.sort_by_key(|(n, _)| {
            ["early", "modules", "devices", "modules+devices", "mounts", "switch-check"]
                .iter()
                .position(|s| s == n)
                .unwrap_or(99)
        });
        let (mut sum_total, mut sum_kernel) = (0.0, 0.0);
        for (n, _) in &order {
            let med = |f: fn(&Stage) -> f64| median(samples.iter().map(|s| s.stages.get(n).map_or(0.0, f)).collect());
            let (t, k) = (med(|v| v.total), med(|v| v.kernel));
            sum_total += t;
            sum_kernel += k;
            let (u, sys) = (med(|v| v.user), med(|v| v.system));
            out.push_str(&format!("| {n} | {} | {} | {} | {} | {} |\n", ms(t), ms(k), ms(t - k), ms(u), ms(sys)));
        }
        let sw = median(samples.iter().map(|s| s.switch_us).collect());
        out.push_str(&format!("| switch (move mounts, free initramfs, chroot) | {} | | | | |\n", ms(sw)));
        let total = median(samples.iter().map(|s| s.total_us).collect());
        // The medians of each boot's sums, not the sums of the medians.
        let summed = |f: fn(&Stage) -> f64| median(samples.iter().map(|s| s.stages.values().map(f).sum()).collect());
        out.push_str(&format!(
            "| **Run /init → exec real init** | **{}** | {} (stages) | {} (stages) | {} (stages) | {} (stages) |\n",
            ms(total),
            ms(sum_kernel),
            ms(sum_total - sum_kernel),
            ms(summed(|v| v.user)),
            ms(summed(|v| v.system))
        ));
        out.push_str(&format!(
            "\n{}; init peak memory VmHWM: {:.0} kB\n",
            sizes(root, &board, size)?,
            median(samples.iter().map(|s| s.vmhwm_kb).collect())
        ));
    }
    println!("{out}");
    std::fs::write(root.join("target/bench.md"), &out).map_err(|e| e.to_string())?;
    Ok(())
}

/// The board's initramfs packed each way the kernel can unpack it, booted (runs / 2, at least 3
/// times each) and timed; `baseline` is the baseline's initramfs, for its size.
fn compression_table(
    ctx: &Ctx<'_>,
    baseline: &Path,
    disk: &Path,
    append: &str,
    runs: usize,
    out: &mut String,
) -> Result<(), String> {
    let baseline_gz = std::fs::metadata(baseline).map_err(|e| e.to_string())?.len();
    out.push_str(&format!(
        "\nThe initramfs per compression (overlay-init; the baseline's is {baseline_gz} bytes with gzip -9), \
         median of {} boots each (ms):\n\n| compression | bytes | kernel start → \"Run /init\" | → real init |\n|---|---:|---:|---:|\n",
        (runs / 2).max(3)
    ));
    let mut fastest: Option<(&str, f64)> = None;
    for (comp, file, bytes) in compressions(&ctx.initrd)? {
        let append = format!("{append} oinit.watchdog=none");
        let mut v = Vec::new();
        for i in 0..(runs / 2).max(3) {
            // A kernel built without this decompressor never reaches the real init.
            let boot = ctx.boot_with(&file, disk, &append, &format!("bench-comp-{i}"));
            v.extend(boot.ok().and_then(|b| moments(&b.console)));
        }
        if v.is_empty() {
            out.push_str(&format!("| {comp} | {bytes} | not unpacked by this kernel | |\n"));
        } else {
            let total = median(v.iter().map(|x| x.1).collect());
            if fastest.is_none_or(|(_, t)| total < t) {
                fastest = Some((comp, total));
            }
            out.push_str(&format!(
                "| {comp} | {bytes} | {} | {} |\n",
                ms(median(v.iter().map(|x| x.0).collect())),
                ms(total)
            ));
        }
    }
    // The boards pack gzip -9: every kernel unpacks it. Say when the measurement disagrees.
    if let Some((comp, total)) = fastest {
        out.push_str(&format!("\nFastest from kernel start to the real init: {comp} ({} ms); ", ms(total)));
        out.push_str(if comp == "gzip -9" {
            "the board's gzip -9 is the fastest.\n"
        } else {
            "the board packs gzip -9: switch if this holds over more runs and the kernel has its decompressor.\n"
        });
    }
    Ok(())
}

/// `BOARD` or `BOARD@N`: the board, and the vCPUs its guests get (`OI_SMP`, else one, without `@N`).
fn board_and_vcpus(spec: &str) -> Result<(&str, Option<u32>), String> {
    match spec.split_once('@') {
        None => Ok((spec, None)),
        Some((name, n)) => match n.parse::<u32>() {
            Ok(n) if n >= 1 => Ok((name, Some(n))),
            _ => Err(format!("{spec}: after the @ comes the number of vCPUs (imx8@4)")),
        },
    }
}

/// The stripped binaries of `board`'s target: the full build (`full` bytes), the boot path alone,
/// the two hello worlds built the same way, and the boot path's size over each: over std's, the
/// measure issue 24 set; over the one on the boot path's own runtime, our code and crates.
fn sizes(root: &Path, board: &Board, full: u64) -> Result<String, String> {
    let len = |p: std::path::PathBuf| std::fs::metadata(p).map_err(|e| e.to_string()).map(|m| m.len());
    let boot_only = len(crate::image::build_init_only(root, board)?)?;
    let hello = len(crate::image::build_hello(root, board, Hello::Std)?)?;
    let hello_rt = len(crate::image::build_hello(root, board, Hello::OwnRuntime)?)?;
    Ok(format!(
        "stripped static binary ({}): {full} bytes ({:.0} KiB); without the userspace commands \
         (`--no-default-features`, built without std): {boot_only} bytes ({:.0} KiB); a std hello world \
         built the same way: {hello} bytes, the boot path {} bytes over it; a hello world on the boot \
         path's runtime without std: {hello_rt} bytes, so our own code and crates weigh {} bytes",
        board.rust_target,
        full as f64 / 1024.0,
        boot_only as f64 / 1024.0,
        boot_only.saturating_sub(hello),
        boot_only.saturating_sub(hello_rt),
    ))
}

/// `cargo xtask size [BOARD...]`: the binary sizes of `sizes`, without booting anything.
pub fn size(root: &Path, boards: &[String]) -> Result<(), String> {
    let names = if boards.is_empty() { vec!["qemu-x86_64".to_string()] } else { boards.to_vec() };
    for name in names {
        let board = Board::load(root, &name)?;
        let full = std::fs::metadata(crate::image::build_init(root, &board)?).map_err(|e| e.to_string())?.len();
        println!("{name}: {}", sizes(root, &board, full)?);
    }
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
        let mounts =
            |b: &crate::e2e::qemu::Boot| parse(&b.console).and_then(|s| s.stages.get("mounts").map(|v| v.total));
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
    fn partition_numbers_from_kernel_names() {
        assert_eq!(partition_number("vda2"), Some(2));
        assert_eq!(partition_number("mmcblk2p4"), Some(4));
        assert_eq!(partition_number("mmcblk3p12"), Some(12));
        assert_eq!(partition_number("sda"), None);
    }

    #[test]
    fn a_board_may_carry_its_vcpus() {
        assert_eq!(board_and_vcpus("imx8"), Ok(("imx8", None)));
        assert_eq!(board_and_vcpus("imx6@4"), Ok(("imx6", Some(4))));
        for bad in ["imx6@", "imx6@0", "imx6@four"] {
            assert!(board_and_vcpus(bad).unwrap_err().contains("number of vCPUs"), "{bad}");
        }
    }

    #[test]
    fn parses_dmesg_lines() {
        let console = "OI-DMESG: [    1.000000] Run /init as init process
OI-DMESG: [    1.100000] overlay-init: stage early done in 100000 us (0 us in the kernel)
OI-DMESG: [    1.500000] overlay-init: stage modules done in 400000 us (390000 us in the kernel; cpu 8000 us user, 380000 us system)
OI-DMESG: [    1.600000] overlay-init: exec /sbin/init  (peak memory VmHWM 1234 kB)
";
        let s = parse(console).unwrap();
        assert_eq!(s.total_us.round(), 600000.0);
        let modules = Stage { total: 400000.0, kernel: 390000.0, user: 8000.0, system: 380000.0 };
        assert_eq!(s.stages["modules"], modules);
        // An init from before the CPU times: they read as 0.
        assert_eq!(s.stages["early"], Stage { total: 100000.0, ..Stage::default() });
        assert_eq!(s.switch_us.round(), 100000.0);
        assert_eq!(s.vmhwm_kb, 1234.0);
    }

    /// A baseline boot on a CPU without SSE4.2, as busybox and the kernel printed it.
    const NO_CRC32C: &str = "insmod: can't insert '/lib/modules/kernel/arch/x86/crypto/crc32c-intel.ko': No such device
OI-DMESG: [    2.426190] EXT4-fs (vda2): Cannot load crc32c driver.
mount: mounting /dev/vda2 on /data failed: No such file or directory
";

    #[test]
    fn a_module_that_did_not_load_is_replaced_by_the_next_alternative() {
        let dep = "kernel/arch/x86/crypto/crc32c-intel.ko:\nkernel/crypto/crc32c_generic.ko:\n\
                   kernel/fs/jbd2/jbd2.ko:\nkernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\n";
        let soft = "softdep ext4 pre: crc32c\n";
        let alias = "alias crypto-crc32c crc32c_intel\nalias crc32c crc32c_intel\nalias crc32c crc32c_generic\n";
        let ix = ModIndex::parse(dep, soft, alias, "");
        let ext4 = ["ext4".to_string()];
        let first = yardstick_order(&ix, &ext4, &[]).unwrap();
        assert_eq!(
            first,
            ["kernel/arch/x86/crypto/crc32c-intel.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko"]
        );
        let failed = failed_insmods(NO_CRC32C);
        let next = yardstick_order(&ix, &ext4, &failed).unwrap();
        assert_eq!(next, ["kernel/crypto/crc32c_generic.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko"]);
    }

    #[test]
    fn a_yardstick_that_skipped_part_of_the_job_is_refused() {
        assert_eq!(failed_insmods(NO_CRC32C), ["kernel/arch/x86/crypto/crc32c-intel.ko"]);
        let err = check_whole_job("baseline", NO_CRC32C).unwrap_err();
        assert!(err.contains("crc32c-intel.ko"), "{err}");
        let mount_only = NO_CRC32C.lines().last().unwrap();
        assert!(check_whole_job("baseline", mount_only).unwrap_err().contains("/dev/vda2 on /data"));
        assert_eq!(check_whole_job("baseline", "baseline: exec /sbin/init\n"), Ok(()));
        assert!(failed_insmods("baseline: exec /sbin/init\n").is_empty());
    }
}
