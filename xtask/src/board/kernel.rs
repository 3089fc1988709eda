//! Which kernel a board is built and booted with: the Debian kernel `tests/setup.sh` downloaded
//! for its architecture (the default), another series of it (`--kernel 5.10`), a kernel tree
//! laid out the same way (`--kernel DIR`), or only the modules of a vendor or BSP kernel
//! (`--modules DIR [--kernel-version V]`) for the initramfs and the board checks.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The kernel options of the command line, the same for every board of one xtask run.
#[derive(Default, Debug, PartialEq)]
pub struct Choice {
    /// `--kernel`: a series (`5.10`: `target/kernels/ARCH-5.10`) or a directory with `vmlinuz`,
    /// `lib/modules/VERSION`, `dtbs/` and `busybox`.
    pub tree: Option<String>,
    /// `--modules`: `lib/modules/VERSION` itself, or a root holding it (a Buildroot `target/`, a
    /// Yocto image rootfs, a BSP's staging tree).
    pub modules: Option<PathBuf>,
    /// `--kernel-version`: which `lib/modules/VERSION`, when the root holds several.
    pub version: Option<String>,
}

static CHOICE: OnceLock<Choice> = OnceLock::new();

/// Takes the kernel options out of `args` (anywhere among them) and keeps them for the run.
pub fn take_options(args: &mut Vec<String>) -> Result<(), String> {
    let mut c = Choice::default();
    let mut i = 0;
    while i < args.len() {
        let slot = match args[i].as_str() {
            "--kernel" => &mut c.tree,
            "--kernel-version" => &mut c.version,
            "--modules" => {
                let v = args.get(i + 1).ok_or("--modules takes a directory")?.clone();
                c.modules = Some(PathBuf::from(v));
                args.drain(i..i + 2);
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        *slot = Some(args.get(i + 1).ok_or(format!("{} takes a value", args[i]))?.clone());
        args.drain(i..i + 2);
    }
    CHOICE.set(c).map_err(|_| "kernel options given twice".to_string())
}

fn choice() -> &'static Choice {
    CHOICE.get_or_init(Choice::default)
}

/// Whether this run uses another kernel than the downloaded default (its artefacts then go to a
/// folder of their own).
pub fn is_default() -> bool {
    *choice() == Choice::default()
}

/// The kernel tree for a board of Debian architecture `deb_arch`, relative paths from `root`.
pub fn tree(root: &Path, deb_arch: &str) -> PathBuf {
    let kernels = root.join("target/kernels");
    match choice().tree.as_deref() {
        None => kernels.join(deb_arch),
        Some(series) if is_series(series) => kernels.join(format!("{deb_arch}-{series}")),
        Some(dir) => root.join(dir),
    }
}

/// `5.10`, `6.12`: a series of the downloaded kernels, not a path.
fn is_series(s: &str) -> bool {
    s.split('.').count() == 2 && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The modules directory (`.../lib/modules/VERSION`) and its version, for the kernel tree `tree`
/// or the `--modules` directory; every way it can be missing says what to run.
pub fn modules(root: &Path, tree: &Path) -> Result<(PathBuf, String), String> {
    let c = choice();
    let base = c.modules.as_ref().map_or_else(|| tree.to_path_buf(), |m| root.join(m));
    let what = if c.modules.is_some() { "--modules" } else { "the kernel tree" };
    if !base.exists() {
        let fix = if c.modules.is_some() || c.tree.is_some() { "check the path" } else { "run tests/setup.sh" };
        return Err(format!("{what} {}: no such directory ({fix})", base.display()));
    }
    // lib/modules/VERSION itself: it has modules.dep or the kernel/ folder.
    if base.join("modules.dep").exists() || base.join("kernel").is_dir() {
        let version = base.file_name().map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
        return checked(base.clone(), c.version.clone().unwrap_or(version));
    }
    let parent = if base.join("lib/modules").is_dir() { base.join("lib/modules") } else { base.clone() };
    let version = match (&c.version, std::fs::read_to_string(tree.join("version"))) {
        (Some(v), _) => v.clone(),
        (None, Ok(v)) if c.modules.is_none() => v.trim().to_string(),
        _ => {
            let mut found: Vec<String> = std::fs::read_dir(&parent)
                .map_err(|e| format!("{what} {}: {e}", parent.display()))?
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            found.sort();
            match &found[..] {
                [one] => one.clone(),
                [] => return Err(format!("{what} {}: no lib/modules/VERSION in it", base.display())),
                many => {
                    return Err(format!(
                        "{what} {}: kernels {}: choose one with --kernel-version",
                        base.display(),
                        many.join(", ")
                    ))
                }
            }
        }
    };
    checked(parent.join(&version), version)
}

/// The directory exists and has the index the module resolution reads.
fn checked(dir: PathBuf, version: String) -> Result<(PathBuf, String), String> {
    if !dir.join("modules.dep").exists() {
        return Err(format!(
            "{}: no modules.dep: run `depmod -b ROOT {version}` on the tree first (ROOT holds lib/modules)",
            dir.display()
        ));
    }
    Ok((dir, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_or_path() {
        assert!(is_series("5.10") && is_series("6.12"));
        assert!(!is_series("5") && !is_series("target/k") && !is_series("5.10.0") && !is_series("5."));
    }
}
