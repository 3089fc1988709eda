//! `cargo xtask check-buildroot`: the BR2_EXTERNAL tree under buildroot/ checked by Buildroot's
//! own code (a trimmed Buildroot tree in ../shared/buildroot, unpacked under target/): its kconfig
//! must keep every line of every defconfig (it drops a symbol whose dependencies are unmet, and
//! exits 0), `make overlay-init-show-info` must name the license files and the Rust toolchain, and
//! `utils/check-package` must print no warning. Then the post-image script runs for real in a
//! stand-in output directory: the initramfs it assembles must boot the qemu-aarch64 board.

use crate::board::Board;
use crate::sh;
use std::path::{Path, PathBuf};

const TARBALL: &str = "shared/buildroot/buildroot-2026.08-rc1-trimmed.tar.xz";

pub fn main(root: &Path) -> Result<(), String> {
    let br = unpack(root)?;
    let ext = root.join("buildroot");
    let mut defconfigs: Vec<PathBuf> = std::fs::read_dir(ext.join("configs"))
        .map_err(|e| format!("buildroot/configs: {e}"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    defconfigs.sort();
    for d in &defconfigs {
        let name = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let out = root.join("target/br").join(&name);
        kconfig(&br, &ext, &out, &name, d)?;
        show_info(&br, root, &out, &name)?;
    }
    check_package(&br, &ext)?;
    post_image(root)
}

/// Unpacks the trimmed Buildroot tree once (under target/, never committed).
fn unpack(root: &Path) -> Result<PathBuf, String> {
    let br = root.join("target/buildroot");
    if br.join("Makefile").exists() {
        return Ok(br);
    }
    let tarball = root.parent().map(|p| p.join(TARBALL)).unwrap_or_default();
    std::fs::create_dir_all(&br).map_err(|e| e.to_string())?;
    sh::run(sh::cmd("tar").arg("-xJf").arg(&tarball).arg("-C").arg(&br))
        .map_err(|e| format!("{e}: Buildroot's tree is expected at {} (beside the checkout)", tarball.display()))?;
    Ok(br)
}

/// Buildroot's kconfig on one defconfig; every defconfig line must be in the resulting .config.
fn kconfig(br: &Path, ext: &Path, out: &Path, name: &str, defconfig: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(out);
    sh::quiet(
        sh::cmd("make")
            .arg("-s")
            .arg("-C")
            .arg(br)
            .arg(format!("BR2_EXTERNAL={}", ext.display()))
            .arg(format!("O={}", out.display()))
            .arg(name),
    )?;
    let config = std::fs::read_to_string(out.join(".config")).map_err(|e| format!("{name}: .config: {e}"))?;
    let wanted = std::fs::read_to_string(defconfig).map_err(|e| e.to_string())?;
    let dropped = dropped_lines(&wanted, &config);
    if !dropped.is_empty() {
        return Err(format!(
            "Buildroot's kconfig dropped from {name} (a dependency is not met): {}",
            dropped.join(", ")
        ));
    }
    println!("PASS kconfig {name}: all {} lines kept", wanted.lines().filter(|l| is_setting(l)).count());
    Ok(())
}

fn is_setting(line: &str) -> bool {
    !line.trim().is_empty() && !line.starts_with('#')
}

/// The defconfig settings that kconfig did not write into `.config`.
fn dropped_lines(defconfig: &str, config: &str) -> Vec<String> {
    let have: std::collections::HashSet<&str> = config.lines().collect();
    defconfig.lines().filter(|l| is_setting(l) && !have.contains(l)).map(String::from).collect()
}

/// `make overlay-init-show-info`: the license files exist and the package builds with Rust.
fn show_info(br: &Path, root: &Path, out: &Path, name: &str) -> Result<(), String> {
    let info = sh::output(
        sh::cmd("make").arg("-s").arg("-C").arg(br).arg(format!("O={}", out.display())).arg("overlay-init-show-info"),
    )?;
    let files = json_list(&info, "license_files");
    if files.is_empty() {
        return Err(format!("{name}: overlay-init-show-info lists no license_files"));
    }
    if let Some(f) = files.iter().find(|f| !root.join(f).is_file()) {
        return Err(format!("{name}: license file {f} named by overlay-init.mk is not in the checkout"));
    }
    if !json_list(&info, "dependencies").iter().any(|d| d == "host-rustc") {
        return Err(format!("{name}: overlay-init does not depend on host-rustc: {info}"));
    }
    println!("PASS show-info {name}: license files {}, builds with host-rustc", files.join(" "));
    Ok(())
}

/// The strings of the JSON list `"key": [ "a", "b" ]` in show-info's one-line output.
fn json_list(text: &str, key: &str) -> Vec<String> {
    let Some(rest) = text.split_once(&format!("\"{key}\": [")).map(|(_, r)| r) else { return Vec::new() };
    let body = rest.split(']').next().unwrap_or("");
    body.split(',').map(|s| s.trim().trim_matches('"').to_string()).filter(|s| !s.is_empty()).collect()
}

/// Buildroot's utils/check-package over every file of the external tree: zero warnings.
fn check_package(br: &Path, ext: &Path) -> Result<(), String> {
    let mut files = Vec::new();
    walk(ext, &mut files);
    files.sort();
    let rel: Vec<PathBuf> = files.iter().filter_map(|f| f.strip_prefix(ext).ok().map(Path::to_path_buf)).collect();
    let out = sh::cmd("python3")
        .arg(br.join("utils/check-package"))
        .arg("-b")
        .args(&rel)
        .current_dir(ext)
        .output()
        .map_err(|e| format!("check-package: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    print!("{text}");
    if !out.status.success() || !text.contains("0 warnings generated") {
        return Err("Buildroot's check-package warns about buildroot/ (see above)".into());
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Runs post-image.sh in a stand-in Buildroot output (the board's binary in images/, the
/// Debian kernel's modules in target/, the kernel's gen_init_cpio in build/linux-*/usr/, the
/// host build of overlay-init in host/bin/) and boots the initramfs it made on the qemu-aarch64
/// board, checking that it holds the modules the init itself would pack.
fn post_image(root: &Path) -> Result<(), String> {
    let b = Board::load(root, "qemu-aarch64")?;
    let ctx = crate::e2e::harness::Ctx::build(root, &b)?;
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
    // host-overlay-init: the same code built for the build machine, which resolves the modules.
    let host_bin = out.join("host/bin");
    std::fs::create_dir_all(&host_bin).map_err(|e| e.to_string())?;
    sh::run(sh::cmd("cargo").args(["build", "--release", "--quiet", "-p", "overlay-init"]).current_dir(root))?;
    std::fs::copy(root.join("target/release/overlay-init"), host_bin.join("overlay-init"))
        .map_err(|e| e.to_string())?;
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
    let list = std::fs::read_to_string(images.join("initramfs.list")).map_err(|e| e.to_string())?;
    let want = b.modules_index.pack(&b.modules())?;
    if let Some(missing) = want.files.iter().find(|f| !list.contains(&format!("/{f} "))) {
        return Err(format!("post-image.sh's initramfs.list lacks {missing}"));
    }
    let disk = ctx.fresh_disk("buildroot")?;
    let boot = ctx.boot_with(&images.join("initramfs.cpio.gz"), &disk, "", "buildroot-initramfs")?;
    crate::e2e::harness::booted(&boot)?;
    crate::e2e::harness::want(&boot, "counter", "1")?;
    crate::e2e::harness::want(&boot, "data-visible", "ext4")?;
    println!("PASS post-image.sh: its initramfs boots qemu-aarch64 with the data partition mounted");
    post_build(root, &b, &out)
}

/// Runs post-build.sh in the same stand-in with a config that turns the kernel hand-over on (the
/// board's own plus two slots and `oinit.kexec=1`), the Debian kernel as Buildroot's `Image`:
/// the root filesystem must get the kernel, its banner and an initramfs in /boot that pass
/// `install`'s checks. A root filesystem whose modules are another kernel's must stop the build.
fn post_build(root: &Path, b: &Board, out: &Path) -> Result<(), String> {
    let [a, other] = crate::e2e::harness::slot_parts(b);
    let conf = out.join("kexec.conf");
    let text = format!("{}\noinit.a=PARTLABEL={a}\noinit.b=PARTLABEL={other}\noinit.kexec=1\n", b.config);
    std::fs::write(&conf, text).map_err(|e| e.to_string())?;
    let images = out.join("images");
    std::fs::copy(b.kernel_dir.join("vmlinuz"), images.join("Image")).map_err(|e| e.to_string())?;
    let run = |target: &Path| {
        sh::cmd("bash")
            .arg(root.join("buildroot/board/overlay-init/post-build.sh"))
            .arg(target)
            .arg(&b.name)
            .env("OVERLAY_INIT_CONF", &conf)
            .env("BINARIES_DIR", &images)
            .env("HOST_DIR", out.join("host"))
            .env("BUILD_DIR", out.join("build"))
            .output()
            .map_err(|e| format!("post-build.sh: {e}"))
    };
    let target = out.join("target");
    let done = run(&target)?;
    let said = String::from_utf8_lossy(&done.stdout).into_owned() + &String::from_utf8_lossy(&done.stderr);
    if !done.status.success() || !said.contains(&format!("/lib/modules/{} belong together", b.kernel_version)) {
        return Err(format!(
            "post-build.sh with oinit.kexec=1 did not make a slot root that passes the checks:\n{said}"
        ));
    }
    let banner = std::fs::read_to_string(target.join("boot/vmlinuz.version")).unwrap_or_default();
    if !banner.starts_with(&format!("Linux version {} ", b.kernel_version)) {
        return Err(format!("post-build.sh wrote the banner {banner:?} beside the kernel"));
    }
    let initrd = std::fs::read(target.join("boot/initrd.img")).map_err(|e| format!("/boot/initrd.img: {e}"))?;
    if !initrd.starts_with(&[0x1f, 0x8b]) {
        return Err("post-build.sh's /boot/initrd.img is not a gzip-compressed cpio".into());
    }
    // Modules of another kernel: the build must stop, saying so.
    let wrong = out.join("target-other-kernel");
    std::fs::create_dir_all(wrong.join("lib/modules")).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(b.module_dir(), wrong.join("lib/modules/0.0.0-other")).map_err(|e| e.to_string())?;
    let refused = run(&wrong)?;
    let said = String::from_utf8_lossy(&refused.stderr);
    if refused.status.success() || !said.contains(&format!("has no /lib/modules/{}", b.kernel_version)) {
        return Err(format!("post-build.sh accepted a root filesystem with another kernel's modules:\n{said}"));
    }
    println!(
        "PASS post-build.sh: with oinit.kexec=1 the root filesystem carries /boot/vmlinuz ({}), its banner and \
         initramfs, checked as install checks them; another kernel's modules stop the build",
        b.kernel_version
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_defconfig_lines_are_found() {
        let def = "# c\nBR2_aarch64=y\nBR2_PACKAGE_OVERLAY_INIT=y\n\n";
        let config = "BR2_aarch64=y\n# BR2_PACKAGE_OVERLAY_INIT is not set\n";
        assert_eq!(dropped_lines(def, config), ["BR2_PACKAGE_OVERLAY_INIT=y"]);
        assert!(dropped_lines(def, "BR2_aarch64=y\nBR2_PACKAGE_OVERLAY_INIT=y\n").is_empty());
    }

    #[test]
    fn show_info_lists() {
        let info = r#"{ "overlay-init": { "license_files": [ "LICENSE-MIT", "LICENSE-APACHE" ], "x": [ ] } }"#;
        assert_eq!(json_list(info, "license_files"), ["LICENSE-MIT", "LICENSE-APACHE"]);
        assert!(json_list(info, "x").is_empty());
        assert!(json_list(info, "missing").is_empty());
    }
}
