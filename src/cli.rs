//! The binary run in userspace. `plan` runs the boot's decision code on the host and prints what
//! the boot would do, the same text the boot logs.

use crate::error::Error;
use crate::plan;
use crate::settings::Settings;
use crate::stage::devices;
use std::path::PathBuf;

pub const USAGE: &str = "usage: overlay-init plan [--cmdline TEXT] [--config FILE] [--sysfs DIR] [--dev DIR]
  Prints the devices, mounts and fallbacks the boot would use, without acting.
  --cmdline  kernel command line (default: /proc/cmdline)
  --config   board config (default: /etc/overlay-init.conf)
  --sysfs    sysfs root to scan for block devices (default: /sys)
  --dev      directory of device nodes to probe (default: /dev)
overlay-init --version";

/// Exit codes: 0 done, 1 the boot would fail, 2 usage error.
pub fn main(args: &[String]) -> i32 {
    crate::logger::init(log::LevelFilter::Warn, false);
    match args.first().map(String::as_str) {
        Some("plan") => match PlanArgs::parse(&args[1..]) {
            Ok(a) => plan_cmd(&a),
            Err(e) => {
                eprintln!("overlay-init: {e}\n{USAGE}");
                2
            }
        },
        Some("--version") => {
            println!("overlay-init {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            0
        }
        _ => {
            eprintln!("{USAGE}");
            2
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct PlanArgs {
    cmdline: Option<String>,
    config: PathBuf,
    sysfs: PathBuf,
    dev: PathBuf,
}

impl PlanArgs {
    fn parse(args: &[String]) -> Result<PlanArgs, String> {
        let mut a =
            PlanArgs { cmdline: None, config: crate::paths::CONFIG.into(), sysfs: "/sys".into(), dev: "/dev".into() };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--cmdline" => a.cmdline = Some(value()?),
                "--config" => a.config = value()?.into(),
                "--sysfs" => a.sysfs = value()?.into(),
                "--dev" => a.dev = value()?.into(),
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(a)
    }
}

fn plan_cmd(a: &PlanArgs) -> i32 {
    let config = match std::fs::read_to_string(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("overlay-init: cannot read config {}: {e}", a.config.display());
            return 2;
        }
    };
    let cmdline = a.cmdline.clone().unwrap_or_else(|| std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    let (s, loaded) = Settings::load(&config, &cmdline);
    for w in &loaded.warnings {
        println!("warning: {w}");
    }
    if !loaded.errors.is_empty() {
        println!("FATAL: {}", Error::Settings(loaded.errors));
        return 1;
    }
    if !s.modules.is_empty() {
        println!("modules: {}", s.modules.join(" "));
    }
    let result =
        devices::find(&s, &a.sysfs, &a.dev, false).and_then(|found| plan::decide(&s, &found).map_err(Error::Plan));
    match result {
        Ok(p) => {
            print!("{p}");
            0
        }
        Err(e) => {
            println!("FATAL: {e}");
            1
        }
    }
}
