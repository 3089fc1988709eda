//! End-to-end tests of the imx8 board on emulated i.MX 8M Plus silicon: QEMU 10's imx8mp-evk
//! machine (four Cortex-A53, uSDHC, i.MX UARTs, imx2 watchdog) boots Debian's arm64 kernel with
//! the EVK's device tree from the board's own genimage image, attached to the third SD host
//! (the EVK's eMMC) and found by its GPT partition names.

use crate::e2e::harness::{booted, contains, failed_with, want, Ctx};
use crate::e2e::qemu::Boot;

/// The EVK's four cores, as the SoC has them: the uSDHC driver after the modules it needs (the
/// init resolved the order from modules.dep), slot a by PARTLABEL, the watchdog armed; a file
/// written in boot 1 is there in boot 2 (one core: the same image on the smallest i.MX 8M).
pub fn emmc_on_four_cores(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("evk-emmc")?;
    let b = ctx.boot_on_cores(&disk, "", "evk-emmc-1", 4)?;
    booted(&b)?;
    want(&b, "cpus", "4")?;
    loaded_after(&b, "sdhci_esdhc_imx", &["sdhci", "cqhci", "sdhci_pltfm"])?;
    loaded_after(&b, "ext4", &["jbd2", "mbcache", "crc16"])?;
    contains(&b, "imx2_wdt loaded")?;
    contains(&b, "PARTLABEL=rootfs_a, PARTUUID=3c1f9e27-8a4b-4d6c-9e2f-5b7a1c3d5e72, squashfs)")?;
    contains(&b, "watchdog /dev/watchdog armed: 60 s")?;
    want(&b, "lower-visible", "/dev/mmcblk2p2")?;
    want(&b, "data-visible", "ext4")?;
    want(&b, "slot", "a")?;
    want(&b, "counter", "1")?;
    let b = ctx.boot(&disk, "", "evk-emmc-2")?;
    booted(&b)?;
    want(&b, "cpus", "1")?;
    want(&b, "counter", "2")
}

/// A kernel whose uSDHC driver is not in `oinit.modules` (a vendor kernel's settings on
/// Debian's, say): the eMMC never appears, and the boot fails naming what it waited for, what it
/// saw (no block device at all) and where the driver belongs, then reboots by itself; nothing on
/// the card is touched.
pub fn no_usdhc_driver(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("evk-no-usdhc")?;
    let settings = "oinit.modules=squashfs,ext4,overlay,imx2_wdt oinit.timeout=5 oinit.rebootdelay=1";
    let b = ctx.boot(&disk, settings, "evk-no-usdhc")?;
    failed_with(&b, "A/B slot device PARTLABEL=rootfs_a (oinit.a) or PARTLABEL=rootfs_b (oinit.b) not found after")?;
    contains(&b, "saw: no block devices (is the disk driver in oinit.modules?)")?;
    if std::fs::read(&disk).map_err(|e| e.to_string())? != std::fs::read(&ctx.pristine).map_err(|e| e.to_string())? {
        return Err("the card changed although no partition was found".into());
    }
    Ok(())
}

/// `module` was loaded (its line in the boot report) after each of `deps`.
fn loaded_after(b: &Boot, module: &str, deps: &[&str]) -> Result<(), String> {
    let report = b.report().ok_or("no boot report")?;
    let at = |m: &str| report.find(&format!("\"{m} loaded"));
    let own = at(module).ok_or(format!("{module} not loaded: {report}"))?;
    match deps.iter().find(|d| at(d).is_none_or(|a| a > own)) {
        Some(d) => Err(format!("{module} loaded before {d}, which it needs (or {d} not loaded): {report}")),
        None => Ok(()),
    }
}
