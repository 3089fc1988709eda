//! The userspace slot commands against a state file, through the real binary: what an operator
//! (or RAUC, or a systemd unit) would run.

use overlay_init::ab::state::{SlotId, State};
use overlay_init::ab::store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cli(state: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_overlay-init")).args(args).arg("--state").arg(state).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn state_file(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oi-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("state")
}

fn read(path: &Path) -> State {
    Store::open(path).unwrap().1.unwrap()
}

#[test]
fn mark_good_bad_rollback_and_reset() {
    let path = state_file("cmds");
    let (code, out) = cli(&path, &["rollback"]);
    assert_eq!((code, out.trim()), (0, "slot b boots next"));
    assert_eq!(read(&path).active, SlotId::B);
    let (code, out) = cli(&path, &["mark-good", "a"]);
    assert_eq!((code, out.trim()), (0, "slot a marked good"));
    let (code, out) = cli(&path, &["mark-bad", "b"]);
    assert_eq!((code, out.trim()), (0, "slot b marked bad; slot a boots next"));
    let (code, out) = cli(&path, &["rollback"]);
    assert_eq!(code, 1);
    assert!(out.contains("slot b is marked bad; refusing"), "{out}");
    let st = read(&path);
    assert!(st.slot(SlotId::B).bad && st.slot(SlotId::A).good);
    assert_eq!(st.active, SlotId::A);
    let (code, out) = cli(&path, &["mark-bad", "c"]);
    assert_eq!(code, 2, "not a slot is a usage error");
    assert!(out.contains("'c' is not a slot"), "{out}");
    let (code, _) = cli(&path, &["factory-reset"]);
    assert_eq!(code, 0);
    assert!(read(&path).reset_requested);
    let (code, out) = cli(&path, &["status", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"reset_requested\": true") && out.contains("\"bad\": true"), "{out}");
    let (code, out) = cli(&path, &["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("slot b: bad") && out.contains("factory reset requested"), "{out}");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_write_that_cannot_happen_fails_loudly() {
    let path = state_file("ro");
    cli(&path, &["mark-good", "a"]);
    let dir = path.parent().unwrap();
    // A state path inside a regular file cannot be opened: non-zero exit, the reason named.
    let bogus = path.join("nested");
    let (code, out) = cli(&bogus, &["mark-good", "a"]);
    assert_eq!(code, 1);
    assert!(out.contains("cannot open the slot state"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rauc_backend_requests() {
    let path = state_file("rauc");
    let (code, out) = cli(&path, &["rauc", "get-primary"]);
    assert_eq!((code, out.trim()), (0, "a"));
    let (code, out) = cli(&path, &["rauc", "set-primary", "b"]);
    assert_eq!((code, out.trim()), (0, ""));
    assert_eq!(cli(&path, &["rauc", "get-primary"]).1.trim(), "b");
    let st = read(&path);
    assert!(!st.slot(SlotId::B).good && st.slot(SlotId::B).tries > 0, "set-primary starts a trial");
    assert_eq!(cli(&path, &["rauc", "set-state", "b", "bad"]).0, 0);
    assert_eq!(cli(&path, &["rauc", "get-state", "b"]).1.trim(), "bad");
    // A bad primary is not what boots next: a is primary again (and stays, good or not b).
    assert_eq!(cli(&path, &["rauc", "get-primary"]).1.trim(), "a");
    assert_eq!(cli(&path, &["rauc", "set-state", "b", "good"]).0, 0);
    assert_eq!(cli(&path, &["rauc", "get-state", "b"]).1.trim(), "good");
    let (code, out) = cli(&path, &["rauc", "set-state", "c", "good"]);
    assert_eq!(code, 1);
    assert!(out.contains("unknown bootname 'c'"), "{out}");
    // Invoked through a symlink named overlay-init-rauc, as system.conf names the handler.
    let link = path.parent().unwrap().join("overlay-init-rauc");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_overlay-init"), &link).unwrap();
    let out = Command::new(&link).args(["get-primary", "--state"]).arg(&path).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "a");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn usage_errors_and_read_only_queries() {
    let path = state_file("usage");
    // Read-only commands never create the state record.
    let (code, out) = cli(&path, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(!path.exists(), "status created the state file");
    assert_eq!(cli(&path, &["rauc", "get-state", "a"]).0, 0);
    assert!(!path.exists(), "get-state created the state file");
    // A misspelt flag is a usage error, not silently ignored.
    let (code, out) = cli(&path, &["install", "/nonexistent.sqfs", "--sha-256", "00"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown option --sha-256"), "{out}");
    // An empty or malformed checksum fails before anything is read or written.
    let img = path.with_file_name("img.sqfs");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&img, b"hsqs").unwrap();
    for bad in ["", "0123"] {
        let (code, out) = cli(&path, &["install", img.to_str().unwrap(), "--slot", "b", "--sha256", bad]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("is not 64 hex digits") || out.contains("no image location"), "{out}");
    }
    let (code, out) = cli(&path, &["install", img.to_str().unwrap(), "--sha256"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--sha256 needs a value"), "{out}");
    // Options a command does not take, and wrong argument counts, are usage errors too.
    for (args, says) in [
        (&["status", "--force"][..], "status does not take --force"),
        (&["rollback", "a"][..], "rollback takes fewer arguments"),
        (&["mark-good", "a", "b"][..], "mark-good takes fewer arguments"),
        (&["install"][..], "install is missing an argument"),
        (&["factory-reset", "--json"][..], "factory-reset does not take --json"),
    ] {
        let (code, out) = cli(&path, args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
    assert!(!path.exists(), "a usage error wrote the state");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_corrupt_record_is_never_shown_silently() {
    let path = state_file("corrupt");
    assert_eq!(cli(&path, &["mark-good", "a"]).0, 0);
    // Both copies torn: the default is shown, with a warning that says so.
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().step_by(7) {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (code, out) = cli(&path, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no valid copy of the state record"), "{out}");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// The keys and enum values `status --json` may show, read from the table in docs/commands.md.
fn documented_status_keys() -> (Vec<String>, String) {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/commands.md")).unwrap();
    let section = doc.split("## `status --json` (schema 1)").nth(1).unwrap().split("\n## ").next().unwrap();
    let keys = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect();
    (keys, section.to_string())
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// `status --json` has exactly the documented keys, with the documented values, whether the
/// record was never written, was read, or does not exist at all.
#[test]
fn status_json_has_the_documented_shape() {
    let (mut documented, section) = documented_status_keys();
    documented.sort();
    assert!(documented.len() >= 10, "the table was not read: {documented:?}");
    let json = |out: &str| serde_json::from_str::<serde_json::Value>(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let path = state_file("json");
    let (code, out) = cli(&path, &["status", "--json"]);
    let v = json(&out);
    assert_eq!((code, keys(&v)), (0, documented.clone()));
    assert_eq!((v["schema"].as_u64(), v["state_record"]["status"].as_str()), (Some(1), Some("missing")));
    cli(&path, &["mark-good", "a"]);
    let v = json(&cli(&path, &["status", "--json"]).1);
    assert_eq!((v["state_record"]["status"].as_str(), v["slots"][0]["state"].as_str()), (Some("valid"), Some("good")));
    for value in [&v["slots"][0]["last_boot"], &v["history"][0]["reason"]] {
        let value = value.as_str().unwrap();
        assert!(section.contains(&format!("`\"{value}\"`")), "{value} is not documented");
    }
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    // No state record at all (no --state, and this host was not booted by overlay-init).
    if Path::new("/run/overlay-init/slots").exists() {
        eprintln!("SKIPPED the no-record half: this host has /run/overlay-init/slots");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_overlay-init")).args(["status", "--json"]).output().unwrap();
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!((out.status.code(), keys(&v)), (Some(0), documented));
    assert!(v["state_record"].is_null() && v["slots"].as_array().unwrap().is_empty(), "{v}");
}
