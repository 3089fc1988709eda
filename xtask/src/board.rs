//! A board folder: build settings, boot settings and disk layout.

use overlay_init::cmdline::parse_config;
use overlay_init::settings::Settings;
use std::path::{Path, PathBuf};

pub struct Board {
    pub name: String,
    pub dir: PathBuf,
    pub rust_target: String,
    pub qemu: String,
    pub qemu_args: Vec<String>,
    pub config: String,
    pub cmdline: String,
    /// Unpacked Debian kernel: vmlinuz, lib/modules/VERSION, busybox.
    pub kernel_dir: PathBuf,
    pub kernel_version: String,
}

impl Board {
    pub fn load(root: &Path, name: &str) -> Result<Board, String> {
        let dir = root.join("board").join(name);
        let read =
            |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()));
        let txt = read("board.txt")?;
        let kv = parse_config(&txt);
        let get = |k: &str| {
            kv.iter()
                .find(|(_, p)| p.key == k)
                .and_then(|(_, p)| p.value.clone())
                .ok_or(format!("board {name}: board.txt lacks {k}="))
        };
        let deb_arch = get("deb_arch")?;
        let kernel_dir = root.join("target/kernels").join(&deb_arch);
        let kernel_version = std::fs::read_to_string(kernel_dir.join("version"))
            .map_err(|_| format!("no kernel in {}: run tests/setup.sh", kernel_dir.display()))?
            .trim()
            .to_string();
        Ok(Board {
            name: name.into(),
            rust_target: get("rust_target")?,
            qemu: get("qemu")?,
            qemu_args: get("qemu_args")?.split_whitespace().map(String::from).collect(),
            config: read("overlay-init.conf")?,
            cmdline: read("cmdline")?.trim().to_string(),
            dir,
            kernel_dir,
            kernel_version,
        })
    }

    /// The modules the board's config asks for (the same parser the init uses).
    pub fn modules(&self) -> Vec<String> {
        Settings::load(&self.config, "").0.modules
    }

    pub fn module_dir(&self) -> PathBuf {
        self.kernel_dir.join("lib/modules").join(&self.kernel_version)
    }

    pub fn out_dir(&self, root: &Path) -> PathBuf {
        root.join("target/boards").join(&self.name)
    }
}
