//! The one argument parser of every command: `--name VALUE` options, `--flag`s and positional
//! arguments, checked against the command's `Spec` (an option it does not take, a missing value
//! or a wrong argument count is a usage error, exit 2); `COMMAND --help` prints its own help.

use std::ops::RangeInclusive;
use std::path::PathBuf;

/// What one command accepts, and its help.
pub struct Spec {
    pub name: &'static str,
    /// Options that take a value (`--slot a`).
    pub values: &'static [&'static str],
    /// Options that take none (`--json`).
    pub flags: &'static [&'static str],
    /// How many positional arguments.
    pub args: RangeInclusive<usize>,
    /// The synopsis and description, as the overview lists it.
    pub help: &'static str,
}

/// A command line checked against its spec.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    values: Vec<(String, String)>,
    flags: Vec<String>,
    pub rest: Vec<String>,
}

impl Args {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.value(name).map(PathBuf::from)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Args),
    /// `--help` (or `-h`) anywhere: print the command's help, do nothing else.
    Help,
}

pub fn parse(spec: &Spec, args: &[String]) -> Result<Parsed, String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Parsed::Help);
    }
    let see = format!("see 'overlay-init {} --help'", spec.name);
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if spec.values.contains(&a.as_str()) {
            // A flag right after a value-taking option means the value is missing.
            let v = it.next().filter(|v| !v.starts_with("--")).ok_or_else(|| format!("{a} needs a value"))?;
            out.values.push((a.clone(), v.clone()));
        } else if spec.flags.contains(&a.as_str()) {
            out.flags.push(a.clone());
        } else if a.starts_with("--") {
            let known = SPECS.iter().any(|s| s.values.contains(&a.as_str()) || s.flags.contains(&a.as_str()));
            return Err(if known {
                format!("{} does not take {a}; {see}", spec.name)
            } else {
                format!("unknown option {a}; {see}")
            });
        } else {
            out.rest.push(a.clone());
        }
    }
    if !spec.args.contains(&out.rest.len()) {
        let what = if out.rest.len() < *spec.args.start() { "is missing an argument" } else { "takes fewer arguments" };
        return Err(format!("{} {what}; {see}", spec.name));
    }
    Ok(Parsed::Run(out))
}

/// The command named `name`.
pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

/// `overlay-init help`: every command's synopsis, in this order.
pub fn overview() -> String {
    let mut out = String::from("usage: overlay-init COMMAND [OPTIONS]   (overlay-init COMMAND --help for one)\n");
    for s in SPECS {
        out.push_str("  ");
        out.push_str(s.help.lines().next().unwrap_or(s.name));
        out.push('\n');
    }
    out.push_str("overlay-init --version");
    out
}

/// `overlay-init COMMAND --help`.
pub fn help(s: &Spec) -> String {
    format!("usage: overlay-init {}", s.help)
}

/// The slot commands name the state record with `--state` (default from /run/overlay-init/slots).
const STATE: &str = "--state";

pub static SPECS: &[Spec] = &[
    Spec {
        name: "initramfs-modules",
        values: &["--config"],
        flags: &[],
        args: 2..=2,
        help: "initramfs-modules [--config FILE] MODDIR OUTDIR
    for building an initramfs (Buildroot's post-image runs it on the build host): prints the
    kernel's gen_init_cpio lines for the modules the settings name, with what they need, found
    the way the boot finds them in MODDIR (lib/modules/VERSION with its modules.dep), and writes
    the index trimmed to them into OUTDIR. Exit 1: a module is not in that kernel.",
    },
    Spec {
        name: "kexec-files",
        values: &["--config"],
        flags: &[],
        args: 0..=0,
        help: "kexec-files [--config FILE]
    for building a slot image (Buildroot's post-build runs it): prints where the settings'
    oinit.kexec* keys put a slot's boot files inside its image, one `NAME PATH` line each
    (kernel, initrd, dtb when set); prints nothing when no slot boots its own kernel
    (neither oinit.kexec=1 nor oinit.bootloader=uboot).",
    },
    Spec {
        name: "kexec-check",
        values: &["--config"],
        flags: &[],
        args: 1..=1,
        help: "kexec-check [--config FILE] ROOT
    for building a slot image: checks the tree ROOT as install checks the image: the kernel
    (of any architecture), initramfs and device tree the settings name, and the kernel's
    ROOT/lib/modules/RELEASE. Exit 1: which file and why.",
    },
    Spec {
        name: "uboot-env",
        values: &["--config"],
        flags: &[],
        args: 1..=64,
        help: "uboot-env [--config FILE] print [NAME...] | set NAME [VALUE...]
    the U-Boot environment as the boot reads and writes it, where FILE (default
    /etc/fw_env.config, fw_printenv's format) puts it. print: NAME=value lines; set: the
    words joined by spaces, no value deletes NAME; written to the copy that is not current
    (redundant environments), synced and read back. Exit 1: no valid environment, a name not
    set, or a write refused (the environment would not fit, or neither copy is valid).",
    },
    Spec {
        name: "plan",
        values: &["--cmdline", "--config", "--sysfs", "--dev", STATE],
        flags: &[],
        args: 0..=0,
        help: "plan [--cmdline TEXT] [--config FILE] [--sysfs DIR] [--dev DIR] [--state FILE]
    prints the devices, mounts and fallbacks the boot would use, without acting; with --state
    (an A/B state record), the whole A/B boot: slot choice, state writes, factory reset,
    new-image uppers, and the plans taking over when a step fails. Exit 1: the boot would fail.
  --cmdline  kernel command line (default: /proc/cmdline)
  --config   board config (default: /etc/overlay-init.conf)
  --sysfs    sysfs root to scan for block devices (default: /sys)
  --dev      directory of device nodes to probe (default: /dev)",
    },
    Spec {
        name: "status",
        values: &[STATE],
        flags: &["--json"],
        args: 0..=0,
        help: "status [--json] [--state FILE]
    booted slot, each slot's state, boot history and the boot report; on a board without a
    state record, what the boot report says. --json: the shape in docs/commands.md (schema 1)",
    },
    Spec {
        name: "mark-good",
        values: &[STATE],
        flags: &[],
        args: 0..=1,
        help: "mark-good [SLOT] [--state FILE]
    the booted (or named) slot works: end its trial",
    },
    Spec {
        name: "mark-bad",
        values: &[STATE],
        flags: &[],
        args: 0..=1,
        help: "mark-bad [SLOT] [--state FILE]
    never boot it again until reinstalled; the other slot boots next",
    },
    Spec {
        name: "rollback",
        values: &[STATE],
        flags: &[],
        args: 0..=0,
        help: "rollback [--state FILE]
    boot the other slot next time",
    },
    Spec {
        name: "factory-reset",
        values: &[STATE],
        flags: &["--reboot"],
        args: 0..=0,
        help: "factory-reset [--reboot] [--state FILE]
    wipe every upper at the next boot (keep-list kept)",
    },
    Spec {
        name: "install",
        values: &["--slot", "--sha256", "--key", "--downgrade-token", STATE],
        flags: &["--force"],
        args: 1..=1,
        help: "install IMAGE [--slot a|b] [--sha256 HEX] [--key PUBKEY] [--downgrade-token FILE] [--force] [--state FILE]
    write a squashfs image into the slot not booted, verify it, and make it the next boot's
    trial slot (--force: even over the last good slot while the booted one is still on
    trial). A board that verifies its lowers takes only images signed with its key (--key,
    default /run/overlay-init/verity.pub), for its product (oinit.compatible) and not below
    the security version it marked good; --downgrade-token: a token signed with that key
    that allows an older one",
    },
    Spec {
        name: "reconcile",
        values: &["--old", "--new", "--upper", "--config", "--keep", "--conflict"],
        flags: &["--json"],
        args: 0..=0,
        help: "reconcile --old IMAGE|DIR --new IMAGE|DIR --upper DIR [--config FILE] [--keep FILE] [--conflict user|image] [--json]
    what a new image would do to that upper (oinit.carry=reconcile), changing nothing;
    images are mounted read-only (needs root)",
    },
    Spec {
        name: "rauc",
        values: &[STATE],
        flags: &[],
        args: 0..=usize::MAX,
        help: "rauc REQUEST... [--state FILE]
    RAUC custom bootloader backend (also as argv[0] overlay-init-rauc)",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cmd: &str, args: &[&str]) -> Result<Parsed, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        parse(spec(cmd).unwrap(), &args)
    }

    #[test]
    fn options_flags_and_arguments() {
        let Ok(Parsed::Run(a)) = run("install", &["img.sqfs", "--slot", "b", "--force"]) else { panic!() };
        assert_eq!(
            (a.value("--slot"), a.flag("--force"), a.rest.as_slice()),
            (Some("b"), true, &["img.sqfs".to_string()][..])
        );
        assert_eq!(run("status", &["--json", "--help"]), Ok(Parsed::Help));
    }

    #[test]
    fn usage_errors_name_the_command_and_its_help() {
        let err = |cmd, args: &[&str]| run(cmd, args).unwrap_err();
        assert_eq!(err("status", &["--force"]), "status does not take --force; see 'overlay-init status --help'");
        assert_eq!(err("install", &["--sha-256", "x"]), "unknown option --sha-256; see 'overlay-init install --help'");
        assert_eq!(err("install", &["img", "--sha256", "--force"]), "--sha256 needs a value");
        assert_eq!(err("rollback", &["a"]), "rollback takes fewer arguments; see 'overlay-init rollback --help'");
        assert_eq!(err("install", &[]), "install is missing an argument; see 'overlay-init install --help'");
    }

    #[test]
    fn every_command_has_a_help_that_starts_with_its_name() {
        for s in SPECS {
            assert!(s.help.starts_with(s.name), "{}", s.name);
            assert!(overview().contains(s.help.lines().next().unwrap()));
        }
    }
}
