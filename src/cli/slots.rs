//! The A/B commands run in userspace: status, mark-good, mark-bad, rollback, factory-reset, and
//! the RAUC custom bootloader backend. Each reads the state record, changes it in memory with the
//! same functions the boot uses, and writes it with one crash-safe save.

use crate::ab::handoff::{Context, Record};
use crate::ab::slots;
use crate::ab::state::{SlotId, State};
use crate::cli::args::Args;
use crate::cli::error::CliError;

/// Runs one slot command (its options already checked by `cli::args`); returns the exit code.
pub fn run(cmd: &str, a: &Args) -> i32 {
    let rest = &a.rest;
    let (json, reboot, force) = (a.flag("--json"), a.flag("--reboot"), a.flag("--force"));
    let (slot, sha, key) = (a.value("--slot"), a.value("--sha256"), a.path("--key"));
    let token = a.path("--downgrade-token");
    let state = a.path("--state");
    let ctx = match Context::load(state) {
        Ok(c) => c,
        // A board that boots one image without a state record: status says what it can.
        Err(_) if cmd == "status" => {
            println!("{}", if json { status_json(None) } else { status_text(None) });
            return 0;
        }
        Err(e) => return fail(&CliError::Refused(e)),
    };
    let slot_arg = |a: Option<&String>| ctx.slot_arg(a).map_err(CliError::Usage);
    let refused = |r: Result<String, String>| r.map_err(CliError::Refused);
    // Under U-Boot the tries and the order live in its environment: the commands change them there.
    let by_uboot = if ctx.uboot { crate::cli::bootloader::run(cmd, &ctx, rest.first()) } else { None };
    let result = if let Some(r) = by_uboot {
        r
    } else {
        match cmd {
            "status" => refused(ctx.read_record().map(|(st, record)| {
                let found = Some((&ctx, &st, record));
                if json {
                    status_json(found)
                } else {
                    status_text(found)
                }
            })),
            "mark-good" => slot_arg(rest.first()).and_then(|s| {
                refused(ctx.update(|st| {
                    ctx.mark_good(st, s);
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
                slots::activate(st, target, ctx.policy, None);
                Ok(format!("slot {} boots next", target.name()))
            })),
            "factory-reset" => refused(ctx.update(|st| {
                st.reset_requested = true;
                st.reset_attempts = 0;
                Ok("factory reset requested: every upper is wiped on the next boot".into())
            })),
            "rauc" => refused(crate::cli::rauc::handle(&ctx, rest)),
            "install" => match rest.first() {
                None => Err(CliError::Usage("install needs an IMAGE".into())),
                Some(image) => slot.map(|s| slot_arg(Some(&s.to_string()))).transpose().and_then(|slot| {
                    refused(crate::cli::install::install(
                        &ctx,
                        &crate::cli::install::Request {
                            image: std::path::Path::new(image),
                            slot,
                            sha256: sha,
                            force,
                            key: key.as_deref(),
                            downgrade_token: token.as_deref(),
                        },
                    ))
                }),
            },
            _ => Err(CliError::Usage(format!("unknown command {cmd}"))),
        }
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

/// The booted system's state record as `status` shows it: the context, the state (the default
/// when the record holds none) and what the record held. `None`: no state record at all.
type Found<'a> = Option<(&'a Context, &'a State, Record)>;

fn status_text(found: Found) -> String {
    let mut out = match found {
        Some((ctx, st, _)) => {
            let mut out = format!("booted slot: {}\n{st}", ctx.booted.map_or("unknown", |s| s.name()));
            if ctx.uboot {
                out.push_str(&format!("{}\n", crate::cli::bootloader::status_line()));
            }
            out
        }
        None => format!(
            "booted slot: none (no A/B state: {} is missing)\nno state record: this system boots one image without one\n",
            crate::ab::handoff::SLOTS_FILE
        ),
    };
    if let Ok(report) = std::fs::read_to_string(crate::config::paths::REPORT) {
        if let Some(v) = report.lines().find(|l| l.contains("\"volatile\"")) {
            out.push_str(&format!("boot report: {}\n", v.trim().trim_end_matches(',')));
        }
        // Both stages of a kernel hand-over: which kernel chose the slot, which one runs it.
        if let Some(v) = report.lines().find(|l| l.trim_start().starts_with("\"stage1\"")) {
            out.push_str(&format!("kernel hand-over: {}\n", v.trim().trim_end_matches(',')));
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

/// `status --json`, schema 1 (docs/commands.md): every key is always there; what the system
/// does not have is `null` (no state record: `state_record`, `active`, `generation`,
/// `reset_requested` are null and `slots`, `history` empty).
fn status_json(found: Found) -> String {
    use crate::util::json::json_str;
    let null = || "null".to_string();
    let slot = |ctx: &Context, st: &State, s: SlotId| {
        let v = st.slot(s);
        let state = if v.bad {
            "bad"
        } else if v.good {
            "good"
        } else {
            "trial"
        };
        format!(
            "{{\"name\": \"{}\", \"state\": \"{state}\", \"tries\": {}, \"good\": {}, \"bad\": {}, \"image\": \"{:08x}\", \"digest\": {}, \"last_boot\": \"{}\", \"source\": {}}}",
            s.name(),
            v.tries,
            v.good,
            v.bad,
            v.image,
            crate::ab::state::digest_text(&v.digest).map_or_else(null, |d| json_str(&d)),
            v.last.code(),
            ctx.sources[s.index()].as_deref().map_or_else(null, json_str)
        )
    };
    let (booted, record, active, generation, reset, floor, slots, history) = match found {
        None => (null(), null(), null(), null(), null(), null(), String::new(), String::new()),
        Some((ctx, st, record)) => {
            let history: Vec<String> = st
                .history
                .iter()
                .map(|e| {
                    format!(
                        "{{\"boot\": {}, \"slot\": \"{}\", \"reason\": \"{}\"}}",
                        e.boot,
                        e.slot.name(),
                        e.reason.code()
                    )
                })
                .collect();
            (
                ctx.booted.map_or_else(null, |s| json_str(s.name())),
                format!(
                    "{{\"path\": {}, \"status\": \"{}\"}}",
                    json_str(&ctx.state.display().to_string()),
                    record.code()
                ),
                json_str(st.active.name()),
                st.generation.to_string(),
                st.reset_requested.to_string(),
                st.security_floor.to_string(),
                format!("{}, {}", slot(ctx, st, SlotId::A), slot(ctx, st, SlotId::B)),
                history.join(", "),
            )
        }
    };
    let file = |p: &str| std::fs::read_to_string(p).map_or_else(|_| null(), |t| t.trim().to_string());
    format!(
        "{{\"schema\": 1, \"booted\": {booted}, \"state_record\": {record}, \"active\": {active}, \"generation\": {generation}, \"reset_requested\": {reset}, \"security_floor\": {floor}, \"slots\": [{slots}], \"history\": [{history}], \"boot_report\": {}, \"reconcile\": {}, \"uboot\": {}}}",
        file(crate::config::paths::REPORT),
        file(crate::config::paths::RECONCILE),
        match found {
            Some((ctx, _, _)) if ctx.uboot => crate::cli::bootloader::status_json(),
            _ => null(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_lines_in_status() {
        use crate::reconcile::rules::{Action, Class, Entry, Outcome};
        let mut o = Outcome::listing(None);
        for e in [
            Entry {
                path: "/etc/a".into(),
                rel: "etc/a".into(),
                class: Class::Conflict,
                action: Action::Carry,
                why: "the image changed it",
            },
            Entry {
                path: "/etc/b".into(),
                rel: "etc/b".into(),
                class: Class::StaleCopy,
                action: Action::Drop,
                why: "",
            },
        ] {
            o.add(e);
        }
        assert_eq!(
            reconcile_text(&o.to_json(&[("slot", "b".into())])),
            "reconciled upper: {\"stale-copy\": 1, \"conflict\": 1}\nconflicts: /etc/a (see /run/overlay-init/reconcile.json)\n"
        );
    }
}
