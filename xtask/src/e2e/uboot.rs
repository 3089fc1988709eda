//! Debian's real U-Boot (`u-boot-qemu`, 2023.01) and overlay-init's own environment code
//! reading each other's writes: U-Boot in the first flash bank of QEMU's virt machine, its
//! environment at the start of the second (`qemu_arm64` and `qemu_arm` keep 256 KiB there, one
//! copy). overlay-init writes the environment; at power-on U-Boot prints the variables it
//! loaded, then changes one and saves (`saveenv`); overlay-init and libubootenv's `fw_printenv`
//! read U-Boot's write; a second round writes over what U-Boot saved.

use crate::e2e::harness::Ctx;
use crate::sh;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// QEMU's virt machine maps two 64 MiB flash banks.
const BANK: u64 = 64 << 20;
/// The environment's size in Debian's qemu_arm64 and qemu_arm builds (CONFIG_ENV_SIZE).
const ENV_SIZE: &str = "0x40000";
/// A generous bound for U-Boot's start under TCG on a busy host; not a measurement.
const TIMEOUT: Duration = Duration::from_secs(300);

/// U-Boot's build for the board's CPU.
fn uboot_bin(ctx: &Ctx<'_>) -> PathBuf {
    let build = if ctx.board.rust_target.starts_with("aarch64") { "qemu_arm64" } else { "qemu_arm" };
    PathBuf::from(format!("/usr/lib/u-boot/{build}/u-boot.bin"))
}

/// The host build of overlay-init, which runs `uboot-env` here as on a device.
pub fn host_init(ctx: &Ctx<'_>) -> Result<PathBuf, String> {
    sh::run(sh::cmd("cargo").args(["build", "--release", "--quiet", "-p", "overlay-init"]).current_dir(ctx.root))?;
    Ok(ctx.root.join("target/release/overlay-init"))
}

pub fn uboot_env(init: &Path, cfg: &Path, args: &[&str]) -> Result<String, String> {
    sh::output(sh::cmd(init.to_str().unwrap_or_default()).arg("uboot-env").arg("--config").arg(cfg).args(args))
}

/// Powers on U-Boot with the two banks (and `disks`, virtio disks in this order) until `until` is
/// on its console, then stops QEMU; `until` empty: until the machine powers off. U-Boot's
/// `reset` restarts the machine, as on a board.
fn power_on(ctx: &Ctx<'_>, banks: [&Path; 2], disks: &[&Path], until: &str, log: &str) -> Result<String, String> {
    power_on_cut(ctx, &flash_args(banks), disks, (until, Duration::ZERO), log)
}

/// QEMU's arguments for U-Boot in the first flash bank, its environment in the second.
pub fn flash_args(banks: [&Path; 2]) -> Vec<String> {
    banks.iter().flat_map(|b| ["-drive".to_string(), format!("if=pflash,format=raw,file={}", b.display())]).collect()
}

/// `power_on` with the firmware's QEMU arguments, QEMU killed `cut.1` after `cut.0` shows.
pub fn power_on_cut(
    ctx: &Ctx<'_>,
    firmware: &[String],
    disks: &[&Path],
    cut: (&str, Duration),
    log: &str,
) -> Result<String, String> {
    let until = cut.0;
    let b = ctx.board;
    let mut c = Command::new(&b.qemu);
    c.args(&b.qemu_args).args(["-display", "none", "-serial", "stdio", "-monitor", "none", "-nic", "none"]);
    c.args(firmware);
    for (i, d) in disks.iter().enumerate() {
        c.arg("-drive").arg(format!("if=none,format=raw,id=d{i},file={}", d.display()));
        c.arg("-device").arg(format!("virtio-blk-pci,drive=d{i}"));
    }
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e} (run tests/setup.sh)", b.qemu))?;
    let console = Arc::new(Mutex::new(String::new()));
    if let Some(mut out) = child.stdout.take() {
        let console = Arc::clone(&console);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut c) = console.lock() {
                    c.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
    }
    let start = Instant::now();
    let mut seen_at = None;
    let text = loop {
        let text = console.lock().map(|c| c.clone()).unwrap_or_default();
        if seen_at.is_none() && !until.is_empty() && text.contains(until) {
            seen_at = Some(Instant::now());
        }
        let due = seen_at.is_some_and(|t| t.elapsed() >= cut.1);
        if due || start.elapsed() > TIMEOUT || child.try_wait().ok().flatten().is_some() {
            break text;
        }
        std::thread::sleep(Duration::from_millis(if seen_at.is_some() { 20 } else { 200 }));
    };
    let _ = child.kill();
    let _ = child.wait();
    std::fs::write(ctx.work.join(format!("{log}.log")), &text).map_err(|e| e.to_string())?;
    if !text.contains(until) || (until.is_empty() && start.elapsed() > TIMEOUT) {
        return Err(format!("U-Boot's console never showed {until:?} or the machine did not power off ({log}.log)"));
    }
    Ok(text)
}

/// U-Boot in the first bank, the second erased (U-Boot has never saved there), and the
/// fw_env.config for it: (U-Boot's bank, the environment's bank, the config).
pub fn flash(ctx: &Ctx<'_>, name: &str) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let (code, env) = (ctx.work.join(format!("{name}-code.img")), ctx.work.join(format!("{name}-env.img")));
    let mut bank = std::fs::read(uboot_bin(ctx)).map_err(|e| format!("{}: {e}", uboot_bin(ctx).display()))?;
    bank.resize(BANK as usize, 0);
    std::fs::write(&code, bank).map_err(|e| e.to_string())?;
    std::fs::write(&env, vec![0xffu8; BANK as usize]).map_err(|e| e.to_string())?;
    let cfg = ctx.work.join(format!("{name}-fw_env.config"));
    std::fs::write(&cfg, format!("{} 0x0 {ENV_SIZE}\n", env.display())).map_err(|e| e.to_string())?;
    Ok((code, env, cfg))
}

pub fn env_both_ways(ctx: &Ctx<'_>) -> Result<(), String> {
    let init = host_init(ctx)?;
    let (code, env, cfg) = flash(ctx, "uboot-env")?;

    let bootcmd = "echo OI-ENV round=${OI_ROUND} order=${BOOT_ORDER} saved=${OI_SAVED}; setenv OI_SAVED ${OI_ROUND}; \
                   saveenv; echo OI-SAVED";
    uboot_env(&init, &cfg, &["set", "bootdelay", "0"])?;
    uboot_env(&init, &cfg, &["set", "bootcmd", bootcmd])?;
    uboot_env(&init, &cfg, &["set", "BOOT_ORDER", "A", "B"])?;
    for (round, order, saved) in [("1", "A B", ""), ("2", "B A", "1")] {
        // Round 2 writes over what U-Boot saved in round 1.
        uboot_env(&init, &cfg, &["set", "OI_ROUND", round])?;
        uboot_env(&init, &cfg, &["set", "BOOT_ORDER", order])?;
        let console = power_on(ctx, [&code, &env], &[], "OI-SAVED", &format!("uboot-env-{round}"))?;
        let want = format!("OI-ENV round={round} order={order} saved={saved}");
        if !console.contains(&want) {
            return Err(format!("U-Boot did not load overlay-init's environment: no {want:?} on its console"));
        }
        if !console.contains("Loading Environment from Flash... OK") {
            return Err("U-Boot did not say it loaded its environment from flash".into());
        }
        let ours = uboot_env(&init, &cfg, &["print", "OI_SAVED", "BOOT_ORDER"])?;
        if ours != format!("BOOT_ORDER={order}\nOI_SAVED={round}\n") {
            return Err(format!("overlay-init read U-Boot's saveenv as {ours:?}"));
        }
        let theirs = sh::output(sh::cmd("fw_printenv").arg("-c").arg(&cfg).arg("OI_SAVED"))?;
        if theirs.trim() != format!("OI_SAVED={round}") {
            return Err(format!("fw_printenv read U-Boot's saveenv as {theirs:?}"));
        }
    }
    println!("uboot-env-both-ways: U-Boot loaded overlay-init's environment twice; its saveenv read by overlay-init and fw_printenv");
    Ok(())
}

/// The board boot script compiled by U-Boot's `mkimage`, as a board's `boot.scr`.
pub fn boot_script(ctx: &Ctx<'_>) -> Result<PathBuf, String> {
    let script = ctx.work.join("boot.scr");
    crate::image::uboot::compile(&[crate::image::uboot::common(ctx.root)], &script)?;
    Ok(script)
}

/// The board boot script's choice and count (board/integration/uboot/boot.cmd, compiled by
/// `mkimage` and run by `source` from a FAT disk) with RAUC's variables: a fresh environment
/// gets RAUC's defaults and boots A, each power-on spends one of A's tries, A exhausted falls
/// back to B; marking B good (its tries back, as RAUC's backend does) and making A primary are
/// followed; with no tries left anywhere both get 3 again and the board resets. Every choice is
/// read back by overlay-init and `fw_printenv`, as RAUC's backend reads it.
pub fn boot_count(ctx: &Ctx<'_>) -> Result<(), String> {
    let init = host_init(ctx)?;
    let (code, env, cfg) = flash(ctx, "uboot-count")?;
    let script = boot_script(ctx)?;
    let disk = ctx.work.join("uboot-boot.vfat");
    let _ = std::fs::remove_file(&disk);
    sh::quiet(sh::cmd("mkfs.vfat").arg("-C").arg(&disk).arg("8192"))?;
    sh::quiet(sh::cmd("mcopy").arg("-i").arg(&disk).arg(&script).arg("::boot.scr"))?;
    // The RAM of QEMU's arm virt machines starts at 1 GiB; the script is loaded 2 MiB into it.
    let bootcmd = "virtio scan; fatload virtio 0 0x40200000 boot.scr && source 0x40200000; \
                   echo OI-DONE slot=${oi_slot} order=${BOOT_ORDER} a=${BOOT_A_LEFT} b=${BOOT_B_LEFT}";
    uboot_env(&init, &cfg, &["set", "bootdelay", "0"])?;
    uboot_env(&init, &cfg, &["set", "bootcmd", bootcmd])?;
    let set = |name: &str, value: &str| uboot_env(&init, &cfg, &["set", name, value]).map(|_| ());
    let mut n = 0;
    let mut boot = |want: &str| -> Result<String, String> {
        n += 1;
        let console = power_on(ctx, [&code, &env], &[&disk], "OI-DONE", &format!("uboot-count-{n}"))?;
        let done = console.lines().rfind(|l| l.starts_with("OI-DONE")).unwrap_or_default().trim_end().to_string();
        if done != format!("OI-DONE {want}") {
            return Err(format!("power-on {n}: U-Boot's script said {done:?}, want {want:?}"));
        }
        Ok(console)
    };
    for want in
        ["slot=A order=A B a=2 b=3", "slot=A order=A B a=1 b=3", "slot=A order=A B a=0 b=3", "slot=B order=A B a=0 b=2"]
    {
        boot(want)?;
    }
    let read = |name: &str| -> Result<(String, String), String> {
        let ours = uboot_env(&init, &cfg, &["print", name])?;
        let theirs = sh::output(sh::cmd("fw_printenv").arg("-c").arg(&cfg).arg(name))?;
        Ok((ours.trim().to_string(), theirs.trim().to_string()))
    };
    let want = "BOOT_A_LEFT=0".to_string();
    if read("BOOT_A_LEFT")? != (want.clone(), want) {
        return Err(format!("after A's tries, BOOT_A_LEFT reads {:?}", read("BOOT_A_LEFT")?));
    }
    // B marked good: its tries back; then A made primary with its tries back.
    set("BOOT_B_LEFT", "3")?;
    boot("slot=B order=A B a=0 b=2")?;
    set("BOOT_A_LEFT", "3")?;
    boot("slot=A order=A B a=2 b=2")?;
    set("BOOT_ORDER", "B A")?;
    boot("slot=B order=B A a=2 b=1")?;
    // No tries anywhere: both get theirs back and the board resets into B, the first in order.
    set("BOOT_A_LEFT", "0")?;
    set("BOOT_B_LEFT", "0")?;
    let console = boot("slot=B order=B A a=3 b=2")?;
    if !console.contains("has tries left: both get 3 again") || console.matches("U-Boot 20").count() < 2 {
        return Err("with no tries left, U-Boot's script did not reset the tries and the board".into());
    }
    let want = "BOOT_B_LEFT=2".to_string();
    if read("BOOT_B_LEFT")? != (want.clone(), want) {
        return Err(format!("after the reset, BOOT_B_LEFT reads {:?}", read("BOOT_B_LEFT")?));
    }
    println!(
        "uboot-boot-count: {n} power-ons through U-Boot's script, each choice and count as RAUC's backend reads it"
    );
    Ok(())
}

/// The board's selection area (its fw_env.config: two copies on the first virtio disk), as the
/// boot script's variables that locate it (board/integration/uboot/boot.cmd).
fn state_area(ctx: &Ctx<'_>) -> Result<Vec<(&'static str, String)>, String> {
    let path = ctx.board.dir.join("fw_env.config");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = overlay_init::uboot::config::parse(&text, &path.display().to_string())?;
    let [one, two] = cfg.copies.as_slice() else { return Err(format!("{}: want two copies", path.display())) };
    Ok(vec![
        ("oi_state_if", "virtio".into()),
        ("oi_state_blk1", format!("{:#x}", one.offset / 512)),
        ("oi_state_blk2", format!("{:#x}", two.offset / 512)),
        ("oi_state_cnt", format!("{:#x}", one.size / 512)),
        ("oi_state_size", format!("{:#x}", one.size)),
        // 3 MiB into RAM, between the script and the kernel: three copies and 4 bytes.
        ("oi_state_addr", "0x40300000".into()),
    ])
}

/// Debian's U-Boot in QEMU's flash; a second disk beside the board's (GPT): `uboot` with the
/// board's boot script, `boot_a` and `boot_b` (ext4), each slot's kernel and initramfs as the
/// board's `oi_load` loads them for the slot the script chose; the selection in the board's
/// redundant area on the board's disk.
struct Rig {
    init: PathBuf,
    /// fw_env.config of U-Boot's own environment (the flash bank file).
    cfg: PathBuf,
    banks: [PathBuf; 2],
    disk: PathBuf,
    boot_disk: PathBuf,
}

/// One boot partition's size: room for a kernel beside the one it replaces during an install.
const BOOT_PART: u64 = 128 << 20;

/// The boot disk: `uboot` (8 MiB) with the compiled script, `boot_a` and `boot_b` with
/// `vmlinuz` and `initrd.img` of the slots given (an empty filesystem for None).
fn boot_disk(ctx: &Ctx<'_>, name: &str, slots: [Option<(&Path, &Path)>; 2]) -> Result<PathBuf, String> {
    let script = boot_script(ctx)?;
    boot_disk_with(ctx, name, &[(script.as_path(), "boot.scr")], slots)
}

/// `boot_disk` with `uboot` holding `files` (path, name).
pub fn boot_disk_with(
    ctx: &Ctx<'_>,
    name: &str,
    files: &[(&Path, &str)],
    slots: [Option<(&Path, &Path)>; 2],
) -> Result<PathBuf, String> {
    let dir = ctx.work.join(format!("{name}-bootfs"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut parts = Vec::new();
    for (part, files, size) in [
        ("uboot", files.to_vec(), 8u64 << 20),
        ("boot_a", slots[0].map(|(k, i)| vec![(k, "vmlinuz"), (i, "initrd.img")]).unwrap_or_default(), BOOT_PART),
        ("boot_b", slots[1].map(|(k, i)| vec![(k, "vmlinuz"), (i, "initrd.img")]).unwrap_or_default(), BOOT_PART),
    ] {
        let root = dir.join(part);
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        for (from, to) in files {
            std::fs::copy(from, root.join(to)).map_err(|e| format!("{}: {e}", from.display()))?;
        }
        let img = dir.join(format!("{part}.ext4"));
        sh::quiet(
            sh::cmd("mkfs.ext4")
                .args(["-q", "-F", "-L", part, "-d"])
                .arg(&root)
                .arg(&img)
                .arg(format!("{}k", size >> 10)),
        )?;
        parts.push((part, img, size));
    }
    let disk = ctx.work.join(format!("{name}-boot.img"));
    let total: u64 = (2 << 20) + parts.iter().map(|p| p.2).sum::<u64>();
    let f = std::fs::File::create(&disk).map_err(|e| e.to_string())?;
    f.set_len(total).map_err(|e| e.to_string())?;
    let mut table = String::from("label: gpt\n");
    let mut at = 1u64 << 20;
    for (part, _, size) in &parts {
        table.push_str(&format!("start={}, size={}, name={part}\n", at / 512, size / 512));
        at += size;
    }
    sh::run_stdin(sh::cmd("sfdisk").arg("-q").arg(&disk), &table)?;
    let mut at = 1u64 << 20;
    for (_, img, size) in &parts {
        crate::image::write_at(&disk, at, &std::fs::read(img).map_err(|e| e.to_string())?)?;
        at += size;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(disk)
}

/// The rig on `disk` (the board's layout) with the boot disk of `slots`.
fn rig(ctx: &Ctx<'_>, name: &str, disk: PathBuf, slots: [Option<(&Path, &Path)>; 2]) -> Result<Rig, String> {
    let init = host_init(ctx)?;
    let (code, env, cfg) = flash(ctx, name)?;
    let boot_disk = boot_disk(ctx, name, slots)?;
    // The slot's kernel at 4 MiB into RAM (2 MiB aligned), its initramfs at 128 MiB, the device
    // tree U-Boot itself runs on (QEMU's); QEMU's arm virt machines have their RAM at 1 GiB.
    let args = format!(
        "{} {} {} oinit.bootloader=uboot oinit.aboot=PARTLABEL=boot_a oinit.bboot=PARTLABEL=boot_b \
         oinit.rebootdelay=1 oinit.modules={},loop",
        ctx.board.cmdline,
        crate::e2e::harness::SHOW_INFO,
        crate::e2e::harness::ab_settings(ctx.board),
        ctx.board.modules().join(",")
    );
    // An arm64 Image boots with booti, a 32-bit zImage with bootz.
    let booti = if ctx.board.rust_target.starts_with("aarch64") { "booti" } else { "bootz" };
    let load = format!(
        "setenv oi_part 3; test ${{oi_slot}} = A && setenv oi_part 2; \
         setenv bootargs \"{args} rauc.slot=${{oi_slot}} ${{oi_extra}}\"; load virtio 1:${{oi_part}} 0x40400000 vmlinuz \
         && load virtio 1:${{oi_part}} 0x48000000 initrd.img && {booti} 0x40400000 0x48000000:${{filesize}} ${{fdtcontroladdr}}"
    );
    let set = |name: &str, value: &str| uboot_env(&init, &cfg, &["set", name, value]).map(|_| ());
    set("bootdelay", "0")?;
    set("bootcmd", "virtio scan; load virtio 1:1 0x40200000 boot.scr && source 0x40200000")?;
    set("oi_load", &load)?;
    for (name, value) in state_area(ctx)? {
        set(name, &value)?;
    }
    Ok(Rig { init, cfg, banks: [code, env], disk, boot_disk })
}

impl Rig {
    /// Powers on with `extra` on the kernel command line until `until` shows (QEMU then killed:
    /// a power cut) or, `until` empty, until the machine powers off.
    fn power(&self, ctx: &Ctx<'_>, extra: &str, until: &str, log: &str) -> Result<String, String> {
        self.power_cut(ctx, extra, (until, Duration::ZERO), log)
    }

    /// Powers on with `extra`, QEMU killed `cut.1` after `cut.0` shows (or at power-off).
    fn power_cut(&self, ctx: &Ctx<'_>, extra: &str, cut: (&str, Duration), log: &str) -> Result<String, String> {
        uboot_env(&self.init, &self.cfg, &["set", "oi_extra", extra])?;
        power_on_cut(ctx, &flash_args([&self.banks[0], &self.banks[1]]), &[&self.disk, &self.boot_disk], cut, log)
    }

    /// The board's selection area on the disk image as libubootenv's `fw_printenv` and
    /// overlay-init read it (they must agree): `BOOT_A_LEFT=.. BOOT_B_LEFT=.. BOOT_ORDER=..`.
    fn selection(&self, ctx: &Ctx<'_>) -> Result<String, String> {
        let cfg = self.area_config(ctx)?;
        let names = ["BOOT_A_LEFT", "BOOT_B_LEFT", "BOOT_ORDER"];
        let theirs = sh::output(sh::cmd("fw_printenv").arg("-c").arg(&cfg).args(names))?;
        let ours = uboot_env(&self.init, &cfg, &[&["print"][..], &names[..]].concat())?;
        if ours != theirs {
            return Err(format!("the selection area: fw_printenv reads {theirs:?}, overlay-init {ours:?}"));
        }
        Ok(theirs.lines().collect::<Vec<_>>().join(" "))
    }

    /// Breaks the newer copy of the selection area (by U-Boot's flags rule) as a write cut half-way
    /// leaves it: its second half as it was before (`before`, the area's bytes), one data byte
    /// changed. Returns which copy (0 or 1).
    fn tear_newest(&self, ctx: &Ctx<'_>, before: &[u8]) -> Result<usize, String> {
        let (start, size) = self.area(ctx)?;
        let mut area = self.read_area(ctx)?;
        let flags = [area[4], area[size + 4]];
        let newest = match flags {
            [255, 0] => 1,
            [0, 255] => 0,
            [a, b] if b > a => 1,
            _ => 0,
        };
        let at = newest * size;
        area[at + size / 2..at + size].copy_from_slice(&before[at + size / 2..at + size]);
        area[at + 8] ^= 0x55;
        let f = std::fs::OpenOptions::new().write(true).open(&self.disk).map_err(|e| e.to_string())?;
        std::os::unix::fs::FileExt::write_all_at(&f, &area, start).map_err(|e| e.to_string())?;
        Ok(newest)
    }

    /// The board's fw_env.config with the disk image in place of /dev/vda.
    fn area_config(&self, ctx: &Ctx<'_>) -> Result<PathBuf, String> {
        let board_cfg = std::fs::read_to_string(ctx.board.dir.join("fw_env.config")).map_err(|e| e.to_string())?;
        let cfg = self.disk.with_extension("area.config");
        std::fs::write(&cfg, board_cfg.replace("/dev/vda", &self.disk.display().to_string()))
            .map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// Sets a variable in the selection area with overlay-init's own write (a factory's
    /// provisioning, or what mark-good does).
    fn set_area(&self, ctx: &Ctx<'_>, name: &str, value: &str) -> Result<(), String> {
        uboot_env(&self.init, &self.area_config(ctx)?, &["set", name, value]).map(|_| ())
    }

    /// The area's first byte on the disk and one copy's size.
    fn area(&self, ctx: &Ctx<'_>) -> Result<(u64, usize), String> {
        let path = ctx.board.dir.join("fw_env.config");
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let cfg = overlay_init::uboot::config::parse(&text, &path.display().to_string())?;
        Ok((cfg.copies[0].offset as u64, cfg.size()))
    }

    fn read_area(&self, ctx: &Ctx<'_>) -> Result<Vec<u8>, String> {
        let (start, size) = self.area(ctx)?;
        let f = std::fs::File::open(&self.disk).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 2 * size];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, start).map_err(|e| e.to_string())?;
        Ok(buf)
    }

    /// A whole boot, which must end in the real init of `slot` on `kernel`, chosen last by
    /// U-Boot's script.
    fn boot(
        &self,
        ctx: &Ctx<'_>,
        slot: &str,
        kernel: &str,
        extra: &str,
        log: &str,
    ) -> Result<crate::e2e::qemu::Boot, String> {
        use crate::e2e::harness::want;
        let console = self.power(ctx, extra, "", log)?;
        let b = crate::e2e::qemu::Boot { console, timed_out: false, panicked: false };
        if !b.console.contains("OI-REPORT-END") {
            return Err(format!("{log}: the real init did not finish ({log}.log)"));
        }
        want(&b, "slot", &slot.to_ascii_lowercase())?;
        want(&b, "kernel", kernel)?;
        let chose = b.console.lines().rfind(|l| l.starts_with("overlay-init: U-Boot chose slot")).unwrap_or_default();
        if !chose.starts_with(&format!("overlay-init: U-Boot chose slot {slot} ")) {
            return Err(format!("{log}: U-Boot's script did not choose slot {slot} last: {chose:?}"));
        }
        Ok(b)
    }
}

/// The whole chain on real parts: power-on → Debian's U-Boot → the boot script (choice and count)
/// → the chosen slot's own kernel and initramfs (slot A: Debian's 6.1, slot B: the
/// bookworm-backports 6.12, loaded by `oi_load` from a FAT boot disk) → overlay-init with
/// `oinit.bootloader=uboot rauc.slot=X` → the slot's image and upper → the real init, whose
/// `uname -r` says which kernel ran. The selection lives where both U-Boot and Linux reach it
/// (the board's fw_env.config: 16 KiB before the first partition), so the userspace commands
/// change it: A's upper keeps a file across boots; `rollback` on A makes B primary; B runs on its
/// kernel, `mark-good` keeps it there; B's image broken, the init marks B bad in U-Boot's
/// environment and reboots, U-Boot boots A on A's kernel with A's upper intact; B whole again
/// but with an initramfs for another kernel, made primary: the init refuses it by name and,
/// without the disk driver to mark it bad, U-Boot spends its tries and boots A; a factory reset
/// asked for on A is done at the next boot, on A.
pub fn whole_system(ctx: &Ctx<'_>) -> Result<(), String> {
    use crate::e2e::harness::want;
    let (kb, initrd_b) = crate::e2e::kexec::b_kernel(ctx)?;
    let (ka, kbf) = (ctx.board.kernel_dir.join("vmlinuz"), kb.kernel_dir.join("vmlinuz"));
    let slots = [Some((ka.as_path(), ctx.initrd.as_path())), Some((kbf.as_path(), initrd_b.as_path()))];
    let rig = rig(ctx, "uboot-slots", ctx.fresh_disk("uboot-slots")?, slots)?;
    let disk = &rig.disk;
    let mut n = 0;
    let mut boot = |slot: &str, kernel: &str, extra: &str| -> Result<crate::e2e::qemu::Boot, String> {
        n += 1;
        rig.boot(ctx, slot, kernel, extra, &format!("uboot-slots-{n}"))
    };
    let (a, bk) = (ctx.board.kernel_version.as_str(), kb.kernel_version.as_str());
    let counter = |b: &crate::e2e::qemu::Boot| b.marker("counter").and_then(|c| c.parse::<u32>().ok()).unwrap_or(0);
    let status = |b: &crate::e2e::qemu::Boot, text: &str| -> Result<(), String> {
        match b.console.lines().find(|l| l.starts_with("OI-STATUS: U-Boot boots next:")) {
            Some(l) if l.contains(text) => Ok(()),
            other => Err(format!("status under U-Boot: want {text:?}, got {other:?}")),
        }
    };
    // A's userspace confirms each boot, as the board's mark-good service does.
    let first = boot("A", a, "oitest=mark-good")?;
    want(&first, "mark-good-exit", "0")?;
    status(&first, "slot A (3 tries left)")?;
    // Rolled back from userspace: written by overlay-init into the area U-Boot imports.
    let second = boot("A", a, "oitest=rollback")?;
    want(&second, "rollback-exit", "0")?;
    status(&second, "slot B (3 tries left); BOOT_ORDER \"B A\"")?;
    if counter(&second) != counter(&first) + 1 {
        return Err(format!("slot A's upper lost a write: counter {} then {}", counter(&first), counter(&second)));
    }
    let b = boot("B", bk, "oitest=mark-good")?;
    want(&b, "mark-good-exit", "0")?;
    status(&b, "slot B (3 tries left)")?;
    let b = boot("B", bk, "")?;
    status(&b, "slot B (2 tries left)")?;
    // B's image broken: its boot fails in the init, which marks B bad; U-Boot boots A.
    let parts = crate::image::partitions(disk)?;
    let part = crate::image::part(&parts, &crate::e2e::harness::slot_parts(ctx.board)[1])?;
    let original = crate::image::read_at(disk, part.start, 4096)?;
    crate::image::write_at(disk, part.start, &[0u8; 4096])?;
    let back = boot("A", a, "")?;
    for said in ["overlay-init: U-Boot chose slot B", "slot B marked bad in U-Boot's environment"] {
        if !back.console.contains(said) {
            return Err(format!("the failed boot of B: the console never said {said:?}"));
        }
    }
    status(&back, "slot A (1 tries left); BOOT_ORDER \"A\", A 1 left, B 0 left")?;
    if counter(&back) != counter(&second) + 1 {
        return Err(format!("slot A's upper after the rollback: counter {} then {}", counter(&second), counter(&back)));
    }
    let theirs = rig.selection(ctx)?;
    if theirs != "BOOT_A_LEFT=1 BOOT_B_LEFT=0 BOOT_ORDER=A" {
        return Err(format!("fw_printenv read the selection after B's failure as {theirs:?}"));
    }
    // B's parts disagree: its image whole again, but its boot partition's initramfs is A's (6.1
    // modules under the 6.12 kernel), and B made primary again (as a careless installer
    // would): the init refuses it by name; without its disk driver it cannot reach U-Boot's
    // environment to mark B bad and says so, and U-Boot spends B's tries, then boots A, all in
    // this power-on.
    crate::image::write_at(disk, part.start, &original)?;
    let write = format!("write {} initrd.img", ctx.initrd.display());
    crate::e2e::harness::debugfs_write(&rig.boot_disk, "boot_b", &["rm initrd.img", &write])?;
    rig.set_area(ctx, "BOOT_ORDER", "B A")?;
    rig.set_area(ctx, "BOOT_B_LEFT", "3")?;
    // A factory reset asked for from userspace: done at the next boot, on the same slot.
    let reset = boot("A", a, "oitest=mark-good,factory-reset")?;
    want(&reset, "factory-reset-exit", "0")?;
    for said in [
        "overlay-init: U-Boot chose slot B".to_string(),
        format!("for kernel {bk}"),
        "cannot mark slot B bad in U-Boot's environment".to_string(),
        "U-Boot tries it again until its tries are spent".to_string(),
    ] {
        if !reset.console.contains(&said) {
            return Err(format!("B with another kernel's initramfs: the console never said {said:?}"));
        }
    }
    let after = boot("A", a, "")?;
    if counter(&after) != 1 {
        return Err(format!("after the factory reset slot A's upper still counts {}", counter(&after)));
    }
    println!(
        "uboot-whole-system: {n} boots through U-Boot: A on {a}, rollback to B on {bk}, B marked good, B broken \
              and B with another kernel's initramfs marked bad by the init, back to A, factory reset on A"
    );
    Ok(())
}

/// Power cuts during the selection's writes, U-Boot's and overlay-init's, on the real parts: a
/// write cut half-way (the newer copy torn as such a cut leaves it) and QEMU killed at three
/// points of U-Boot's script (before, during and after its write). Each time the next boot comes
/// up on a good slot with the selection of before the cut or after it, never another, and slot
/// A's upper keeps every boot's write.
pub fn power_cut(ctx: &Ctx<'_>) -> Result<(), String> {
    use crate::e2e::harness::want;
    let ka = ctx.board.kernel_dir.join("vmlinuz");
    let rig = rig(ctx, "uboot-cut", ctx.fresh_disk("uboot-cut")?, [Some((ka.as_path(), ctx.initrd.as_path())), None])?;
    let a = ctx.board.kernel_version.as_str();
    let counter = |b: &crate::e2e::qemu::Boot| b.marker("counter").and_then(|c| c.parse::<u32>().ok()).unwrap_or(0);
    let first = rig.boot(ctx, "A", a, "oitest=mark-good", "uboot-cut-1")?;
    want(&first, "mark-good-exit", "0")?;
    let want_sel = |what: &str, want: &str| -> Result<(), String> {
        let got = rig.selection(ctx)?;
        if got != want {
            return Err(format!("{what}: the selection reads {got:?}, want {want:?}"));
        }
        Ok(())
    };
    want_sel("after A marked good", "BOOT_A_LEFT=3 BOOT_B_LEFT=3 BOOT_ORDER=A B")?;

    // U-Boot's count cut half-way: the previous copy is current, the count did not happen.
    let before = rig.read_area(ctx)?;
    rig.power(ctx, "", "overlay-init: U-Boot chose slot A", "uboot-cut-2")?;
    want_sel("U-Boot's count written", "BOOT_A_LEFT=2 BOOT_B_LEFT=3 BOOT_ORDER=A B")?;
    rig.tear_newest(ctx, &before)?;
    want_sel("U-Boot's count cut half-way", "BOOT_A_LEFT=3 BOOT_B_LEFT=3 BOOT_ORDER=A B")?;
    let b = rig.boot(ctx, "A", a, "", "uboot-cut-3")?;
    if !b.console.contains("U-Boot chose slot A (BOOT_ORDER A B, A 2 left, B 3 left)") {
        return Err("after U-Boot's cut write, U-Boot did not count from the previous copy".into());
    }
    if counter(&b) != counter(&first) + 1 {
        return Err(format!("slot A's upper: counter {} then {}", counter(&first), counter(&b)));
    }

    // overlay-init's rollback cut half-way (after its mark-good in the same boot): the rollback
    // did not happen, A (confirmed) boots next.
    let before = rig.read_area(ctx)?;
    let r = rig.boot(ctx, "A", a, "oitest=mark-good,rollback", "uboot-cut-4")?;
    want(&r, "rollback-exit", "0")?;
    want_sel("the rollback written", "BOOT_A_LEFT=3 BOOT_B_LEFT=3 BOOT_ORDER=B A")?;
    rig.tear_newest(ctx, &before)?;
    want_sel("the rollback cut half-way", "BOOT_A_LEFT=3 BOOT_B_LEFT=3 BOOT_ORDER=A B")?;
    let mut last = counter(&r);

    // QEMU killed at three points of U-Boot's script: whatever was written is whole or not at
    // all, and the next boot comes up on A with a count of before or after the cut. A's tries
    // are set back before each (by overlay-init's own write, as mark-good does): three killed
    // boots would otherwise spend them all.
    let points = ["## Executing script", "virtio write: device", "overlay-init: U-Boot chose slot"];
    for (i, point) in points.iter().enumerate() {
        rig.set_area(ctx, "BOOT_A_LEFT", "3")?;
        rig.power(ctx, "", point, &format!("uboot-cut-kill-{i}"))?;
        let after = rig.selection(ctx)?;
        if !["3", "2"].iter().any(|l| after == format!("BOOT_A_LEFT={l} BOOT_B_LEFT=3 BOOT_ORDER=A B")) {
            return Err(format!("QEMU killed at {point:?}: the selection went from A's 3 tries to {after:?}"));
        }
    }
    let b = rig.boot(ctx, "A", a, "oitest=mark-good", "uboot-cut-5")?;
    if counter(&b) != last + 1 {
        return Err(format!("slot A's upper after the cuts: counter {last} then {}", counter(&b)));
    }
    last = counter(&b);
    want_sel("the end", "BOOT_A_LEFT=3 BOOT_B_LEFT=3 BOOT_ORDER=A B")?;
    println!("uboot-power-cut: U-Boot's and overlay-init's selection writes cut half-way, QEMU killed thrice in U-Boot's script: slot A each time, its upper at {last}");
    Ok(())
}

/// `install` under U-Boot: slot B's boot partition starts empty and only A is in the order (a
/// factory's provisioning). On A, `install` of an image carrying the bookworm-backports kernel
/// takes B out of U-Boot's order, writes the image, copies its kernel and initramfs into
/// `boot_b`, reads all back, and makes B primary: U-Boot boots B on 6.12, marked good. Then
/// installs into A cut by a power loss at three points: the next boot is never a slot whose
/// kernel and image disagree (A's old 6.1 kernel under the new image); whichever slot boots
/// runs the kernel its image carries.
pub fn install(ctx: &Ctx<'_>) -> Result<(), String> {
    use crate::e2e::harness::want;
    let (kb, initrd_b) = crate::e2e::kexec::b_kernel(ctx)?;
    let kbf = kb.kernel_dir.join("vmlinuz");
    let disk = crate::e2e::kexec::disk(ctx, "uboot-install", &kb, &kbf, &initrd_b)?;
    let ka = ctx.board.kernel_dir.join("vmlinuz");
    let rig = rig(ctx, "uboot-install", disk, [Some((ka.as_path(), ctx.initrd.as_path())), None])?;
    rig.set_area(ctx, "BOOT_ORDER", "A")?;
    let (a, bk) = (ctx.board.kernel_version.as_str(), kb.kernel_version.as_str());
    let first = rig.boot(ctx, "A", a, "oitest=mark-good", "uboot-install-1")?;
    want(&first, "mark-good-exit", "0")?;
    let ins = rig.boot(ctx, "A", a, "oitest=install", "uboot-install-2")?;
    want(&ins, "install-booted-exit", "1")?;
    want(&ins, "install-exit", "0")?;
    for said in [
        "out of U-Boot's order while it is written",
        "boot files written to",
        "U-Boot boots next: slot B (3 tries left)",
    ] {
        if !ins.console.contains(said) {
            return Err(format!("install under U-Boot never said {said:?} (uboot-install-2.log)"));
        }
    }
    let b = rig.boot(ctx, "B", bk, "oitest=mark-good", "uboot-install-3")?;
    want(&b, "mark-good-exit", "0")?;
    for (i, delay) in [1500u64, 6000, 11000].into_iter().enumerate() {
        let log = format!("uboot-install-cut-{i}");
        let cut = rig.power_cut(ctx, "oitest=install", ("OI-REPORT-END", Duration::from_millis(delay)), &log)?;
        let finished = cut.contains("OI: install-exit=0");
        let after = rig.power(ctx, "oitest=mark-good", "", &format!("{log}-after"))?;
        let after = crate::e2e::qemu::Boot { console: after, timed_out: false, panicked: false };
        if !after.console.contains("OI-REPORT-END") {
            return Err(format!("{log}: the next boot did not reach the real init ({log}-after.log)"));
        }
        // Both images carry the 6.12 kernel: a slot on 6.1 is A's old kernel under a new image.
        want(&after, "kernel", bk).map_err(|e| format!("{log}: after the cut: {e}"))?;
        println!(
            "uboot-install: cut {i} after {delay} ms: install finished before the cut: {finished}; slot {} booted on {bk}",
            after.marker("slot").unwrap_or_default()
        );
    }
    Ok(())
}
