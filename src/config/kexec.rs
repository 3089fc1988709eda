//! Settings of the kernel hand-over (`oinit.kexec`): where a slot's own kernel, initramfs and
//! device tree are inside its root image, and the marker stage one leaves on stage two's command
//! line. Same `oinit.` prefix and parser as every other key.

use crate::ab::handoff::BootFiles;
use crate::ab::state::SlotId;
use crate::config::values::{abs_path, flag, need, Source};
use crate::rt::prelude::*;

/// The marker key stage one appends to the command line of the kernel it hands over to.
pub const STAGE2_KEY: &str = "oinit.stage2";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KexecSettings {
    /// Boot the chosen slot's own kernel when it is not the running one.
    pub enabled: bool,
    /// Paths inside the slot's root image (Debian's names by default).
    pub kernel: String,
    pub initrd: String,
    /// The device tree the slot's kernel gets; none: the running kernel's (arm) or none (x86).
    pub dtb: Option<String>,
    /// Set on the second kernel's command line by stage one: what it decided.
    pub stage2: Option<Stage2>,
}

impl Default for KexecSettings {
    fn default() -> Self {
        KexecSettings {
            enabled: false,
            kernel: "/boot/vmlinuz".into(),
            initrd: "/boot/initrd.img".into(),
            dtb: None,
            stage2: None,
        }
    }
}

/// What stage one decided and measured, carried to stage two as
/// `oinit.stage2=SLOT,RELEASE,MS` (the slot, the stage-one kernel, its milliseconds to the
/// hand-over): stage two boots that slot without counting the boot again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage2 {
    pub slot: SlotId,
    pub from_release: String,
    pub stage1_ms: u64,
}

impl Stage2 {
    pub fn parse(v: &str) -> Result<Stage2, String> {
        let mut it = v.splitn(3, ',');
        let slot = it.next().and_then(SlotId::parse);
        let release = it.next().filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_graphic() && b != b','));
        let ms = it.next().and_then(|m| m.parse::<u64>().ok());
        match (slot, release, ms) {
            (Some(slot), Some(r), Some(stage1_ms)) => Ok(Stage2 { slot, from_release: r.into(), stage1_ms }),
            _ => Err("must be SLOT,RELEASE,MS (set by stage one, e.g. b,6.1.0-28-amd64,812)".into()),
        }
    }

    pub fn render(&self) -> String {
        format!("{STAGE2_KEY}={},{},{}", self.slot.name(), self.from_release, self.stage1_ms)
    }
}

impl KexecSettings {
    /// Where a slot image carries its boot, when the hand-over is on.
    pub fn files(&self) -> Option<BootFiles> {
        self.enabled.then(|| self.paths())
    }

    /// Where a slot image carries its kernel, initramfs and device tree.
    pub fn paths(&self) -> BootFiles {
        BootFiles { kernel: self.kernel.clone(), initrd: self.initrd.clone(), dtb: self.dtb.clone() }
    }

    pub(crate) fn set(&mut self, name: &str, v: Option<&str>, src: Source) -> Result<bool, String> {
        match name {
            "kexec" => self.enabled = flag(v)?,
            "kexeckernel" => self.kernel = abs_path(need(v)?)?,
            "kexecinitrd" => self.initrd = abs_path(need(v)?)?,
            "kexecdtb" => self.dtb = Some(abs_path(need(v)?)?),
            // Only the first kernel writes it, on the command line it hands over.
            "stage2" if src != Source::Cmdline => return Err("is set by stage one on the command line only".into()),
            "stage2" => self.stage2 = Some(Stage2::parse(need(v)?)?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::Settings;

    #[test]
    fn keys_and_marker() {
        let ab = "oinit.a=PARTLABEL=a oinit.b=PARTLABEL=b oinit.data=PARTLABEL=d";
        let (s, l) = Settings::load(
            &format!("{ab} oinit.kexec oinit.kexecdtb=/boot/board.dtb"),
            "oinit.stage2=b,6.12.9-amd64,812",
        );
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert!(s.kexec.enabled);
        assert_eq!(s.kexec.kernel, "/boot/vmlinuz");
        assert_eq!(s.kexec.dtb.as_deref(), Some("/boot/board.dtb"));
        let st2 = s.kexec.stage2.clone().unwrap_or_else(|| panic!("no stage2"));
        assert_eq!((st2.slot, st2.from_release.as_str(), st2.stage1_ms), (SlotId::B, "6.12.9-amd64", 812));
        assert_eq!(Stage2::parse(&st2.render()["oinit.stage2=".len()..]), Ok(st2));
        for bad in ["c,6.1,1", "a,,1", "a,6.1", "a,6.1,x", "a"] {
            let (_, l) = Settings::load("", &format!("oinit.stage2={bad}"));
            assert_eq!(l.errors.first().map(|e| e.key.as_str()), Some("oinit.stage2"), "{bad}");
        }
        let (_, l) = Settings::load("oinit.stage2=a,6.1,1", "");
        assert!(l.errors[0].reason.contains("command line only"));
        let (_, l) = Settings::load(ab, "oinit.kexeckernel=boot/vmlinuz");
        assert_eq!(l.errors[0].key, "oinit.kexeckernel");
        let (_, l) = Settings::load("root=/dev/vda1", "oinit.kexec");
        assert!(l.errors[0].reason.contains("needs two slots"));
    }
}
