//! A board's part of the U-Boot boot script (`board/NAME/boot.cmd`) against its layout and
//! settings: the partitions its `oi_load` loads each slot from are that slot's boot partition
//! in genimage.cfg, and the command line it boots with holds the board's and gives settings
//! that pass the board's checks, with the same boot partitions.

use crate::board::{self, Board};
use overlay_init::config::settings::Settings;

/// What `oi_load` does per slot: the partition number it loads from, the command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Load {
    pub parts: [u32; 2],
    pub bootargs: String,
}

/// Reads `setenv oi_load '...'` of the board's script: `setenv oi_part N` (slot B's) and
/// `test "${oi_slot}" = A && setenv oi_part N` (slot A's), and `setenv bootargs "..."`.
pub fn parse(script: &str) -> Result<Load, String> {
    let body = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("setenv oi_load '"))
        .and_then(|l| l.strip_suffix('\''))
        .ok_or("no `setenv oi_load '...'` line")?;
    let number_after = |s: &str, at: &str| -> Option<u32> {
        let rest = &s[s.find(at)? + at.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let a_at = body.find("= A && setenv oi_part ").ok_or("oi_load does not choose slot A's partition")?;
    let a = number_after(&body[a_at..], "setenv oi_part ").ok_or("slot A's partition number")?;
    let b = number_after(&body[..a_at], "setenv oi_part ").ok_or("oi_load does not set slot B's partition")?;
    let args = body.find("setenv bootargs \"").map(|i| &body[i + 17..]).ok_or("oi_load sets no bootargs")?;
    let bootargs = args.split('"').next().unwrap_or_default().to_string();
    Ok(Load { parts: [a, b], bootargs })
}

/// Checks the board's script; returns what it found, for check-boards' report.
pub fn check(b: &Board) -> Result<String, String> {
    let path = b.dir.join("boot.cmd");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let load = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if !load.bootargs.starts_with(&b.cmdline) {
        return Err(format!(
            "{}: oi_load boots with {:?}, which does not start with the board's command line {:?} (board/{}/cmdline)",
            path.display(),
            load.bootargs,
            b.cmdline,
            b.name
        ));
    }
    for (i, slot) in ["A", "B"].into_iter().enumerate() {
        let cmdline = load.bootargs.replace("${oi_slot}", slot);
        let problems = board::check(&b.name, &b.config, &cmdline, &b.layout, &b.modules_index, &b.kernel_version);
        if let Some(p) = problems.first() {
            return Err(format!("with the command line of oi_load for slot {slot}: {p}"));
        }
        let (s, _) = Settings::load(&b.config, &cmdline);
        if !cmdline.contains("oinit.bootloader=uboot") {
            return Err(format!("{}: oi_load's command line lacks oinit.bootloader=uboot", path.display()));
        }
        let spec = s.ab.boot_parts[i]
            .as_ref()
            .ok_or(format!("oi_load's command line names no boot partition for slot {slot}"))?;
        let named = board::partition_of(&b.layout, spec)?.and_then(|p| p.number);
        if named != Some(load.parts[i]) {
            return Err(format!(
                "{}: oi_load loads slot {slot} from partition {}, its command line names {spec} (partition {named:?})",
                path.display(),
                load.parts[i]
            ));
        }
    }
    Ok(format!(
        "board boot script: oi_load loads slot A from partition {}, B from {}, boot partitions as the settings name them",
        load.parts[0], load.parts[1]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_slots_partition_and_the_command_line() {
        let script = "# x\nsetenv oi_load 'setenv oi_part 6; test \"${oi_slot}\" = A && setenv oi_part 5; \
                      setenv bootargs \"console=ttymxc1 rauc.slot=${oi_slot}\"; load mmc 2:${oi_part} 0 vmlinuz'\n";
        let load = parse(script).unwrap();
        assert_eq!(load, Load { parts: [5, 6], bootargs: "console=ttymxc1 rauc.slot=${oi_slot}".into() });
    }

    #[test]
    fn a_script_without_slot_a_is_refused() {
        let script = "setenv oi_load 'setenv oi_part 6; setenv bootargs \"x\"'\n";
        assert_eq!(parse(script).unwrap_err(), "oi_load does not choose slot A's partition");
        assert!(parse("setenv bootcmd 'x'").is_err());
    }
}
