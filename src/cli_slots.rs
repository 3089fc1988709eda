//! The A/B commands run in userspace: status, mark-good, mark-bad, rollback, factory-reset, and
//! the RAUC custom bootloader backend. Each reads the state record, changes it in memory with the
//! same functions the boot uses, and writes it with one crash-safe save.

use crate::slots::{self, Policy};
use crate::stage::slot::SLOTS_FILE;
use crate::state::{SlotId, State};
use crate::store::Store;
use std::path::PathBuf;

/// Exit codes: 0 done, 1 the state could not be read or written, 2 usage.
pub const EXIT_STATE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// What the boot left for us in /run/overlay-init/slots.
pub struct Context {
    pub booted: Option<SlotId>,
    pub state: PathBuf,
    pub policy: Policy,
    pub sources: [Option<String>; 2],
    /// Each slot's verity hash partition, when its tree is not appended to the image.
    pub hash: [Option<String>; 2],
    /// The board's verity key the boot left behind: images must be signed with it.
    pub verity_key: Option<PathBuf>,
}

impl Context {
    pub fn load(state_override: Option<PathBuf>) -> Result<Context, String> {
        let text = std::fs::read_to_string(SLOTS_FILE).unwrap_or_default();
        let get = |k: &str| slots_file_value(&text, k);
        let state = state_override.or_else(|| get("state").map(PathBuf::from)).ok_or(format!(
            "{SLOTS_FILE} is missing: this system was not booted by overlay-init with A/B slots (or pass --state FILE)"
        ))?;
        let sources = [get("a"), get("b")];
        Ok(Context {
            booted: get("booted").and_then(|s| SlotId::parse(&s)),
            state,
            policy: Policy {
                tries: get("tries").and_then(|t| t.parse().ok()).unwrap_or(3),
                late_fallback: false,
                one_slot: sources[0].is_some() && sources[1].is_none(),
            },
            sources,
            hash: [get("ahash"), get("bhash")],
            verity_key: Some(PathBuf::from(crate::install::DEVICE_KEY)).filter(|k| k.exists()),
        })
    }

    /// Reads the state, applies `change`, and saves it (fsynced) unless `change` refuses.
    pub fn update(&self, change: impl FnOnce(&mut State) -> Result<String, String>) -> Result<String, String> {
        let (mut store, st) = Store::open(&self.state)
            .map_err(|e| format!("cannot open the slot state {}: {e}", self.state.display()))?;
        let mut st = st.unwrap_or_else(|| State::factory(self.policy.tries));
        let msg = change(&mut st)?;
        store
            .save(&mut st)
            .map_err(|e| format!("cannot write the slot state {}: {e}; nothing changed", self.state.display()))?;
        Ok(msg)
    }

    /// Reads the state without writing anything. A missing file is the documented default; a
    /// file with no valid copy is too, but never silently: the warning goes to stderr.
    pub fn read(&self) -> Result<State, String> {
        let st = crate::store::read_only(&self.state)
            .map_err(|e| format!("cannot read the slot state {}: {e}", self.state.display()))?;
        if st.is_none() && self.state.exists() {
            eprintln!(
                "overlay-init: WARNING: no valid copy of the state record in {}: showing the default (slot a)",
                self.state.display()
            );
        }
        Ok(st.unwrap_or_else(|| State::factory(self.policy.tries)))
    }

    /// The identity of the image in the slot now (its squashfs superblock), if readable.
    pub fn image_id(&self, slot: SlotId) -> Option<u32> {
        crate::blockdev::image_id_at(std::path::Path::new(self.sources[slot.index()].as_ref()?))
    }

    fn slot_arg(&self, arg: Option<&String>) -> Result<SlotId, String> {
        match arg {
            Some(a) => SlotId::parse(a).ok_or(format!("'{a}' is not a slot: use a or b")),
            None => self.booted.ok_or("which slot? the booted one is unknown; name it: a or b".into()),
        }
    }
}

/// One value of the slots file: `key=value` per line, the value is the rest of the line, so a
/// path with spaces or quotes reads back as it was written.
fn slots_file_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
}

/// Runs one slot command; returns the exit code.
pub fn run(cmd: &str, args: &[String]) -> i32 {
    let mut state = None;
    let mut rest = Vec::new();
    let (mut json, mut reboot, mut force) = (false, false, false);
    let (mut slot, mut sha, mut key) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        // A flag right after a value-taking flag means the value is missing.
        let mut value = || it.next().filter(|v| !v.starts_with("--")).cloned().ok_or(format!("{a} needs a value"));
        let parsed = match a.as_str() {
            "--state" => value().map(|v| state = Some(PathBuf::from(v))),
            "--slot" => value().map(|v| slot = Some(v)),
            "--sha256" => value().map(|v| sha = Some(v)),
            "--key" => value().map(|v| key = Some(PathBuf::from(v))),
            "--json" => {
                json = true;
                Ok(())
            }
            "--reboot" => {
                reboot = true;
                Ok(())
            }
            "--force" => {
                force = true;
                Ok(())
            }
            flag if flag.starts_with("--") => Err(format!("unknown option {flag}; see 'overlay-init help'")),
            _ => {
                rest.push(a.clone());
                Ok(())
            }
        };
        if let Err(e) = parsed {
            return fail(&e, EXIT_USAGE);
        }
    }
    let ctx = match Context::load(state) {
        Ok(c) => c,
        Err(e) => return fail(&e, EXIT_STATE),
    };
    let result = match cmd {
        "status" => ctx.read().map(|st| if json { status_json(&ctx, &st) } else { status_text(&ctx, &st) }),
        "mark-good" => ctx.slot_arg(rest.first()).and_then(|s| {
            ctx.update(|st| {
                slots::mark_good(st, s, ctx.policy);
                Ok(format!("slot {} marked good", s.name()))
            })
        }),
        "mark-bad" | "rollback" if ctx.policy.one_slot => {
            Err(format!("{cmd}: this board boots one image (oinit.state without slots): there is no other slot"))
        }
        "mark-bad" => ctx.slot_arg(rest.first()).and_then(|s| {
            ctx.update(|st| {
                slots::reject(st, s);
                Ok(format!("slot {} marked bad; slot {} boots next", s.name(), st.active.name()))
            })
        }),
        "rollback" => ctx.update(|st| {
            let target = ctx.booted.unwrap_or(st.active).other();
            if st.slot(target).bad && !st.slot(target).good {
                return Err(format!("slot {} is marked bad; refusing to roll back to it", target.name()));
            }
            slots::activate(st, target, ctx.policy, false);
            Ok(format!("slot {} boots next", target.name()))
        }),
        "factory-reset" => ctx.update(|st| {
            st.reset_requested = true;
            st.reset_attempts = 0;
            Ok("factory reset requested: every upper is wiped on the next boot".into())
        }),
        "rauc" => crate::rauc::handle(&ctx, &rest),
        "install" => match rest.first() {
            None => Err("install needs an IMAGE".into()),
            Some(image) => slot.as_deref().map(|s| ctx.slot_arg(Some(&s.to_string()))).transpose().and_then(|slot| {
                crate::install::install(
                    &ctx,
                    &crate::install::Request {
                        image: std::path::Path::new(image),
                        slot,
                        sha256: sha.as_deref(),
                        force,
                        key: key.as_deref(),
                    },
                )
            }),
        },
        _ => Err(format!("unknown command {cmd}")),
    };
    // Only what changes the slots goes to syslog; queries (status, RAUC's get-*) would flood it.
    let query = cmd == "status" || (cmd == "rauc" && rest.first().is_some_and(|r| r.starts_with("get-")));
    match result {
        Ok(msg) if msg.is_empty() => 0,
        Ok(msg) => {
            println!("{msg}");
            if !query {
                log_user(&format!("{cmd}: {}", msg.lines().next().unwrap_or("")));
            }
            if reboot && cmd == "factory-reset" {
                rustix::fs::sync();
                let _ = std::process::Command::new("reboot").status();
            }
            0
        }
        Err(e) if query => {
            eprintln!("overlay-init: {e}");
            EXIT_STATE
        }
        Err(e) => fail(&e, EXIT_STATE),
    }
}

fn fail(msg: &str, code: i32) -> i32 {
    eprintln!("overlay-init: {msg}");
    log_user(&format!("error: {msg}"));
    code
}

/// Userspace actions also go to syslog (RFC 3164 datagram on /dev/log, facility user, level
/// notice), where fleet tooling collects them. Written directly: the `syslog` crate would add
/// a hostname and time stack to the init binary for one line.
fn log_user(msg: &str) {
    if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = sock.send_to(format!("<13>overlay-init[{}]: {msg}", std::process::id()).as_bytes(), "/dev/log");
    }
}

fn status_text(ctx: &Context, st: &State) -> String {
    let mut out = format!("booted slot: {}\n", ctx.booted.map_or("unknown", |s| s.name()));
    out.push_str(&st.to_string());
    if let Ok(report) = std::fs::read_to_string(crate::paths::REPORT) {
        if let Some(v) = report.lines().find(|l| l.contains("\"volatile\"")) {
            out.push_str(&format!("boot report: {}\n", v.trim().trim_end_matches(',')));
        }
    }
    out.trim_end().to_string()
}

fn status_json(ctx: &Context, st: &State) -> String {
    use crate::report::json_str;
    let slot = |s: SlotId| {
        let v = st.slot(s);
        format!(
            "{{\"name\": \"{}\", \"tries\": {}, \"good\": {}, \"bad\": {}, \"image\": \"{:08x}\", \"last_boot\": \"{}\", \"source\": {}}}",
            s.name(),
            v.tries,
            v.good,
            v.bad,
            v.image,
            v.last.text(),
            ctx.sources[s.index()].as_deref().map_or("null".into(), json_str)
        )
    };
    let history: Vec<String> = st
        .history
        .iter()
        .map(|e| {
            format!(
                "{{\"boot\": {}, \"slot\": \"{}\", \"reason\": {}}}",
                e.boot,
                e.slot.name(),
                json_str(e.reason.text())
            )
        })
        .collect();
    let report = std::fs::read_to_string(crate::paths::REPORT).unwrap_or_else(|_| "null".into());
    format!(
        "{{\"booted\": {}, \"active\": \"{}\", \"generation\": {}, \"reset_requested\": {}, \"slots\": [{}, {}], \"history\": [{}], \"boot_report\": {}}}",
        ctx.booted.map_or("null".into(), |s| json_str(s.name())),
        st.active.name(),
        st.generation,
        st.reset_requested,
        slot(SlotId::A),
        slot(SlotId::B),
        history.join(", "),
        report.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_file_values_keep_spaces() {
        let text = "booted=a\nstate=/run/overlay-init/data/.overlay-init/state\na=/run/overlay-init/data/my images/a \"1\".sqfs\n";
        assert_eq!(slots_file_value(text, "a").as_deref(), Some("/run/overlay-init/data/my images/a \"1\".sqfs"));
        assert_eq!(slots_file_value(text, "booted").as_deref(), Some("a"));
        assert_eq!(slots_file_value(text, "b"), None);
    }
}
