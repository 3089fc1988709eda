//! Loads the planned kernel modules with finit_module, skipping loaded and built-in ones.

use crate::modules::{name_of, LoadStep, ModIndex};
use crate::report::Report;
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;
use std::path::Path;

/// `MODULE_INIT_COMPRESSED_FILE` (Linux 6.2+): the kernel decompresses `.ko.xz`/`.ko.zst` itself.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// Reads depmod's files from `dir` (missing files are empty: a kernel with everything built in).
pub fn read_index(dir: &Path) -> ModIndex {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    ModIndex::parse(&read("modules.dep"), &read("modules.softdep"), &read("modules.alias"), &read("modules.builtin"))
}

/// Loads every step; returns one line per module for the report. Failures are warnings: the
/// mount that needed the module fails next with an error naming the filesystem.
pub fn load(steps: &[LoadStep], dir: &Path, sys_module: &Path, report: &mut Report) -> Vec<String> {
    let mut lines = Vec::new();
    for step in steps {
        let mut loaded_any = false;
        let mut failures = Vec::new();
        for chain in &step.chains {
            match chain.iter().try_for_each(|path| load_one(dir, path, sys_module, report, &mut lines)) {
                Ok(()) => loaded_any = true,
                Err(e) => failures.push(e),
            }
        }
        for f in failures {
            if loaded_any {
                log::info!("module {f}: skipped, an alternative for '{}' is loaded", step.request);
            } else if step.required {
                log::warn!("module {f}: '{}' is not available", step.request);
            } else {
                log::warn!("module {f}: soft dependency '{}' not loaded", step.request);
            }
        }
    }
    lines
}

fn load_one(
    dir: &Path,
    path: &str,
    sys_module: &Path,
    report: &mut Report,
    lines: &mut Vec<String>,
) -> Result<(), String> {
    let name = name_of(path);
    if sys_module.join(&name).exists() {
        return Ok(());
    }
    let full = dir.join(path);
    let fd = open(&full, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("{name} ({}): open: {e}", full.display()))?;
    let flags = if path.ends_with(".ko") { 0 } else { MODULE_INIT_COMPRESSED_FILE };
    let t = crate::report::now_us();
    match report.kernel(|| rustix::system::finit_module(&fd, c"", flags)) {
        Ok(()) | Err(Errno::EXIST) => {
            let us = crate::report::now_us() - t;
            log::debug!("loaded module {name} in {us} us");
            lines.push(format!("{name} loaded in {us} us"));
            Ok(())
        }
        Err(e) => {
            lines.push(format!("{name} failed: {e}"));
            Err(format!("{name}: finit_module: {e}"))
        }
    }
}
