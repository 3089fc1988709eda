//! The boot as PID 1, top-down: early mounts, settings, modules, devices, plan, mounts, switch.

use crate::rt::prelude::*;
use crate::rt::Why;

pub mod bootloader;
pub mod button;
pub mod carry;
pub mod devices;
pub mod early;
pub mod error;
pub mod fatal;
pub mod image;
pub mod kexec;
pub mod logger;
pub mod modules;
pub mod mounts;
pub mod recreate;
pub mod report;
pub mod shutdown;
pub mod slot;
pub mod switch;
pub mod upper;
pub mod verity;

use crate::boot::error::Error;
use crate::boot::fatal::fatal;
use crate::boot::report::Report;
use crate::config::paths;
use crate::config::settings::Settings;
use crate::plan;
use crate::rt::path::Path;
use crate::sys::clock::now_us;

pub fn run() -> ! {
    let mut report = Report::default();
    report.stage("early");
    let early_result = report.kernel(early::mount_api_filesystems);
    early::console_stdio();
    let (settings, loaded) = read_settings();
    logger::lift_kmsg_ratelimit();
    logger::init(settings.log_level, true, settings.show_info);
    log::info!("overlay-init {} starting", env!("CARGO_PKG_VERSION"));
    #[cfg(feature = "panic-test")]
    if crate::rt::fs::read_to_string("/proc/cmdline")
        .is_ok_and(|c| c.split_whitespace().any(|w| w == "oinit.testpanic"))
    {
        panic!("oinit.testpanic on the command line of a panic-test build");
    }
    if let Err(e) = early_result {
        fatal(&e, &settings);
    }
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    report.warnings.extend(loaded.warnings);
    if !loaded.errors.is_empty() {
        fatal(&Error::Settings(loaded.errors), &settings);
    }
    let e = match boot(&settings, &mut report) {
        Ok((root, init, args, env)) => switch::switch_root(&root, &init, &args, &env),
        Err(e) => e,
    };
    fatal(&e, &settings)
}

/// The board config, then the command line; both read as bytes, so one stray byte costs one
/// word, not every setting.
fn read_settings() -> (Settings, crate::config::settings::Loaded) {
    let read = |path: &str| crate::config::cmdline::decode(&crate::rt::fs::read(path).unwrap_or_default(), path);
    let (config, w1) = read(paths::CONFIG);
    let (cmdline, w2) = read("/proc/cmdline");
    let (settings, mut loaded) = Settings::load(&config, &cmdline);
    loaded.warnings.extend(w1.into_iter().chain(w2));
    (settings, loaded)
}

/// Everything up to the switch; returns the new root, the init to exec and its arguments.
/// The new root, its init, the init's arguments and the variables added to its environment.
type Switch = (String, String, Vec<String>, Vec<(String, String)>);

fn boot(s: &Settings, report: &mut Report) -> Result<Switch, Box<Error>> {
    // Modules load in the background while the device search waits for the disk: it is used as
    // soon as its driver is in, while the filesystem modules still load.
    report.stage("modules+devices");
    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    crate::plan::kernel::check(&release).map_err(Error::Plan)?;
    report.kernel = release.clone();
    if let Some(st2) = &s.kexec.stage2 {
        log::info!(
            "stage two of a kernel hand-over: slot {} chosen by stage one on {} ({} ms), booted on {release}",
            st2.slot.name(),
            st2.from_release,
            st2.stage1_ms
        );
        report.stage1 = Some((st2.from_release.clone(), st2.stage1_ms));
    }
    let moddir = Path::new("/lib/modules").join(&release);
    let index = modules::read_index(&moddir, Path::new("/sys/devices/system/cpu/modalias"));
    let steps = index.plan(&s.boot_modules()).map_err(|what| {
        Error::Plan(plan::PlanError { what, hint: format!("add it to the initramfs modules for kernel {release}") })
    })?;
    let loading = modules::start(steps, moddir, "/sys/module".into(), s.module_params.clone());
    let modules_by = ModulesDeadline { at: now_us() + u64::from(s.module_timeout) * 1_000_000, secs: s.module_timeout };
    // The search runs beside the loading only when a second CPU can run it: on one CPU its
    // sysfs scans at each new partition would only take time from the loading. And the ubi
    // module attaches what its own parameters name inside its init, after /dev/ubi_ctrl
    // exists: an attach by the init then would race it.
    let cpus = crate::sys::process::cpus();
    let pending = if cpus == 1 || s.needs_ubi() {
        finish_modules(loading, &modules_by, report)?;
        None
    } else {
        Some(loading)
    };
    // The device wait starts when the drivers are in, or at the module deadline if one hangs
    // (the search then ends on its own timeout and the stuck module is named below).
    let drivers_in = |now: u64| match &pending {
        None => Some(0),
        Some(l) => l.done_at().or_else(|| (now >= modules_by.at).then_some(0)),
    };
    let found = devices::find(s, Path::new("/sys"), Path::new("/dev"), true, &drivers_in);
    if let Some(loading) = pending {
        if found.is_ok() {
            finish_modules(loading, &modules_by, report)?;
        } else if let Err(stuck) =
            loading.finish(crate::rt::time::Duration::from_secs(1)).map(|l| report.modules = l.lines)
        {
            // The boot fails on the search's error; a module that never came back may be why.
            log::error!("modules still loading (their init has not returned): {stuck}");
        }
    }
    let mut found = found?;

    report.stage("mounts");
    let plan = if s.ab.enabled() {
        slot::boot(s, &mut found, report)?
    } else {
        mounts::assemble(report, &mut found, |f| plan::decide(s, f))?
    };

    report.stage("switch-check");
    let Some(plan::Step::SwitchRoot { root, inits, args, env }) = plan.steps.last() else {
        return Err(Error::Plan(plan::PlanError {
            what: "the plan has no switch step".into(),
            hint: "this is a bug".into(),
        })
        .into());
    };
    let init = switch::find_init(root, inits)?;
    if let Some(wd) = &s.ab.watchdog {
        match crate::sys::watchdog::arm(wd, s.ab.watchdog_timeout) {
            Ok(t) => log::info!("watchdog {wd} armed: {t} s for the real system to take it over"),
            Err((call, e)) => {
                log::warn!(
                    "watchdog {wd}: {call}: {e}; booting without it (is its driver in oinit.modules?)",
                    e = Why(e)
                )
            }
        }
    }
    // The way back at shutdown (systemd-shutdown and rc scripts exec it): without it the data
    // partition is never cleanly unmounted, since the overlay holds it until the kernel stops.
    if let Err(e) = crate::boot::shutdown::install("/proc/self/exe") {
        log::warn!("{e}: the data partition will not be unmounted cleanly at shutdown");
    }
    // `install` checks images against the same key after the switch, when the initramfs is gone.
    if let Some(key) = &s.verity.key {
        let copied =
            crate::fs::mkdir::mkdir_all(paths::RUN_DIR).and_then(|()| crate::fs::copy::file(key, paths::DEVICE_KEY));
        if let Err(e) = copied {
            log::warn!("cannot copy the verity key {key} to {}: {e}", paths::DEVICE_KEY);
        }
    }
    if s.ab.uboot {
        bootloader::hand_over(s);
    }
    report.init = init.clone();
    report.end_stage();
    write_report(report);
    Ok((root.clone(), init, args.clone(), env.clone()))
}

/// The module inits' own deadline (`oinit.moduletimeout`), apart from the device wait.
struct ModulesDeadline {
    at: u64,
    secs: u32,
}

/// Waits for the module loader until the module deadline and books its lines and kernel time;
/// a module whose init never returns is named in the error.
fn finish_modules(loading: modules::Loading, by: &ModulesDeadline, report: &mut Report) -> Result<(), Box<Error>> {
    let left = crate::rt::time::Duration::from_micros(by.at.saturating_sub(now_us()));
    let loaded = loading.finish(left).map_err(|stuck| {
        Error::Plan(plan::PlanError {
            what: format!(
                "module {stuck} still loading after {} s (oinit.moduletimeout): its init has not returned",
                by.secs
            ),
            hint: "see the driver's messages in dmesg; remove it from oinit.modules or fix what it probes".into(),
        })
    })?;
    report.modules = loaded.lines;
    report.add_kernel_us(modules::busy_time(loaded.busy));
    Ok(())
}

fn write_report(report: &Report) {
    let json = report.to_json();
    if let Err(e) = crate::fs::mkdir::mkdir_all(paths::RUN_DIR).and_then(|()| crate::rt::fs::write(paths::REPORT, json))
    {
        log::warn!("cannot write the boot report {}: {e}", paths::REPORT);
    }
}
