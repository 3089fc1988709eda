//! `cargo xtask check-buildroot`: the BR2_EXTERNAL tree under buildroot/ against Buildroot's
//! coding style (the rules of its utils/check-package, re-implemented here because Buildroot
//! itself cannot be downloaded), and its post-image script run for real in a stand-in Buildroot
//! output directory: the initramfs it assembles must boot the qemu-aarch64 board.

use crate::board::Board;
use crate::sh;
use std::path::{Path, PathBuf};

pub fn main(root: &Path) -> Result<(), String> {
    let tree = root.join("buildroot");
    let mut problems = Vec::new();
    let mut files = Vec::new();
    walk(&tree, &mut files);
    files.sort();
    for f in &files {
        let rel = f.strip_prefix(&tree).unwrap_or(f).display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| format!("{rel}: {e}"))?;
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut p = generic(&text);
        if name.ends_with(".mk") {
            p.extend(makefile(&text, name.trim_end_matches(".mk")));
        } else if name.starts_with("Config.in") {
            p.extend(config_in(&text));
        } else if name.ends_with("_defconfig") {
            p.extend(defconfig(&text));
        } else if name == "external.desc" {
            p.extend(external_desc(&text));
        } else if name.ends_with(".sh") {
            p.extend(script(f));
        }
        problems.extend(p.into_iter().map(|x| format!("buildroot/{rel}:{x}")));
    }
    for p in &problems {
        println!("{p}");
    }
    println!("buildroot/: {} files checked, {} problems", files.len(), problems.len());
    if !problems.is_empty() {
        return Err("the BR2_EXTERNAL tree does not pass the style checks".into());
    }
    post_image(root)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.file_name().is_some_and(|n| n != "README.md") {
            out.push(p);
        }
    }
}

/// What every file must respect: no trailing space, no two empty lines in a row, a newline at
/// the end and no empty last line.
fn generic(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut empty_before = false;
    for (i, line) in text.lines().enumerate() {
        if line.ends_with(' ') || line.ends_with('\t') {
            out.push(format!("{}: trailing space", i + 1));
        }
        let empty = line.trim().is_empty();
        if empty && empty_before {
            out.push(format!("{}: consecutive empty lines", i + 1));
        }
        empty_before = empty;
    }
    if !text.ends_with('\n') {
        out.push("missing newline at end of file".into());
    }
    if text.ends_with("\n\n") {
        out.push("empty last line".into());
    }
    out
}

/// A package .mk: the 80-hash header, tabs only inside define blocks and continuations, the
/// package's prefix on its variables, no default flags, $() rather than ${}.
fn makefile(text: &str, package: &str) -> Vec<String> {
    let mut out = Vec::new();
    let prefix = package.replace('-', "_").to_uppercase() + "_";
    let hashes = "#".repeat(80);
    let lines: Vec<&str> = text.lines().collect();
    let is_package = !lines.first().is_some_and(|l| l.starts_with("include "));
    if is_package {
        for (n, want) in [(0, hashes.as_str()), (1, "#"), (3, "#"), (4, hashes.as_str()), (5, "")] {
            if lines.get(n).map(|l| l.trim_end()) != Some(want) {
                out.push(format!("{}: the package header is 80 hashes, #, # {package}, #, 80 hashes, blank", n + 1));
            }
        }
    }
    let (mut define, mut continued) = (false, false);
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let word = line.split_whitespace().next().unwrap_or("");
        let ends_backslash = !line.starts_with('#') && line.ends_with('\\');
        if word == "define" {
            define = true;
        } else if word == "endef" {
            define = false;
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            let conditional = ["ifeq", "ifneq", "ifdef", "ifndef", "else", "endif"].contains(&word);
            // Conditionals stay at column 0 even inside a define; continuations are always tabbed.
            let tabs = continued || (define && !conditional);
            if tabs && !line.starts_with('\t') {
                out.push(format!("{n}: expected indent with tabs"));
            }
            if !tabs && line.starts_with('\t') {
                out.push(format!("{n}: unexpected indent with tabs"));
            }
        }
        if ends_backslash && (line.ends_with("  \\") || line.ends_with("\t\\")) {
            out.push(format!("{n}: use only one space before backslash"));
        }
        if continued && line.trim().is_empty() {
            out.push(format!("{}: remove trailing backslash", n - 1));
        }
        continued = ends_backslash;
        if line.contains("${") && !line.starts_with('#') && !line.contains("$${") {
            out.push(format!("{n}: use $() to delimit variables, not ${{}}"));
        }
        let var = line
            .trim_start_matches("define ")
            .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .next()
            .unwrap_or("");
        if is_package
            && !define
            && var.contains('_')
            && !var.starts_with(&prefix)
            && !var.starts_with(&format!("HOST_{prefix}"))
        {
            out.push(format!("{n}: possible typo: {var} -> *{prefix}*"));
        }
        for useless in
            ["_INSTALL_STAGING = NO", "_INSTALL_TARGET = YES", "_INSTALL_IMAGES = NO", "_INSTALL_REDISTRIBUTE = YES"]
        {
            if line.contains(useless) {
                out.push(format!("{n}: useless default value {useless}"));
            }
        }
    }
    out
}

const UNINDENTED: [&str; 10] =
    ["choice", "comment", "config", "endchoice", "endif", "endmenu", "if", "menu", "menuconfig", "source"];

/// Config.in: entries at column 0, attributes behind one tab in the order type, default,
/// depends on, select, help; help text behind a tab and two spaces, at most 62 characters.
fn config_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut order, mut help, mut first_help) = (0, false, false);
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if help && line.starts_with("\t  ") {
            let body = &line[3..];
            let url_only = body.starts_with("http") && !body.contains(' ');
            if (body.chars().count() > 62 || (first_help && body.starts_with(' '))) && !url_only {
                out.push(format!("{n}: help text: <tab><2 spaces><62 chars>"));
            }
            first_help = false;
            continue;
        }
        let word = line.split_whitespace().next().unwrap_or("");
        if UNINDENTED.contains(&word) {
            (order, help) = (0, false);
            if line.starts_with(char::is_whitespace) {
                out.push(format!("{n}: should not be indented"));
            }
            continue;
        }
        let rank = match word {
            "bool" | "prompt" | "string" => 1,
            "default" => 2,
            "depends" => 3,
            "select" => 4,
            "help" => 5,
            _ => continue,
        };
        if !line.starts_with(&format!("\t{word}")) {
            out.push(format!("{n}: should be indented with one tab"));
        }
        if rank < order {
            out.push(format!("{n}: attributes order: type, default, depends on, select, help"));
        }
        if line.trim() == "default n" {
            out.push(format!("{n}: boolean symbols default to 'n', so 'default n' is redundant"));
        }
        order = rank;
        if word == "help" {
            (help, first_help) = (true, true);
        }
    }
    out
}

fn defconfig(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .filter(|(_, l)| {
            !l.split_once('=')
                .is_some_and(|(k, _)| k.starts_with("BR2_") && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        })
        .map(|(i, l)| format!("{}: not a BR2_ option: {l}", i + 1))
        .collect()
}

fn external_desc(text: &str) -> Vec<String> {
    let name = text.lines().find_map(|l| l.strip_prefix("name: ")).unwrap_or("");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return vec!["1: external.desc needs 'name: ' followed by [A-Za-z0-9_]+".into()];
    }
    Vec::new()
}

/// Scripts must be executable and pass shellcheck, as check-package runs it.
fn script(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    use std::os::unix::fs::PermissionsExt;
    if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 == 0) {
        out.push("1: a script must be executable".into());
    }
    if let Err(e) = sh::output(sh::cmd("shellcheck").arg(path)) {
        out.push(format!("1: shellcheck: {e}"));
    }
    out
}

/// Runs post-image.sh in a stand-in Buildroot output (the board's binary in images/, the
/// Debian kernel's modules in target/, the kernel's gen_init_cpio in build/linux-*/usr/) and
/// boots the initramfs it made on the qemu-aarch64 board.
fn post_image(root: &Path) -> Result<(), String> {
    let b = Board::load(root, "qemu-aarch64")?;
    let ctx = crate::e2e::Ctx::build(root, &b)?;
    let out = b.out_dir(root).join("buildroot-output");
    let _ = std::fs::remove_dir_all(&out);
    let (images, target, build) = (out.join("images"), out.join("target"), out.join("build/linux-6.1/usr"));
    for d in [&images, &target.join("lib/modules"), &build] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let init = root.join("target").join(&b.rust_target).join("release/overlay-init");
    std::fs::copy(&init, images.join("overlay-init")).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(b.module_dir(), target.join("lib/modules").join(&b.kernel_version))
        .map_err(|e| e.to_string())?;
    std::fs::copy(root.join("target/kernels/gen_init_cpio"), build.join("gen_init_cpio")).map_err(|e| e.to_string())?;
    sh::run(
        sh::cmd("bash")
            .arg(root.join("buildroot/board/overlay-init/post-image.sh"))
            .arg(&images)
            .arg("qemu-aarch64")
            .env("BR2_EXTERNAL_OVERLAY_INIT_PATH", root.join("buildroot"))
            .env("TARGET_DIR", &target)
            .env("HOST_DIR", out.join("host"))
            .env("BUILD_DIR", out.join("build")),
    )?;
    let disk = ctx.fresh_disk("buildroot")?;
    let boot = ctx.boot_with(&images.join("initramfs.cpio.gz"), &disk, "", "buildroot-initramfs")?;
    crate::e2e::booted(&boot)?;
    crate::e2e::want(&boot, "counter", "1")?;
    crate::e2e::want(&boot, "data-visible", "ext4")?;
    println!("PASS post-image.sh: its initramfs boots qemu-aarch64 with the data partition mounted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_rules_catch_what_check_package_catches() {
        let header = format!("{0}\n#\n# foo\n#\n{0}\n\n", "#".repeat(80));
        assert!(makefile(&format!("{header}FOO_VERSION = 1\n"), "foo").is_empty());
        let bad = format!("{header}FOO_VERSION = 1\nFOOO_SITE = x\n\tFOO_X = ${{BAR}}\nFOO_INSTALL_TARGET = YES\n");
        let p = makefile(&bad, "foo").join("\n");
        for want in ["possible typo: FOOO_SITE", "unexpected indent", "use $()", "useless default"] {
            assert!(p.contains(want), "{want}: {p}");
        }
        assert!(makefile("FOO_VERSION = 1\n", "foo")[0].contains("package header"));
        let good = "config BR2_PACKAGE_FOO\n\tbool \"foo\"\n\tselect BR2_X\n\thelp\n\t  Foo.\n";
        assert!(config_in(good).is_empty());
        let long = format!("config BR2_FOO\n\tselect BR2_X\n\tbool \"foo\"\n\thelp\n\t  {}\n", "x".repeat(63));
        let p = config_in(&long).join("\n");
        assert!(p.contains("attributes order") && p.contains("help text"), "{p}");
        assert!(config_in(" config BR2_FOO\n")[0].contains("should not be indented"));
        assert_eq!(generic("a \n\n\nb").len(), 3);
        assert!(defconfig("BR2_aarch64=y\n# c\nFOO=y\n")[0].contains("FOO=y"));
    }
}
