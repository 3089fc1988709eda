//! The i.MX boards' U-Boot A/B settings after U-Boot: their U-Boot cannot run in QEMU here, so
//! the kernel is booted directly with the command line the board's own `oi_load` gives slot B
//! (board/BOARD/boot.cmd, read as check-boards reads it). The init must find the slots and boot
//! partitions by the names that script uses (PARTLABEL on the imx8's GPT, the PARTUUIDs of MBR
//! logical partitions on the imx6) and boot the slot U-Boot named, from its partition.

use crate::e2e::harness::{booted, contains, want, Ctx};
use overlay_init::config::ab::SlotSource;
use overlay_init::config::settings::Settings;

pub fn slot_b_as_uboot_names_it(ctx: &Ctx<'_>) -> Result<(), String> {
    let path = ctx.board.dir.join("boot.cmd");
    let script = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let load = crate::board::bootscript::parse(&script)?;
    let cmdline = load.bootargs.replace("${oi_slot}", "B");
    // Slot B's root partition, as the settings name it and genimage numbers it.
    let (s, _) = Settings::load(&ctx.board.config, &cmdline);
    let Some(SlotSource::Partition(spec)) = &s.ab.slots[1] else {
        return Err(format!("{}: oi_load's command line names no partition for slot B", path.display()));
    };
    let number = crate::board::partition_of(&ctx.board.layout, spec)?.and_then(|p| p.number).ok_or("no number")?;
    // The harness puts the board's own command line first, as the script's begins with it.
    let extra = cmdline.strip_prefix(&ctx.board.cmdline).unwrap_or(&cmdline).trim().to_string();
    let disk = ctx.fresh_disk("uboot-settings")?;
    let b = ctx.boot(&disk, &extra, "uboot-settings-b")?;
    booted(&b)?;
    want(&b, "slot", "b")?;
    contains(&b, "chosen by U-Boot")?;
    let lower = b.marker("lower-visible").unwrap_or_default();
    if !(lower.starts_with("/dev/mmcblk") && lower.ends_with(&format!("p{number}"))) {
        return Err(format!("lower is {lower:?}, want slot B's partition {number} ({spec}) on the card"));
    }
    Ok(())
}
