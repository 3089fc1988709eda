//! The A/B commands run in userspace: status, mark-good, mark-bad, rollback, factory-reset, and
//! the RAUC custom bootloader backend. Each reads the state record, changes it in memory with the
//! same functions the boot uses, and writes it with one crash-safe save.

use crate::ab::handoff::Context;
use crate::ab::slots;
use crate::ab::state::{SlotId, State};
use std::path::PathBuf;

/// Why a command did not do its work; the kind is the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// The command line is wrong (unknown option, an option the command does not take, a
    /// missing or extra argument, not a slot): exit 2, nothing was touched.
    Usage(String),
    /// The state or the image was refused, or could not be read or written: exit 1.
    Refused(String),
}

impl CliError {
    pub fn code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Refused(_) => 1,
        }
    }

    fn text(&self) -> &str {
        match self {
            CliError::Usage(t) | CliError::Refused(t) => t,
        }
    }
}

/// The options and how many arguments each command takes.
fn accepts(cmd: &str) -> (&'static [&'static str], std::ops::RangeInclusive<usize>) {
    match cmd {
        "status" => (&["--json"], 0..=0),
        "mark-good" | "mark-bad" => (&[], 0..=1),
        "rollback" => (&[], 0..=0),
        "factory-reset" => (&["--reboot"], 0..=0),
        "install" => (&["--slot", "--sha256", "--key", "--force"], 1..=1),
        // RAUC's requests: checked by the backend itself.
        _ => (&[], 0..=usize::MAX),
    }
}

/// Runs one slot command; returns the exit code.
pub fn run(cmd: &str, args: &[String]) -> i32 {
    let mut state = None;
    let mut rest = Vec::new();
    let mut given = Vec::new();
    let (mut json, mut reboot, mut force) = (false, false, false);
    let (mut slot, mut sha, mut key) = (None, None, None);
    let (flags, count) = accepts(cmd);
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
        if a.starts_with("--") {
            given.push(a.as_str());
        }
        if let Err(e) = parsed {
            return fail(&CliError::Usage(e));
        }
    }
    if let Some(f) = given.iter().find(|f| **f != "--state" && !flags.contains(f)) {
        return fail(&CliError::Usage(format!("{cmd} does not take {f}; see 'overlay-init help'")));
    }
    if !count.contains(&rest.len()) {
        let what = if rest.len() < *count.start() { "is missing an argument" } else { "takes fewer arguments" };
        return fail(&CliError::Usage(format!("{cmd} {what}; see 'overlay-init help'")));
    }
    let ctx = match Context::load(state) {
        Ok(c) => c,
        Err(e) => return fail(&CliError::Refused(e)),
    };
    let slot_arg = |a: Option<&String>| ctx.slot_arg(a).map_err(CliError::Usage);
    let refused = |r: Result<String, String>| r.map_err(CliError::Refused);
    let result = match cmd {
        "status" => refused(ctx.read().map(|st| if json { status_json(&ctx, &st) } else { status_text(&ctx, &st) })),
        "mark-good" => slot_arg(rest.first()).and_then(|s| {
            refused(ctx.update(|st| {
                slots::mark_good(st, s, ctx.policy);
                Ok(format!("slot {} marked good", s.name()))
            }))
        }),
        "mark-bad" | "rollback" if ctx.policy.one_slot => Err(CliError::Refused(format!(
            "{cmd}: this board boots one image (oinit.state without slots): there is no other slot"
        ))),
        "mark-bad" => slot_arg(rest.first()).and_then(|s| {
            refused(ctx.update(|st| {
                slots::reject(st, s);
                Ok(format!("slot {} marked bad; slot {} boots next", s.name(), st.active.name()))
            }))
        }),
        "rollback" => refused(ctx.update(|st| {
            let target = ctx.booted.unwrap_or(st.active).other();
            if st.slot(target).bad && !st.slot(target).good {
                return Err(format!("slot {} is marked bad; refusing to roll back to it", target.name()));
            }
            slots::activate(st, target, ctx.policy, false);
            Ok(format!("slot {} boots next", target.name()))
        })),
        "factory-reset" => refused(ctx.update(|st| {
            st.reset_requested = true;
            st.reset_attempts = 0;
            Ok("factory reset requested: every upper is wiped on the next boot".into())
        })),
        "rauc" => refused(crate::cli::rauc::handle(&ctx, &rest)),
        "install" => match rest.first() {
            None => Err(CliError::Usage("install needs an IMAGE".into())),
            Some(image) => slot.as_deref().map(|s| slot_arg(Some(&s.to_string()))).transpose().and_then(|slot| {
                refused(crate::cli::install::install(
                    &ctx,
                    &crate::cli::install::Request {
                        image: std::path::Path::new(image),
                        slot,
                        sha256: sha.as_deref(),
                        force,
                        key: key.as_deref(),
                    },
                ))
            }),
        },
        _ => Err(CliError::Usage(format!("unknown command {cmd}"))),
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
            eprintln!("overlay-init: {}", e.text());
            e.code()
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &CliError) -> i32 {
    eprintln!("overlay-init: {}", e.text());
    // A mistyped command changed nothing: not worth the system log.
    if let CliError::Refused(_) = e {
        log_user(&format!("error: {}", e.text()));
    }
    e.code()
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
    if let Ok(report) = std::fs::read_to_string(crate::config::paths::REPORT) {
        if let Some(v) = report.lines().find(|l| l.contains("\"volatile\"")) {
            out.push_str(&format!("boot report: {}\n", v.trim().trim_end_matches(',')));
        }
    }
    if let Ok(r) = std::fs::read_to_string(crate::config::paths::RECONCILE) {
        out.push_str(&reconcile_text(&r));
    }
    out.trim_end().to_string()
}

/// The reconciliation of this boot from reconcile.json (one entry per line, as written by
/// `reconcile::Outcome::to_json`): counts and the conflict paths.
fn reconcile_text(json: &str) -> String {
    let counts = json.lines().find_map(|l| l.trim().strip_prefix("\"counts\": ")).unwrap_or("{}");
    let conflicts: Vec<&str> = json
        .lines()
        .filter(|l| l.contains("\"class\": \"conflict\""))
        .filter_map(|l| l.split("\"path\": \"").nth(1)?.split('"').next())
        .collect();
    let mut out = format!("reconciled upper: {}\n", counts.trim_end_matches(','));
    if !conflicts.is_empty() {
        out.push_str(&format!("conflicts: {} (see {})\n", conflicts.join(" "), crate::config::paths::RECONCILE));
    }
    out
}

fn status_json(ctx: &Context, st: &State) -> String {
    use crate::util::json::json_str;
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
    let report = std::fs::read_to_string(crate::config::paths::REPORT).unwrap_or_else(|_| "null".into());
    let reconcile = std::fs::read_to_string(crate::config::paths::RECONCILE).unwrap_or_else(|_| "null".into());
    format!(
        "{{\"booted\": {}, \"active\": \"{}\", \"generation\": {}, \"reset_requested\": {}, \"slots\": [{}, {}], \"history\": [{}], \"boot_report\": {}, \"reconcile\": {}}}",
        ctx.booted.map_or("null".into(), |s| json_str(s.name())),
        st.active.name(),
        st.generation,
        st.reset_requested,
        slot(SlotId::A),
        slot(SlotId::B),
        history.join(", "),
        report.trim(),
        reconcile.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_lines_in_status() {
        use crate::reconcile::rules::{Action, Class, Entry, Outcome};
        let o = Outcome {
            entries: vec![
                Entry {
                    path: "/etc/a".into(),
                    class: Class::Conflict,
                    action: Action::Carry,
                    why: "the image changed it",
                },
                Entry { path: "/etc/b".into(), class: Class::StaleCopy, action: Action::Drop, why: "" },
            ],
        };
        assert_eq!(
            reconcile_text(&o.to_json(&[("slot", "b".into())])),
            "reconciled upper: {\"stale-copy\": 1, \"conflict\": 1}\nconflicts: /etc/a (see /run/overlay-init/reconcile.json)\n"
        );
    }
}
