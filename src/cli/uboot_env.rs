//! `uboot-env`: the U-Boot environment as overlay-init reads and writes it (the code the boot
//! uses), with `fw_printenv`'s and `fw_setenv`'s output and `fw_env.config`.

use crate::cli::args::Args;
use crate::uboot::{config, store};

/// The configuration `fw_printenv` reads by default.
const FW_ENV_CONFIG: &str = "/etc/fw_env.config";

/// Exit codes: 0 done, 1 the environment could not be read, was refused, or a name is not set.
pub fn run(a: &Args) -> i32 {
    match act(a) {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("overlay-init: uboot-env: {e}");
            1
        }
    }
}

fn act(a: &Args) -> Result<String, String> {
    let path = a.value("--config").unwrap_or(FW_ENV_CONFIG);
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let cfg = config::parse(&text, path)?;
    let loaded = store::read(&cfg)?;
    let (action, names) = a.rest.split_first().ok_or("want print or set")?;
    match action.as_str() {
        "print" => {
            if loaded.current.is_none() {
                return Err(format!("no valid environment: {}", loaded.problems(&cfg).join("; ")));
            }
            let mut out = String::new();
            for (name, value) in loaded.vars.iter() {
                if names.is_empty() || names.contains(name) {
                    out.push_str(&format!("{name}={value}\n"));
                }
            }
            if let Some(missing) = names.iter().find(|n| !loaded.vars.contains_key(n)) {
                print!("{out}");
                return Err(format!("{missing} is not set"));
            }
            Ok(out)
        }
        "set" => {
            let (name, words) = names.split_first().ok_or("set NAME [VALUE...]: no name")?;
            crate::uboot::env::check_name(name)?;
            let mut vars = loaded.vars.clone();
            // As fw_setenv: the words joined by spaces; no value deletes the variable.
            if words.is_empty() {
                vars.remove(name);
            } else {
                vars.insert(name.clone(), words.join(" "));
            }
            let at = store::write(&cfg, &loaded, &vars)?;
            Ok(format!("{name}: written to {at}\n"))
        }
        other => Err(format!("{other}: want print or set")),
    }
}
