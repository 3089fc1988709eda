//! RAUC's custom bootloader backend (`bootloader=custom` in system.conf), so that RAUC and the
//! update servers behind it drive the slots. RAUC runs the handler with one of:
//! `get-primary`, `set-primary SLOT`, `get-state SLOT`, `set-state SLOT good|bad`,
//! `get-current`; slot names are the `bootname`s of system.conf, here `a` and `b`.

use crate::ab::handoff::Context;
use crate::ab::slots;
use crate::ab::state::{SlotId, DIGEST_UNKNOWN};

/// Runs one RAUC request; Ok(output line) or Err(message), RAUC reads both.
pub fn handle(ctx: &Context, args: &[String]) -> Result<String, String> {
    let slot = |i: usize| -> Result<SlotId, String> {
        let name = args.get(i).ok_or("missing slot bootname")?;
        SlotId::parse(name).ok_or_else(|| format!("unknown bootname '{name}': the slots are a and b"))
    };
    match args.first().map(String::as_str) {
        Some("get-primary") => Ok(ctx.read()?.active.name().to_string()),
        Some("get-current") => ctx
            .booted
            .map(|s| s.name().to_string())
            .ok_or_else(|| "the booted slot is unknown (/run/overlay-init/slots)".into()),
        Some("get-state") => {
            let s = slot(1)?;
            let st = ctx.read()?;
            // Only a confirmed slot is good: a trial (tries left or not) or a slot that never
            // booted is not, so RAUC and the servers behind it never see an unconfirmed update
            // as healthy.
            let v = st.slot(s);
            Ok(if v.good && !v.bad { "good" } else { "bad" }.to_string())
        }
        Some("set-primary") => {
            let s = slot(1)?;
            // RAUC calls set-primary after writing an image AND for `rauc status mark-active`.
            // Only an image that differs from the one the slot holds in the record (its digest,
            // read from the slot now) is new: a trial, and a fresh upper at its boot. The same
            // image keeps its upper and, if it was confirmed, stays confirmed. A board that
            // boots only signed images activates only a signed, whole one: RAUC checked its
            // bundle's signature, this checks what landed in the slot.
            let digest = crate::cli::install::slot_digest(ctx, s)?;
            let on_disk = ctx.image_id(s);
            ctx.update(|st| {
                let v = st.slot(s);
                let written = if v.digest == DIGEST_UNKNOWN {
                    // A slot no writer recorded (factory-flashed, or an older record): its
                    // superblock is all there is to compare.
                    on_disk.is_none_or(|id| id != v.image)
                } else {
                    digest != v.digest
                };
                slots::activate(st, s, ctx.policy, written.then_some(digest));
                if !written {
                    st.slot_mut(s).digest = digest;
                }
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
                    ctx.mark_good(st, s);
                } else if ctx.policy.one_slot {
                    slots::mark_bad(st, s);
                } else {
                    // `rauc status mark-bad booted`: the next boot goes to the other slot, and
                    // get-primary says so.
                    slots::reject(st, s);
                }
                Ok(String::new())
            })
        }
        other => Err(format!("unknown RAUC backend request {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ab::slots::Policy;
    use crate::ab::state::State;
    use crate::ab::store::Store;

    const P: Policy = Policy { tries: 3, late_fallback: false, one_slot: false };

    /// A 4 KiB squashfs image (as far as its superblock goes) whose superblock differs by `build`.
    fn image(build: u8) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[0..4].copy_from_slice(b"hsqs");
        b[8] = build;
        b[28..30].copy_from_slice(&4u16.to_le_bytes());
        b[40..48].copy_from_slice(&4096u64.to_le_bytes());
        b
    }

    #[test]
    fn mark_active_keeps_a_confirmed_image_and_a_written_one_starts_a_trial() {
        let dir = std::env::temp_dir().join(format!("oi-rauc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.sqfs"), dir.join("b.sqfs"));
        std::fs::write(&a, image(1)).unwrap();
        std::fs::write(&b, image(2)).unwrap();
        let ctx = Context {
            booted: Some(SlotId::A),
            state: dir.join("state"),
            policy: P,
            sources: [Some(a.display().to_string()), Some(b.display().to_string())],
            hash: [None, None],
            verity_key: None,
            compatible: None,
            unversioned: false,
            security_version: None,
            kexec: None,
            uboot: false,
            boot: [None, None],
        };
        // Slot a booted image 1 and is confirmed; b booted image 2 and is confirmed too.
        let (mut store, _) = Store::open(&ctx.state).unwrap();
        let mut st = State::factory(3);
        st.slot_mut(SlotId::A).image = ctx.image_id(SlotId::A).unwrap();
        st.slot_mut(SlotId::B).image = ctx.image_id(SlotId::B).unwrap();
        slots::mark_good(&mut st, SlotId::B, P);
        slots::mark_good(&mut st, SlotId::A, P);
        store.save(&mut st).unwrap();
        drop(store);
        let run = |args: &[&str]| handle(&ctx, &args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        // `rauc status mark-active booted`: nothing was written, a stays good, its upper stays.
        run(&["set-primary", "a"]).unwrap();
        assert_eq!(run(&["get-state", "a"]).unwrap(), "good");
        let st = ctx.read().unwrap();
        assert_ne!(st.slot(SlotId::A).image, crate::ab::state::IMAGE_INSTALLED);
        // `rauc status mark-bad booted` on a: b is primary now.
        run(&["set-state", "a", "bad"]).unwrap();
        assert_eq!(run(&["get-primary"]).unwrap(), "b");
        run(&["set-state", "a", "good"]).unwrap();
        // RAUC writes a new image into b, then set-primary b: a trial, not good yet.
        std::fs::write(&b, image(3)).unwrap();
        run(&["set-primary", "b"]).unwrap();
        assert_eq!(run(&["get-primary"]).unwrap(), "b");
        assert_eq!(run(&["get-state", "b"]).unwrap(), "bad", "a slot on trial is not good");
        assert_eq!(ctx.read().unwrap().slot(SlotId::B).image, crate::ab::state::IMAGE_INSTALLED);
        // b boots image 3 (the boot records its superblock) and is confirmed; `mark-active` of
        // the same bytes keeps it so.
        let mut st = ctx.read().unwrap();
        st.slot_mut(SlotId::B).image = ctx.image_id(SlotId::B).unwrap();
        slots::mark_good(&mut st, SlotId::B, P);
        let (mut store, _) = Store::open(&ctx.state).unwrap();
        store.save(&mut st).unwrap();
        drop(store);
        run(&["set-primary", "b"]).unwrap();
        assert_eq!(run(&["get-state", "b"]).unwrap(), "good");
        // Another build whose superblock is the same (reproducible builds, same sizes) but
        // whose contents differ is a new image: a trial and a fresh upper.
        let mut rebuilt = image(3);
        rebuilt[3000] = 0x5a;
        std::fs::write(&b, &rebuilt).unwrap();
        assert_eq!(ctx.image_id(SlotId::B), ctx.read().unwrap().slot(SlotId::B).image.into());
        run(&["set-primary", "b"]).unwrap();
        assert_eq!(run(&["get-state", "b"]).unwrap(), "bad", "a rebuilt image with the same superblock is on trial");
        assert_eq!(ctx.read().unwrap().slot(SlotId::B).image, crate::ab::state::IMAGE_INSTALLED);
        // A board with a verity key activates no slot whose image is not signed with it.
        let key = dir.join("verity.pub");
        std::fs::write(&key, "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAzLHEnxjhNGyhEz/I3uwRA4XwKgyIpHWsiSmHY6KX7sI=\n-----END PUBLIC KEY-----\n").unwrap();
        let signed_board =
            Context { verity_key: Some(key), sources: ctx.sources.clone(), state: ctx.state.clone(), ..ctx };
        let args: Vec<String> = ["set-primary", "a"].iter().map(|s| s.to_string()).collect();
        let e = handle(&signed_board, &args).unwrap_err();
        assert!(e.contains("slot a") && e.contains("not a signed verity image") && e.contains("not activated"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
