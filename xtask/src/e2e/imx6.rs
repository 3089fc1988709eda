//! End-to-end tests of the i.MX6 board on emulated i.MX6 silicon: QEMU's sabrelite machine
//! (i.MX6Q, Cortex-A9, uSDHC, i.MX UARTs, imx2 watchdog) boots Debian's armmp kernel from the
//! board's own genimage image attached as an SD card, found by its MBR PARTUUIDs.

use crate::e2e::harness::{booted, contains, want, Ctx, Needs, Scenario};

pub const SCENARIOS: [Scenario; 3] = [
    ("imx6-sabrelite-sd-card-four-cores", sd_card, Needs::Nothing),
    ("imx6-watchdog-resets-hung-userspace", watchdog, Needs::Watchdog),
    ("imx6-uboot-ab-settings-boot-slot-b", crate::e2e::imx_uboot::slot_b_as_uboot_names_it, Needs::Nothing),
];

/// The genimage image boots on the i.MX6 Quad's four cores: the GPIO banks, then the uSDHC
/// driver, the card's partitions by PARTUUID and label, the watchdog armed; a file written in
/// boot 1 is there in boot 2 (one core, the i.MX6 Solo).
fn sd_card(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("sd-card")?;
    let b = ctx.boot_on_cores(&disk, "", "sd-card-1", 4)?;
    booted(&b)?;
    want(&b, "cpus", "4")?;
    for module in ["gpio_mxc loaded", "sdhci_esdhc_imx loaded", "imx2_wdt loaded"] {
        contains(&b, module)?;
    }
    contains(&b, "PARTUUID=0a6c1e5f-02, squashfs)")?;
    contains(&b, "ext4 LABEL=UserData")?;
    contains(&b, "watchdog /dev/watchdog armed: 60 s")?;
    let lower = b.marker("lower-visible").unwrap_or_default();
    if !(lower.starts_with("/dev/mmcblk") && lower.ends_with("p2")) {
        return Err(format!("lower is {lower:?}, want the SD card's second partition"));
    }
    want(&b, "data-visible", "ext4")?;
    want(&b, "counter", "1")?;
    let b = ctx.boot(&disk, "", "sd-card-2")?;
    booted(&b)?;
    want(&b, "cpus", "1")?;
    want(&b, "counter", "2")
}

/// A userspace that hangs without taking the watchdog over: the SoC's watchdog resets the board
/// and the next boot goes on from the same data.
///
/// The driver gets the same 5 s as a module parameter because QEMU's imx2 model on sabrelite
/// (7.2 and 10.0 alike) drops the enable bit when WCR is written again with a new timeout, which
/// `WDIOC_SETTIMEOUT` does; with the value unchanged the driver writes nothing. QEMU 10's
/// imx8mp-evk keeps the bit: the imx8 board's watchdog scenario sets the timeout the normal way.
fn watchdog(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("watchdog")?;
    let append = "imx2_wdt.timeout=5 oinit.watchdogtimeout=5 oitest=hang-once";
    let b = ctx.boot_allowing_resets(&disk, append, "watchdog")?;
    contains(&b, "imx2_wdt (timeout=5) loaded")?;
    contains(&b, "watchdog /dev/watchdog armed: 5 s")?;
    contains(&b, "OI: hanging")?;
    let starts =
        b.console.lines().filter(|l| l.contains("overlay-init: overlay-init ") && l.ends_with(" starting")).count();
    if starts != 2 {
        return Err(format!("{starts} boots on the console, want 2: the hung one and the one after the reset"));
    }
    booted(&b)?;
    want(&b, "counter", "2")
}
