//! The binary run in userspace. `plan` runs the boot's decision code on the host and prints what
//! the boot would do, the same text the boot logs.

pub mod args;
pub mod bootloader;
pub mod error;
pub mod install;
pub mod kernel_check;
pub mod medium;
pub mod rauc;
pub mod reconcile;
pub mod slots;
pub mod uboot_env;
pub mod uboot_install;

use crate::ab::state::SlotId;
use crate::boot::devices;
use crate::boot::error::Error;
use crate::cli::args::{Args, Parsed};
use crate::config::settings::Settings;
use crate::kmod::ModIndex;
use crate::plan;
use std::path::{Path, PathBuf};

/// Exit codes: 0 done, 1 refused or the boot would fail, 2 usage error.
pub fn main(argv: &[String]) -> i32 {
    crate::boot::logger::init(log::LevelFilter::Warn, false, true);
    let Some(cmd) = argv.first().map(String::as_str) else {
        eprintln!("{}", args::overview());
        return 2;
    };
    match cmd {
        "--version" => {
            println!("overlay-init {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        "--help" | "-h" | "help" => {
            println!("{}", args::overview());
            return 0;
        }
        _ => {}
    }
    let Some(spec) = args::spec(cmd) else {
        eprintln!("overlay-init: unknown command {cmd}\n{}", args::overview());
        return 2;
    };
    let a = match args::parse(spec, &argv[1..]) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            println!("{}", args::help(spec));
            return 0;
        }
        Err(e) => {
            eprintln!("overlay-init: {e}");
            return 2;
        }
    };
    match cmd {
        "plan" => plan_cmd(&PlanArgs::from(&a)),
        "initramfs-modules" => initramfs_modules(&a),
        "kexec-files" | "kexec-check" => match config_settings(&a) {
            Ok(s) if cmd == "kexec-files" => kernel_check::files_cmd(s.slot_boot_files()),
            Ok(s) => kernel_check::tree_cmd(Path::new(&a.rest[0]), s.slot_boot_files()),
            Err(e) => {
                eprintln!("overlay-init: {cmd}: {e}");
                1
            }
        },
        "reconcile" => reconcile::run(&a),
        "uboot-env" => uboot_env::run(&a),
        _ => slots::run(cmd, &a),
    }
}

/// `initramfs-modules`: the modules part of an initramfs list for the settings in `--config`.
fn initramfs_modules(a: &Args) -> i32 {
    match modules_list(a) {
        Ok(lines) => {
            print!("{lines}");
            0
        }
        Err(e) => {
            eprintln!("overlay-init: initramfs-modules: {e}");
            1
        }
    }
}

fn modules_list(a: &Args) -> Result<String, String> {
    let s = config_settings(a)?;
    let (moddir, outdir) = (Path::new(&a.rest[0]), Path::new(&a.rest[1]));
    let version = moddir.file_name().map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
    let read = |f: &str| std::fs::read_to_string(moddir.join(f));
    let dep = read("modules.dep")
        .map_err(|e| format!("{}/modules.dep: {e} (MODDIR is lib/modules/VERSION after depmod)", moddir.display()))?;
    let other = |f: &str| read(f).unwrap_or_default();
    let index = ModIndex::parse(&dep, &other("modules.softdep"), &other("modules.alias"), &other("modules.builtin"));
    let packed = index.pack(&s.boot_modules()).map_err(|e| format!("{e} (kernel {version}, {})", moddir.display()))?;
    crate::fs::mkdir::mkdir_all(outdir).map_err(|e| format!("{}: {e}", outdir.display()))?;
    let builtin = other("modules.builtin");
    for (name, text) in crate::kmod::INDEX_FILES.iter().zip([&packed.dep, &packed.soft, &packed.alias, &builtin]) {
        std::fs::write(outdir.join(name), text).map_err(|e| format!("{}: {e}", outdir.join(name).display()))?;
    }
    Ok(packed.cpio_lines(&version, &moddir.display().to_string(), &outdir.display().to_string()))
}

/// The settings of the board config `--config` names (default: the initramfs' own), for the
/// commands a build host runs.
fn config_settings(a: &Args) -> Result<Settings, String> {
    let config_path = a.path("--config").unwrap_or_else(|| crate::config::paths::CONFIG.into());
    let bytes = std::fs::read(&config_path).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let (config, _) = crate::config::cmdline::decode(&bytes, &config_path.display().to_string());
    let (s, loaded) = Settings::load(&config, "");
    if !loaded.errors.is_empty() {
        return Err(Error::Settings(loaded.errors).to_string());
    }
    Ok(s)
}

/// `plan`'s options with their defaults.
#[derive(Debug, PartialEq, Eq)]
struct PlanArgs {
    cmdline: Option<String>,
    config: PathBuf,
    sysfs: PathBuf,
    dev: PathBuf,
    state: Option<PathBuf>,
}

impl PlanArgs {
    fn from(a: &Args) -> PlanArgs {
        PlanArgs {
            cmdline: a.value("--cmdline").map(String::from),
            config: a.path("--config").unwrap_or_else(|| crate::config::paths::CONFIG.into()),
            sysfs: a.path("--sysfs").unwrap_or_else(|| "/sys".into()),
            dev: a.path("--dev").unwrap_or_else(|| "/dev".into()),
            state: a.path("--state"),
        }
    }
}

fn plan_cmd(a: &PlanArgs) -> i32 {
    let config = match std::fs::read(&a.config) {
        Ok(c) => crate::config::cmdline::decode(&c, &a.config.display().to_string()),
        Err(e) => {
            eprintln!("overlay-init: cannot read config {}: {e}", a.config.display());
            return 2;
        }
    };
    let cmdline = match &a.cmdline {
        Some(c) => (c.clone(), None),
        None => crate::config::cmdline::decode(&std::fs::read("/proc/cmdline").unwrap_or_default(), "/proc/cmdline"),
    };
    for w in config.1.iter().chain(&cmdline.1) {
        println!("warning: {w}");
    }
    let (config, cmdline) = (config.0, cmdline.0);
    let (s, loaded) = Settings::load(&config, &cmdline);
    for w in &loaded.warnings {
        println!("warning: {w}");
    }
    if !loaded.errors.is_empty() {
        println!("FATAL: {}", Error::Settings(loaded.errors));
        return 1;
    }
    if !s.boot_modules().is_empty() {
        println!("modules: {}", s.boot_modules().join(" "));
    }
    // Dotted words for other programs (systemd.unit=) are not shown: only the modules named.
    let named: Vec<String> = s.boot_modules().iter().map(|m| crate::kmod::norm(m)).collect();
    for (module, param) in s.module_params.iter().filter(|(m, _)| named.contains(m)) {
        println!("module parameter: {module} {param}");
    }
    let mut found = match devices::find(&s, &a.sysfs, &a.dev, false, &|_| Some(0)) {
        Ok(f) => f,
        Err(e) => {
            println!("FATAL: {e}");
            return 1;
        }
    };
    if !s.ab.enabled() {
        return print_plan(plan::decide(&s, &found));
    }
    if let Some(state) = &a.state {
        return print_plan(ab_plan(&s, &found, state, &a.dev));
    }
    if s.ab.one_slot() && s.ab.slots[0].is_none() {
        // One image with the state record (oinit.state): its upper is slot a's.
        return print_plan(plan::decide(&s.for_slot(SlotId::A), &found));
    }
    // Which slot boots comes from the state record on the data partition, which planning does
    // not read: show both. The boot falls back to the other slot when one fails.
    let mut codes = Vec::new();
    for slot in [SlotId::A, SlotId::B] {
        println!("== if slot {} boots:", slot.name());
        found.root = found.slots[slot.index()].clone();
        codes.push(print_plan(plan::decide(&s.for_slot(slot), &found)));
    }
    i32::from(codes.iter().all(|c| *c != 0))
}

/// The whole A/B boot from a state record. The data partition is not at hand: the uppers are
/// taken to exist when the record does, and file slots' images are unknown.
fn ab_plan(
    s: &Settings,
    found: &plan::Found,
    state: &std::path::Path,
    dev: &std::path::Path,
) -> Result<plan::Plan, plan::PlanError> {
    let (st, loaded) = match crate::ab::store::read_only(state) {
        Ok(Some(st)) => (st, crate::ab::store::Loaded::Valid),
        Ok(None) => (crate::ab::state::State::factory(s.ab.tries), crate::ab::store::Loaded::New),
        Err(e) => {
            println!("warning: {}: {e}; the default state is used", state.display());
            (crate::ab::state::State::factory(s.ab.tries), crate::ab::store::Loaded::Default("unreadable"))
        }
    };
    let exists = loaded == crate::ab::store::Loaded::Valid;
    let slots = [SlotId::A, SlotId::B];
    let dev_of = |slot: SlotId| {
        let d = match s.ab.slots[slot.index()] {
            Some(_) => found.slots[slot.index()].as_ref(),
            None if slot == SlotId::A => found.root.as_ref(),
            None => None,
        };
        d.map(|d| d.name.clone())
    };
    let facts = crate::plan::ab::Facts {
        writable: plan::decide_data(&s.for_slot(SlotId::A), found).is_ok_and(|p| p.volatile.is_none()) && s.has_data(),
        images: slots.map(|slot| dev_of(slot).and_then(|n| crate::block::device::image_id_at(&dev.join(n)))),
        sources: slots.map(|slot| dev_of(slot).map(|n| format!("/dev/{n}"))),
        uppers: [exists, exists],
        button: false,
        state: st,
        loaded,
    };
    crate::plan::ab::decide(s, found, &facts)
}

fn print_plan(p: Result<plan::Plan, plan::PlanError>) -> i32 {
    match p {
        Ok(p) => {
            print!("{p}");
            0
        }
        Err(e) => {
            println!("FATAL: {}", Error::Plan(e));
            1
        }
    }
}
