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
