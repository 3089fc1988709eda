//! What the Cargo profile cannot say: the release binary links without unwind tables.
//!
//! The release profile has `panic = "abort"`, so nothing unwinds; the `.eh_frame` tables (80 KB
//! of the x86_64 boot path, 92 KB on aarch64) would only serve a backtrace, and the binary is
//! stripped, so a backtrace has no names to print. `-C force-unwind-tables=no` does not drop
//! them: std's bitcode carries debug info, and LLVM then writes call frame information for
//! every function of the LTO module. The linker script discards them instead. 32-bit ARM
//! unwinds with `.ARM.exidx`, which the script leaves alone, so it is not used there.

fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    println!("cargo:rerun-if-changed=.cargo/no-unwind-tables.ld");
    if var("PROFILE") == "release" && var("CARGO_CFG_TARGET_ARCH") != "arm" {
        println!("cargo:rustc-link-arg-bins=-T{}/.cargo/no-unwind-tables.ld", var("CARGO_MANIFEST_DIR"));
    }
}
