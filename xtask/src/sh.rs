//! Running host tools with errors that name the command.

use std::io::Write;
use std::process::{Command, Stdio};

pub fn cmd(program: &str) -> Command {
    Command::new(program)
}

fn describe(c: &Command) -> String {
    let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    format!("{} {}", c.get_program().to_string_lossy(), args.join(" "))
}

pub fn run(c: &mut Command) -> Result<(), String> {
    let status = c.status().map_err(|e| format!("{}: {e} (run tests/setup.sh?)", describe(c)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed: {status}", describe(c)))
    }
}

pub fn output(c: &mut Command) -> Result<String, String> {
    output_bytes(c).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub fn output_bytes(c: &mut Command) -> Result<Vec<u8>, String> {
    let out = c.stderr(Stdio::inherit()).output().map_err(|e| format!("{}: {e}", describe(c)))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", describe(c), out.status));
    }
    Ok(out.stdout)
}

/// Runs a chatty tool (genimage) silently; on failure its output is in the error.
pub fn quiet(c: &mut Command) -> Result<(), String> {
    let out = c.output().map_err(|e| format!("{}: {e} (run tests/setup.sh?)", describe(c)))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Err(format!("{} failed: {}\n{}", describe(c), out.status, text.trim_end()))
}

pub fn run_stdin(c: &mut Command, input: &str) -> Result<(), String> {
    let mut child = c.stdin(Stdio::piped()).spawn().map_err(|e| format!("{}: {e}", describe(c)))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed: {status}", describe(c)))
    }
}
