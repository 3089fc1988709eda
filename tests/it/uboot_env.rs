//! The U-Boot environment as overlay-init writes it, read by libubootenv's `fw_printenv`, and
//! what `fw_setenv` and U-Boot's `mkenvimage` wrote, read by overlay-init (`uboot-env`, the
//! code the boot uses). A write cut half-way leaves the previous environment current for both.

use std::path::{Path, PathBuf};
use std::process::Command;

const SIZE: usize = 0x4000;

fn tools() -> bool {
    let ok = ["fw_printenv", "fw_setenv", "mkenvimage"].iter().all(|t| {
        Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success())
    });
    if !ok {
        assert!(std::env::var_os("OI_REQUIRE_ROOT").is_none(), "U-Boot environment tests need fw_printenv, mkenvimage");
        eprintln!("SKIPPED uboot_env: fw_printenv, fw_setenv or mkenvimage missing (run tests/setup.sh)");
    }
    ok
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oi-uboot-env-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a command; (exit code, stdout + stderr).
fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn ours(cfg: &Path, args: &[&str]) -> (i32, String) {
    run(Command::new(env!("CARGO_BIN_EXE_overlay-init")).arg("uboot-env").arg("--config").arg(cfg).args(args))
}

fn fw_printenv(cfg: &Path, name: &str) -> String {
    let (code, out) = run(Command::new("fw_printenv").arg("-c").arg(cfg).arg(name));
    assert_eq!(code, 0, "fw_printenv {name}: {out}");
    out.trim().to_string()
}

/// A board's factory environment: `mkenvimage` of `text` (redundant: with the flags byte).
fn mkenvimage(d: &Path, text: &str, redundant: bool) -> Vec<u8> {
    let (src, img) = (d.join("env.txt"), d.join("env.img"));
    std::fs::write(&src, text).unwrap();
    let mut cmd = Command::new("mkenvimage");
    cmd.args(["-s", &SIZE.to_string(), "-o"]).arg(&img);
    if redundant {
        cmd.arg("-r");
    }
    let (code, out) = run(cmd.arg(&src));
    assert_eq!(code, 0, "mkenvimage: {out}");
    std::fs::read(img).unwrap()
}

#[test]
fn redundant_copies_read_each_other_and_survive_a_cut_write() {
    if !tools() {
        return;
    }
    let d = dir("redundant");
    let file = d.join("flash.bin");
    // Two copies in one device, as on eMMC: the factory wrote the first, the second is erased.
    let mut flash = mkenvimage(&d, "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n", true);
    flash.resize(2 * SIZE, 0xff);
    std::fs::write(&file, &flash).unwrap();
    let cfg = d.join("fw_env.config");
    std::fs::write(&cfg, format!("{} 0x0 {SIZE:#x}\n{} {SIZE:#x} {SIZE:#x}\n", file.display(), file.display()))
        .unwrap();

    assert_eq!(ours(&cfg, &["print", "BOOT_ORDER"]), (0, "BOOT_ORDER=A B\n".into()));
    // Turn by turn, each reads the other's write (the copies alternate, the flags byte counts).
    for round in 0..3 {
        let left = format!("{}", 2 - round);
        let (code, out) = ours(&cfg, &["set", "BOOT_A_LEFT", &left]);
        assert_eq!(code, 0, "{out}");
        assert_eq!(fw_printenv(&cfg, "BOOT_A_LEFT"), format!("BOOT_A_LEFT={left}"));
        let order = if round % 2 == 0 { "B A" } else { "A B" };
        let (code, out) = run(Command::new("fw_setenv").arg("-c").arg(&cfg).args(["BOOT_ORDER", order]));
        assert_eq!(code, 0, "fw_setenv: {out}");
        assert_eq!(
            ours(&cfg, &["print", "BOOT_ORDER", "BOOT_A_LEFT"]),
            (0, format!("BOOT_A_LEFT={left}\nBOOT_ORDER={order}\n"))
        );
    }
    // Deleting, as fw_setenv NAME with no value.
    assert_eq!(ours(&cfg, &["set", "BOOT_B_LEFT"]).0, 0);
    let (code, all) = run(Command::new("fw_printenv").arg("-c").arg(&cfg));
    assert_eq!(code, 0, "{all}");
    assert!(
        all.contains("BOOT_ORDER=") && !all.contains("BOOT_B_LEFT"),
        "BOOT_B_LEFT still set after its deletion: {all}"
    );

    // A write cut half-way: the copy being written has a bad CRC, and both readers keep the
    // previous environment.
    let before = std::fs::read(&file).unwrap();
    assert_eq!(ours(&cfg, &["set", "BOOT_ORDER", "B"]).0, 0);
    let after = std::fs::read(&file).unwrap();
    let written = if before[..SIZE] != after[..SIZE] { 0 } else { SIZE };
    let mut cut = after.clone();
    cut[written + SIZE / 2..written + SIZE].copy_from_slice(&before[written + SIZE / 2..written + SIZE]);
    cut[written..written + 64].copy_from_slice(&after[written..written + 64]);
    cut[written + 8] ^= 0x55;
    std::fs::write(&file, &cut).unwrap();
    assert_eq!(ours(&cfg, &["print", "BOOT_ORDER"]), (0, "BOOT_ORDER=B A\n".into()));
    assert_eq!(fw_printenv(&cfg, "BOOT_ORDER"), "BOOT_ORDER=B A");
    // The next write goes over the broken copy, never over the current one.
    assert_eq!(ours(&cfg, &["set", "BOOT_ORDER", "B"]).0, 0);
    assert_eq!(fw_printenv(&cfg, "BOOT_ORDER"), "BOOT_ORDER=B");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn single_copy_file_and_what_is_refused() {
    if !tools() {
        return;
    }
    let d = dir("single");
    // A whole file is the environment (a board keeping its state on its boot partition).
    let file = d.join("uboot.env");
    std::fs::write(&file, mkenvimage(&d, "bootcmd=run distro_bootcmd\nBOOT_ORDER=A B\n", false)).unwrap();
    let cfg = d.join("fw_env.config");
    std::fs::write(&cfg, format!("{} 0x0 {SIZE:#x}\n", file.display())).unwrap();
    assert_eq!(ours(&cfg, &["print", "bootcmd"]), (0, "bootcmd=run distro_bootcmd\n".into()));
    assert_eq!(ours(&cfg, &["set", "BOOT_ORDER", "B", "A"]).0, 0);
    assert_eq!(fw_printenv(&cfg, "BOOT_ORDER"), "BOOT_ORDER=B A");
    assert_eq!(fw_printenv(&cfg, "bootcmd"), "bootcmd=run distro_bootcmd");
    let (code, out) = run(Command::new("fw_setenv").arg("-c").arg(&cfg).args(["upgrade_available", "1"]));
    assert_eq!(code, 0, "fw_setenv: {out}");
    assert_eq!(ours(&cfg, &["print", "upgrade_available"]), (0, "upgrade_available=1\n".into()));

    // Too large for the configured size: refused with the sizes, nothing written.
    let kept = std::fs::read(&file).unwrap();
    let (code, out) = ours(&cfg, &["set", "big", &"x".repeat(SIZE)]);
    assert_eq!(code, 1);
    assert!(out.contains("more than its configured size of 16384"), "{out}");
    assert_eq!(std::fs::read(&file).unwrap(), kept);
    // The configuration says another size than the environment has: neither valid nor blank,
    // so never written over.
    std::fs::write(&cfg, format!("{} 0x0 0x2000\n", file.display())).unwrap();
    let (code, out) = ours(&cfg, &["set", "BOOT_ORDER", "A"]);
    assert_eq!(code, 1);
    assert!(out.contains("not writing over data overlay-init does not recognise"), "{out}");
    assert!(out.contains("CRC32"), "{out}");
    assert_eq!(std::fs::read(&file).unwrap(), kept);
    let (code, out) = ours(&cfg, &["print"]);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("no valid environment: {} at offset 0: CRC32", file.display())), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}

/// RAUC's selection changed by the code `mark-good`, `mark-bad`, `rollback` and the failing boot
/// use, read back by `fw_printenv`; values neither RAUC nor the boot script could read are
/// refused by name, the environment left as it was.
#[test]
fn selection_changes_as_rauc_and_refuses_what_it_cannot_read() {
    use overlay_init::ab::state::SlotId;
    use overlay_init::uboot::bootchooser::Change;
    use overlay_init::uboot::store::change;
    if !tools() {
        return;
    }
    let d = dir("selection");
    let file = d.join("area.bin");
    std::fs::write(&file, mkenvimage(&d, "BOOT_ORDER=A B\nBOOT_A_LEFT=1\nBOOT_B_LEFT=3\n", false)).unwrap();
    let cfg = d.join("fw_env.config");
    std::fs::write(&cfg, format!("{} 0x0 {SIZE:#x}\n", file.display())).unwrap();
    let cfg_s = cfg.display().to_string();
    let theirs = |name: &str| fw_printenv(&cfg, name);

    let c = change(&cfg_s, Change::Primary(SlotId::B)).unwrap();
    assert_eq!(c.next(), Some(SlotId::B));
    assert_eq!((theirs("BOOT_ORDER"), theirs("BOOT_B_LEFT")), ("BOOT_ORDER=B A".into(), "BOOT_B_LEFT=3".into()));
    change(&cfg_s, Change::Bad(SlotId::B)).unwrap();
    assert_eq!((theirs("BOOT_ORDER"), theirs("BOOT_B_LEFT")), ("BOOT_ORDER=A".into(), "BOOT_B_LEFT=0".into()));
    change(&cfg_s, Change::Good(SlotId::A)).unwrap();
    assert_eq!(theirs("BOOT_A_LEFT"), "BOOT_A_LEFT=3");

    for (name, value, why) in [
        ("BOOT_ORDER", "A C", "BOOT_ORDER=\"A C\" names slot \"C\""),
        ("BOOT_ORDER", "A", ""),
        ("BOOT_A_LEFT", "three", "BOOT_A_LEFT=\"three\" is not a number"),
    ] {
        let (code, out) = run(Command::new("fw_setenv").arg("-c").arg(&cfg).args([name, value]));
        assert_eq!(code, 0, "fw_setenv: {out}");
        if why.is_empty() {
            continue;
        }
        let kept = std::fs::read(&file).unwrap();
        let err = change(&cfg_s, Change::Good(SlotId::B)).unwrap_err();
        assert!(err.contains(why), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), kept, "nothing written after: {err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
