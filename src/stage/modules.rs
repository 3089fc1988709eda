//! Loads the planned kernel modules with finit_module, skipping loaded and built-in ones. Each
//! requested module (with its soft dependencies, in order) is one group; groups load on a small
//! pool of threads, one per CPU up to four, so a wide module set costs its longest chain rather
//! than its sum on a multi-core board. A `.ko` two groups need is loaded once: the second waits
//! for the first to finish. On one CPU everything runs on the init's own thread, as before.

use crate::modules::{name_of, LoadStep, ModIndex};
use crate::report::{now_us, Report};
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// `MODULE_INIT_COMPRESSED_FILE` (Linux 6.2+): the kernel decompresses `.ko.xz`/`.ko.zst` itself.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;
/// i.MX6Q and i.MX8M have four cores; more threads would only contend for the module mutex.
const MAX_THREADS: usize = 4;

/// Reads depmod's files from `dir` (missing files are empty: a kernel with everything built in).
pub fn read_index(dir: &Path) -> ModIndex {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    ModIndex::parse(&read("modules.dep"), &read("modules.softdep"), &read("modules.alias"), &read("modules.builtin"))
}

/// What the loaders share: each `.ko`'s state, the report lines, and when the kernel was busy.
#[derive(Default)]
struct Shared<'a> {
    /// `module.param=value` settings, handed to finit_module with their module.
    params: &'a [(String, String)],
    files: Mutex<HashMap<String, Option<Result<(), String>>>>,
    done: Condvar,
    lines: Mutex<Vec<String>>,
    busy: Mutex<Vec<(u64, u64)>>,
    next: AtomicUsize,
}

/// A lock that a panicked holder cannot poison for the rest of the boot (PID 1 aborts on panic
/// anyway; this keeps the code free of unwrap).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Loads every step; returns one line per module for the report. Failures are warnings: the
/// mount that needed the module fails next with an error naming the filesystem. Returns only
/// when every loader has finished, so nothing loads behind a boot that goes on or fails.
pub fn load(
    steps: &[LoadStep],
    dir: &Path,
    sys_module: &Path,
    params: &[(String, String)],
    report: &mut Report,
) -> Vec<String> {
    // A module with parameters loads after all the others: a parameter often names a device
    // another module provides (`block2mtd=/dev/vda` needs virtio_blk's disk).
    let has_params = |g: &&[LoadStep]| {
        g.iter()
            .flat_map(|st| st.chains.iter().flatten())
            .any(|p| !crate::modules::params_for(&name_of(p), params).is_empty())
    };
    let (last, first): (Vec<&[LoadStep]>, Vec<&[LoadStep]>) =
        steps.chunk_by(|a, b| a.group == b.group).partition(has_params);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut shared = Shared { params, ..Shared::default() };
    for (groups, cpus) in [(first, cpus), (last, 1)] {
        shared.next = AtomicUsize::new(0);
        let threads = cpus.min(MAX_THREADS).min(groups.len()).max(1);
        let work = || worker(&groups, &shared, dir, sys_module);
        if threads == 1 {
            work();
        } else {
            log::debug!("loading {} module groups on {threads} threads", groups.len());
            std::thread::scope(|s| {
                for _ in 1..threads {
                    s.spawn(work);
                }
                work();
            });
        }
    }
    report.add_kernel_us(busy_time(std::mem::take(&mut *lock(&shared.busy))));
    shared.lines.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// The time at least one finit_module was running: the union of the intervals.
fn busy_time(mut spans: Vec<(u64, u64)>) -> u64 {
    spans.sort_unstable();
    let (mut total, mut end) = (0, 0);
    for (a, b) in spans {
        let a = a.max(end);
        if b > a {
            total += b - a;
            end = b;
        }
    }
    total
}

fn worker(groups: &[&[LoadStep]], sh: &Shared<'_>, dir: &Path, sys_module: &Path) {
    while let Some(group) = groups.get(sh.next.fetch_add(1, Ordering::Relaxed)) {
        for step in *group {
            load_step(step, sh, dir, sys_module);
        }
    }
}

fn load_step(step: &LoadStep, sh: &Shared<'_>, dir: &Path, sys_module: &Path) {
    let mut loaded_any = false;
    let mut failures = Vec::new();
    for chain in &step.chains {
        match chain.iter().try_for_each(|path| load_once(dir, path, sys_module, sh)) {
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

/// Loads `path` unless another loader has (or is doing it: then waits for its outcome).
fn load_once(dir: &Path, path: &str, sys_module: &Path, sh: &Shared<'_>) -> Result<(), String> {
    {
        let mut files = lock(&sh.files);
        loop {
            match files.get(path) {
                Some(Some(outcome)) => return outcome.clone(),
                Some(None) => files = sh.done.wait(files).unwrap_or_else(|e| e.into_inner()),
                None => {
                    files.insert(path.to_string(), None);
                    break;
                }
            }
        }
    }
    let outcome = load_one(dir, path, sys_module, sh);
    lock(&sh.files).insert(path.to_string(), Some(outcome.clone()));
    sh.done.notify_all();
    outcome
}

fn load_one(dir: &Path, path: &str, sys_module: &Path, sh: &Shared<'_>) -> Result<(), String> {
    let name = name_of(path);
    if sys_module.join(&name).exists() {
        return Ok(());
    }
    let full = dir.join(path);
    let fd = open(&full, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("{name} ({}): open: {e}", full.display()))?;
    let flags = if path.ends_with(".ko") { 0 } else { MODULE_INIT_COMPRESSED_FILE };
    let params = crate::modules::params_for(&name, sh.params);
    let args = std::ffi::CString::new(params.as_str()).map_err(|_| format!("{name}: a parameter holds a NUL byte"))?;
    let t = now_us();
    let result = rustix::system::finit_module(&fd, &args, flags);
    let end = now_us();
    lock(&sh.busy).push((t, end));
    match result {
        Ok(()) | Err(Errno::EXIST) => {
            let us = end - t;
            let with = if params.is_empty() { String::new() } else { format!(" ({params})") };
            log::debug!("loaded module {name}{with} in {us} us");
            lock(&sh.lines).push(format!("{name}{with} loaded in {us} us"));
            Ok(())
        }
        Err(e) => {
            lock(&sh.lines).push(format!("{name} failed: {e}"));
            // EINVAL with parameters is most often a parameter the module does not know.
            let hint = if params.is_empty() { String::new() } else { format!(" (parameters: {params})") };
            Err(format!("{name}: finit_module: {e}{hint}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_time_is_the_union_of_overlapping_loads() {
        assert_eq!(busy_time(vec![]), 0);
        assert_eq!(busy_time(vec![(10, 20), (15, 30), (40, 50)]), 30);
        assert_eq!(busy_time(vec![(40, 50), (10, 60)]), 50);
    }
}
