//! The slot commands when U-Boot chooses the slots (`oinit.bootloader=uboot`): they change
//! RAUC's boot selection in U-Boot's environment (the `fw_env.config` the boot left in
//! /run/overlay-init), with the same arguments and exit codes as under overlay-init's own
//! counting. Only `mark-good` also writes overlay-init's record: the confirmation raises the
//! security floor there. `install` is the usual one, with the U-Boot steps of `uboot_install`.

use crate::ab::handoff::Context;
use crate::ab::state::SlotId;
use crate::cli::error::CliError;
use crate::config::paths::UBOOT_ENV_CONFIG;
use crate::uboot::bootchooser::{bootname, describe, Change, Chooser};
use crate::uboot::store;

/// Runs `cmd` against U-Boot's environment; None: the command is not about the selection.
pub fn run(cmd: &str, ctx: &Context, slot: Option<&String>) -> Option<Result<String, CliError>> {
    let slot_arg = |a: Option<&String>| ctx.slot_arg(a).map_err(CliError::Usage);
    let refused = |r: Result<Chooser, String>| r.map_err(CliError::Refused);
    Some(match cmd {
        "mark-good" => slot_arg(slot).and_then(|s| {
            let c = refused(store::change(UBOOT_ENV_CONFIG, Change::Good(s)))?;
            ctx.update(|st| {
                ctx.mark_good(st, s);
                Ok(String::new())
            })
            .map_err(CliError::Refused)?;
            Ok(format!("slot {} marked good\n{}", s.name(), describe(&c)))
        }),
        "mark-bad" => slot_arg(slot).and_then(|s| {
            let c = refused(store::change(UBOOT_ENV_CONFIG, Change::Bad(s)))?;
            Ok(format!("slot {} marked bad\n{}", s.name(), describe(&c)))
        }),
        "rollback" => {
            let target = ctx.booted.unwrap_or(SlotId::A).other();
            rollback(target).map_err(CliError::Refused)
        }
        _ => return None,
    })
}

/// RAUC's set-primary for the slot not booted, unless the environment says it is bad.
fn rollback(target: SlotId) -> Result<String, String> {
    let (_, loaded) = store::open(UBOOT_ENV_CONFIG)?;
    let now = Chooser::read(&loaded.vars)?;
    if !now.order.contains(&target) && now.left[target.index()] == 0 {
        return Err(format!(
            "slot {} is marked bad in U-Boot's environment (not in BOOT_ORDER, no tries left); refusing to roll \
             back to it",
            bootname(target)
        ));
    }
    let c = store::change(UBOOT_ENV_CONFIG, Change::Primary(target))?;
    Ok(format!("slot {} boots next\n{}", target.name(), describe(&c)))
}

/// `status --json`'s `uboot`: `{"next", "order", "left"}` or `{"error"}`.
pub fn status_json() -> String {
    use crate::util::json::json_str;
    match store::selection(UBOOT_ENV_CONFIG) {
        Ok(c) => {
            let order: Vec<String> = c.order.iter().map(|s| json_str(bootname(*s))).collect();
            format!(
                "{{\"next\": {}, \"order\": [{}], \"left\": {{\"A\": {}, \"B\": {}}}}}",
                c.next().map_or_else(|| "null".into(), |s| json_str(bootname(s))),
                order.join(", "),
                c.left[0],
                c.left[1]
            )
        }
        Err(e) => format!("{{\"error\": {}}}", json_str(&e)),
    }
}

/// `status`'s view of the environment: what U-Boot boots next, or why it cannot be read.
pub fn status_line() -> String {
    match store::selection(UBOOT_ENV_CONFIG) {
        Ok(c) => describe(&c),
        Err(e) => format!("U-Boot's environment: {e}"),
    }
}
