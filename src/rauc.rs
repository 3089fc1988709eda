//! RAUC's custom bootloader backend (`bootloader=custom` in system.conf), so that RAUC and the
//! update servers behind it drive the slots. RAUC runs the handler with one of:
//! `get-primary`, `set-primary SLOT`, `get-state SLOT`, `set-state SLOT good|bad`,
//! `get-current`; slot names are the `bootname`s of system.conf, here `a` and `b`.

use crate::cli_slots::Context;
use crate::slots;
use crate::state::SlotId;

/// Runs one RAUC request; Ok(output line) or Err(message), RAUC reads both.
pub fn handle(ctx: &Context, args: &[String]) -> Result<String, String> {
    let slot = |i: usize| -> Result<SlotId, String> {
        let name = args.get(i).ok_or("missing slot bootname")?;
        SlotId::parse(name).ok_or(format!("unknown bootname '{name}': the slots are a and b"))
    };
    match args.first().map(String::as_str) {
        Some("get-primary") => Ok(ctx.read()?.active.name().to_string()),
        Some("get-current") => ctx
            .booted
            .map(|s| s.name().to_string())
            .ok_or("the booted slot is unknown (/run/overlay-init/slots)".into()),
        Some("get-state") => {
            let s = slot(1)?;
            let st = ctx.read()?;
            Ok(if st.slot(s).bad { "bad" } else { "good" }.to_string())
        }
        Some("set-primary") => {
            let s = slot(1)?;
            // RAUC has just written a new image into the slot: a trial with fresh tries.
            ctx.update(|st| {
                slots::activate(st, s, ctx.policy, true);
                Ok(String::new())
            })
        }
        Some("set-state") => {
            let s = slot(1)?;
            let good = match args.get(2).map(String::as_str) {
                Some("good") => true,
                Some("bad") => false,
                other => return Err(format!("set-state needs good or bad, not {other:?}")),
            };
            ctx.update(|st| {
                if good {
                    slots::mark_good(st, s, ctx.policy);
                } else {
                    slots::mark_bad(st, s);
                }
                Ok(String::new())
            })
        }
        other => Err(format!("unknown RAUC backend request {other:?}")),
    }
}
