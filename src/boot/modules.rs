//! Loads the planned kernel modules with finit_module, skipping loaded and built-in ones, on a
//! thread of their own: with a second CPU the device search runs meanwhile, so a disk is found
//! as soon as its driver is in while the filesystem modules still load. Each requested module (with its soft dependencies,
//! in order) is one group; groups load on a small pool of threads, one per CPU up to four, so a
//! wide module set costs its longest chain rather than its sum on a multi-core board. A `.ko`
//! two groups need is loaded once: the second waits for the first to finish.

use crate::kmod::{name_of, LoadStep, ModIndex};
use crate::rt::path::{Path, PathBuf};
use crate::rt::prelude::*;
use crate::rt::sync::atomic::{AtomicUsize, Ordering};
use crate::rt::sync::{Arc, Condvar, Mutex, MutexGuard};
use crate::rt::time::Duration;
use crate::rt::Why;
use crate::sys::clock::now_us;
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;

/// `MODULE_INIT_COMPRESSED_FILE` (Linux 6.2+): the kernel decompresses `.ko.xz`/`.ko.zst` itself.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;
/// i.MX6Q and i.MX8M have four cores; more threads would only contend for the module mutex.
const MAX_THREADS: usize = 4;

/// Reads depmod's files from `dir` (missing files are empty: a kernel with everything built in)
/// and the CPU's modalias from `cpu` (none on a kernel without CONFIG_GENERIC_CPU_AUTOPROBE:
/// then every alternative is tried).
pub fn read_index(dir: &Path, cpu: &Path) -> ModIndex {
    let read = |f: &str| crate::rt::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let ix = ModIndex::parse(
        &read("modules.dep"),
        &read("modules.softdep"),
        &read("modules.alias"),
        &read("modules.builtin"),
    );
    match crate::rt::fs::read_to_string(cpu) {
        Ok(modalias) => ix.for_cpu(&modalias),
        Err(_) => ix,
    }
}

/// A `.ko`'s load: `None` while a loader is at it.
type Outcome = Option<Result<(), String>>;

/// What the loaders share: each `.ko`'s state, the report lines, when the kernel was busy, and
/// whether everything is done.
struct Shared {
    /// Loads one `.ko`: `load_one`, or a stand-in in the tests.
    load: fn(&str, &Shared) -> Result<(), String>,
    /// `module.param=value` settings, handed to finit_module with their module.
    params: Vec<(String, String)>,
    dir: PathBuf,
    sys_module: PathBuf,
    /// Each `.ko` a loader took, with its outcome once known: a few dozen, searched in order.
    files: Mutex<Vec<(String, Outcome)>>,
    done: Condvar,
    lines: Mutex<Vec<String>>,
    busy: Mutex<Vec<(u64, u64)>>,
    next: AtomicUsize,
    /// When the last load returned (`now_us`), once it has.
    finished: Mutex<Option<u64>>,
    finished_cv: Condvar,
}

impl Shared {
    fn new(
        load: fn(&str, &Shared) -> Result<(), String>,
        params: Vec<(String, String)>,
        dir: PathBuf,
        sys_module: PathBuf,
    ) -> Shared {
        Shared {
            load,
            params,
            dir,
            sys_module,
            files: Mutex::default(),
            done: Condvar::new(),
            lines: Mutex::default(),
            busy: Mutex::default(),
            next: AtomicUsize::new(0),
            finished: Mutex::new(None),
            finished_cv: Condvar::new(),
        }
    }
}

/// A lock that a panicked holder cannot poison for the rest of the boot (PID 1 aborts on panic
/// anyway; this keeps the code free of unwrap).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Modules loading in the background while the device search runs.
pub struct Loading {
    shared: Arc<Shared>,
}

/// What the loading did: one line per module for the report, and when the kernel was busy.
pub struct Loaded {
    pub lines: Vec<String>,
    pub busy: Vec<(u64, u64)>,
}

/// Starts loading every step on a background thread and returns at once. Failures are
/// warnings: the mount that needed the module fails next with an error naming the filesystem.
pub fn start(steps: Vec<LoadStep>, dir: PathBuf, sys_module: PathBuf, params: Vec<(String, String)>) -> Loading {
    start_with(steps, Shared::new(load_one, params, dir, sys_module))
}

fn start_with(steps: Vec<LoadStep>, shared: Shared) -> Loading {
    let shared = Arc::new(shared);
    let (sh, mine) = (Arc::clone(&shared), steps.clone());
    let spawned = crate::sys::thread::spawn_detached(Box::new(move || {
        load_all(&mine, &sh);
        *lock(&sh.finished) = Some(now_us());
        sh.finished_cv.notify_all();
    }));
    if let Err(e) = spawned {
        // No thread (out of memory this early): load on this one, as the boot did before.
        log::warn!("cannot start the module loader thread ({e}): loading on the init's own", e = Why(e));
        load_all(&steps, &shared);
        *lock(&shared.finished) = Some(now_us());
    }
    Loading { shared }
}

impl Loading {
    /// Waits until every module is loaded, at most `timeout`. A module whose init never returns
    /// is named (the thread stays in finit_module; PID 1 goes on to its failure policy).
    pub fn finish(self, timeout: Duration) -> Result<Loaded, String> {
        let sh = &self.shared;
        let (done, _) = sh
            .finished_cv
            .wait_timeout_while(lock(&sh.finished), timeout, |f| f.is_none())
            .unwrap_or_else(|e| e.into_inner());
        if done.is_none() {
            return Err(self.stuck());
        }
        drop(done);
        Ok(Loaded { lines: core::mem::take(&mut *lock(&sh.lines)), busy: core::mem::take(&mut *lock(&sh.busy)) })
    }

    /// When every module had been loaded (`now_us`), or `None` while some still load: the
    /// device wait starts its clock then, since a disk whose driver is in its init is not late.
    pub fn done_at(&self) -> Option<u64> {
        *lock(&self.shared.finished)
    }

    /// The modules being loaded right now, for an error when the boot cannot wait for them.
    fn stuck(&self) -> String {
        let files = lock(&self.shared.files);
        let mut names: Vec<String> = files.iter().filter(|(_, o)| o.is_none()).map(|(p, _)| name_of(p)).collect();
        crate::util::sort::sort(&mut names);
        names.join(", ")
    }
}

/// Loads every step, the groups on a pool of threads.
fn load_all(steps: &[LoadStep], shared: &Shared) {
    // A module with parameters loads after all the others: a parameter often names a device
    // another module provides (`block2mtd=/dev/vda` needs virtio_blk's disk).
    let has_params = |g: &&[LoadStep]| {
        g.iter()
            .flat_map(|st| st.chains.iter().flatten())
            .any(|p| !crate::kmod::params_for(&name_of(p), &shared.params).is_empty())
    };
    let (last, first): (Vec<&[LoadStep]>, Vec<&[LoadStep]>) =
        steps.chunk_by(|a, b| a.group == b.group).partition(has_params);
    let cpus = crate::sys::process::cpus();
    for (groups, cpus) in [(first, cpus), (last, 1)] {
        shared.next.store(0, Ordering::Relaxed);
        let threads = cpus.min(MAX_THREADS).min(groups.len()).max(1);
        let work = || worker(&groups, shared);
        if threads == 1 {
            work();
        } else {
            log::debug!("loading {} module groups on {threads} threads", groups.len());
            crate::sys::thread::run_on(threads, &work);
        }
    }
}

/// The time at least one finit_module was running: the union of the intervals.
pub fn busy_time(mut spans: Vec<(u64, u64)>) -> u64 {
    crate::util::sort::sort(&mut spans);
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

fn worker(groups: &[&[LoadStep]], sh: &Shared) {
    while let Some(group) = groups.get(sh.next.fetch_add(1, Ordering::Relaxed)) {
        for step in *group {
            load_step(step, sh);
        }
    }
}

fn load_step(step: &LoadStep, sh: &Shared) {
    let mut loaded_any = false;
    let mut failures = Vec::new();
    for chain in &step.chains {
        match chain.iter().try_for_each(|path| load_once(path, sh)) {
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
fn load_once(path: &str, sh: &Shared) -> Result<(), String> {
    {
        let mut files = lock(&sh.files);
        loop {
            match files.iter().find(|(p, _)| p == path).map(|(_, o)| o.clone()) {
                Some(Some(outcome)) => return outcome,
                Some(None) => files = sh.done.wait(files).unwrap_or_else(|e| e.into_inner()),
                None => {
                    files.push((path.to_string(), None));
                    break;
                }
            }
        }
    }
    let outcome = (sh.load)(path, sh);
    if let Some(entry) = lock(&sh.files).iter_mut().find(|(p, _)| p == path) {
        entry.1 = Some(outcome.clone());
    }
    sh.done.notify_all();
    outcome
}

fn load_one(path: &str, sh: &Shared) -> Result<(), String> {
    let name = name_of(path);
    if sh.sys_module.join(&name).exists() {
        return Ok(());
    }
    let full = sh.dir.join(path);
    let fd = open(&full, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("{name} ({}): open: {e}", full.display(), e = Why(e)))?;
    let flags = if path.ends_with(".ko") { 0 } else { MODULE_INIT_COMPRESSED_FILE };
    let params = crate::kmod::params_for(&name, &sh.params);
    let args =
        crate::rt::ffi::CString::new(params.as_str()).map_err(|_| format!("{name}: a parameter holds a NUL byte"))?;
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
            lock(&sh.lines).push(format!("{name} failed: {e}", e = Why(e)));
            // EINVAL with parameters is most often a parameter the module does not know; a
            // compressed file is refused by kernels that cannot decompress modules themselves.
            let hint = if flags != 0 && matches!(e, Errno::INVAL | Errno::OPNOTSUPP) {
                " (a compressed module: the kernel needs CONFIG_MODULE_DECOMPRESS, 5.17 or newer; \
                 or pack the modules uncompressed)"
                    .to_string()
            } else if params.is_empty() {
                String::new()
            } else {
                format!(" (parameters: {params})")
            };
            Err(format!("{name}: finit_module: {e}{hint}", e = Why(e)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(request: &str, group: usize) -> LoadStep {
        let chains = vec![vec![format!("kernel/{request}.ko")]];
        LoadStep { request: request.into(), chains, required: true, group }
    }

    /// Stands in for finit_module: `hang.ko` never returns (in the test: for 2 s).
    fn fake_load(path: &str, sh: &Shared) -> Result<(), String> {
        if path.ends_with("hang.ko") {
            std::thread::sleep(Duration::from_secs(2));
        }
        lock(&sh.lines).push(format!("{} loaded", name_of(path)));
        Ok(())
    }

    fn fake(steps: Vec<LoadStep>) -> Loading {
        start_with(steps, Shared::new(fake_load, Vec::new(), PathBuf::new(), PathBuf::new()))
    }

    #[test]
    fn loads_everything_in_the_background() {
        let loaded = fake(vec![step("virtio_blk", 0), step("ext4", 1)]).finish(Duration::from_secs(5)).unwrap();
        let mut lines = loaded.lines;
        crate::util::sort::sort(&mut lines);
        assert_eq!(lines, ["ext4 loaded", "virtio_blk loaded"]);
    }

    #[test]
    fn a_module_whose_init_never_returns_is_named_at_the_timeout() {
        let loading = fake(vec![step("virtio_blk", 0), step("hang", 1)]);
        let stuck = loading.finish(Duration::from_millis(300)).err();
        assert_eq!(stuck.as_deref(), Some("hang"));
    }

    #[test]
    fn kernel_time_is_the_union_of_overlapping_loads() {
        assert_eq!(busy_time(vec![]), 0);
        assert_eq!(busy_time(vec![(10, 20), (15, 30), (40, 50)]), 30);
        assert_eq!(busy_time(vec![(40, 50), (10, 60)]), 50);
    }
}
