//! `/run/overlay-init/slots`: what the boot leaves for the userspace commands (the initramfs and
//! its config are gone after the switch), and the commands' view of it (`Context`), shared by
//! `cli::slots`, `install` and `rauc`.

use crate::ab::slots::Policy;
use crate::ab::state::{SlotId, State};
use crate::ab::store::Store;
use crate::rt::path::PathBuf;
use crate::rt::prelude::*;
use crate::rt::Why;

pub const SLOTS_FILE: &str = "/run/overlay-init/slots";

/// The file's content: `key=value` per line; a value is the rest of its line, so a path with
/// spaces or quotes reads back as it was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SlotsFile {
    pub booted: Option<SlotId>,
    pub state: Option<PathBuf>,
    pub tries: Option<u8>,
    /// Each slot's image: a partition's device node or a file.
    pub sources: [Option<String>; 2],
    /// Each slot's verity hash partition, when its tree is not appended to the image.
    pub hash: [Option<String>; 2],
    /// Which signed images the board accepts (`oinit.compatible`, `oinit.verityunversioned`).
    pub compatible: Option<String>,
    pub unversioned: bool,
    /// The booted slot's signed security version: mark-good raises the floor to it.
    pub security_version: Option<u32>,
    /// `oinit.kexec`: where a slot image's kernel, initramfs and device tree are.
    pub kexec: Option<BootFiles>,
    /// `oinit.bootloader=uboot`: U-Boot's environment holds the slots' tries and order.
    pub uboot: bool,
    /// Each slot's boot partition under U-Boot (`oinit.aboot`, `oinit.bboot`), a device node.
    pub boot: [Option<String>; 2],
}

/// Where a slot image carries its own boot (`oinit.kexec`), so that `install` checks them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BootFiles {
    pub kernel: String,
    pub initrd: String,
    pub dtb: Option<String>,
}

impl SlotsFile {
    pub fn render(&self) -> String {
        let mut text = String::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                text.push_str(&format!("{k}={v}\n"));
            }
        };
        put("booted", self.booted.map(|s| s.name().to_string()));
        put("state", self.state.as_ref().map(|p| p.display().to_string()));
        put("tries", self.tries.map(|t| t.to_string()));
        for slot in [SlotId::A, SlotId::B] {
            put(slot.name(), self.sources[slot.index()].clone());
            put(&format!("{}hash", slot.name()), self.hash[slot.index()].clone());
        }
        put("compatible", self.compatible.clone());
        put("unversioned", self.unversioned.then(|| "1".to_string()));
        put("security_version", self.security_version.map(|v| v.to_string()));
        if let Some(k) = &self.kexec {
            put("kexec_kernel", Some(k.kernel.clone()));
            put("kexec_initrd", Some(k.initrd.clone()));
            put("kexec_dtb", k.dtb.clone());
        }
        put("bootloader", self.uboot.then(|| "uboot".to_string()));
        put("aboot", self.boot[0].clone());
        put("bboot", self.boot[1].clone());
        text
    }

    pub fn parse(text: &str) -> SlotsFile {
        let get = |key: &str| {
            text.lines().find_map(|l| l.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
        };
        SlotsFile {
            booted: get("booted").and_then(|s| SlotId::parse(&s)),
            state: get("state").map(PathBuf::from),
            tries: get("tries").and_then(|t| t.parse().ok()),
            sources: [get("a"), get("b")],
            hash: [get("ahash"), get("bhash")],
            compatible: get("compatible"),
            unversioned: get("unversioned").as_deref() == Some("1"),
            security_version: get("security_version").and_then(|v| v.parse().ok()),
            kexec: match (get("kexec_kernel"), get("kexec_initrd")) {
                (Some(kernel), Some(initrd)) => Some(BootFiles { kernel, initrd, dtb: get("kexec_dtb") }),
                _ => None,
            },
            uboot: get("bootloader").as_deref() == Some("uboot"),
            boot: [get("aboot"), get("bboot")],
        }
    }
}

/// What the boot left for us in /run/overlay-init/slots.
pub struct Context {
    pub booted: Option<SlotId>,
    pub state: PathBuf,
    pub policy: Policy,
    pub sources: [Option<String>; 2],
    /// Each slot's verity hash partition, when its tree is not appended to the image.
    pub hash: [Option<String>; 2],
    /// The board's verity key the boot left behind: images must be signed with it.
    pub verity_key: Option<PathBuf>,
    /// Which signed images the board accepts, and the booted slot's security version.
    pub compatible: Option<String>,
    pub unversioned: bool,
    pub security_version: Option<u32>,
    /// Where slot images carry their own kernel (`oinit.kexec`): checked by `install`.
    pub kexec: Option<BootFiles>,
    /// The slots are chosen by U-Boot (`oinit.bootloader=uboot`).
    pub uboot: bool,
    /// Each slot's boot partition under U-Boot, which `install` writes with the image.
    pub boot: [Option<String>; 2],
}

impl Context {
    pub fn load(state_override: Option<PathBuf>) -> Result<Context, String> {
        let f = SlotsFile::parse(&crate::rt::fs::read_to_string(SLOTS_FILE).unwrap_or_default());
        let missing = || {
            format!("{SLOTS_FILE} is missing: this system was not booted by overlay-init with A/B slots (or pass --state FILE)")
        };
        let state = state_override.or(f.state).ok_or_else(missing)?;
        Ok(Context {
            booted: f.booted,
            state,
            policy: Policy {
                tries: f.tries.unwrap_or(3),
                late_fallback: false,
                one_slot: f.sources[0].is_some() && f.sources[1].is_none(),
            },
            sources: f.sources,
            hash: f.hash,
            verity_key: Some(PathBuf::from(crate::config::paths::DEVICE_KEY)).filter(|k| k.exists()),
            compatible: f.compatible,
            unversioned: f.unversioned,
            security_version: f.security_version,
            kexec: f.kexec,
            uboot: f.uboot,
            boot: f.boot,
        })
    }

    /// Confirms slot `s`; when it is the booted slot, no image below its security version boots
    /// from now on (anti-rollback: the floor only rises, at a confirmation).
    pub fn mark_good(&self, st: &mut State, s: SlotId) {
        crate::ab::slots::mark_good(st, s, self.policy);
        if let Some(v) = self.security_version.filter(|_| self.booted == Some(s)) {
            st.security_floor = st.security_floor.max(v);
        }
    }

    /// Which signed images may go into a slot now: the board's product and the record's floor.
    pub fn acceptance(&self, floor: u32) -> crate::verity::manifest::Acceptance {
        crate::verity::manifest::Acceptance {
            compatible: self.compatible.clone(),
            unversioned: self.unversioned,
            floor,
        }
    }

    /// Reads the state, applies `change`, and saves it (fsynced) unless `change` refuses.
    pub fn update(&self, change: impl FnOnce(&mut State) -> Result<String, String>) -> Result<String, String> {
        let (mut store, st) = Store::open(&self.state)
            .map_err(|e| format!("cannot open the slot state {}: {e}", self.state.display(), e = Why(e)))?;
        let mut st = st.unwrap_or_else(|| State::factory(self.policy.tries));
        let msg = change(&mut st)?;
        store.save(&mut st).map_err(|e| {
            format!("cannot write the slot state {}: {e}; nothing changed", self.state.display(), e = Why(e))
        })?;
        Ok(msg)
    }

    /// Reads the state without writing anything. A missing file is the documented default; a
    /// file with no valid copy is too, but never silently: the warning goes to stderr.
    pub fn read(&self) -> Result<State, String> {
        self.read_record().map(|(st, _)| st)
    }

    /// The state and what the record held; the default (slot a) when it holds none.
    pub fn read_record(&self) -> Result<(State, Record), String> {
        let st = crate::ab::store::read_only(&self.state)
            .map_err(|e| format!("cannot read the slot state {}: {e}", self.state.display(), e = Why(e)))?;
        let record = match (&st, self.state.exists()) {
            (Some(_), _) => Record::Valid,
            (None, false) => Record::Missing,
            (None, true) => Record::Corrupt,
        };
        if record == Record::Corrupt {
            eprintln!(
                "overlay-init: WARNING: no valid copy of the state record in {}: showing the default (slot a)",
                self.state.display()
            );
        }
        Ok((st.unwrap_or_else(|| State::factory(self.policy.tries)), record))
    }

    /// The identity of the image in the slot now (its squashfs superblock), if readable.
    pub fn image_id(&self, slot: SlotId) -> Option<u32> {
        crate::block::device::image_id_at(crate::rt::path::Path::new(self.sources[slot.index()].as_ref()?))
    }

    pub fn slot_arg(&self, arg: Option<&String>) -> Result<SlotId, String> {
        match arg {
            Some(a) => SlotId::parse(a).ok_or_else(|| format!("'{a}' is not a slot: use a or b")),
            None => self.booted.ok_or_else(|| "which slot? the booted one is unknown; name it: a or b".into()),
        }
    }
}

/// What the state record file held when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A valid copy: what is shown is the record.
    Valid,
    /// No file yet (no boot has written it): the default is shown.
    Missing,
    /// A file without a valid copy: the default is shown, with a warning.
    Corrupt,
}

impl Record {
    pub fn code(self) -> &'static str {
        match self {
            Record::Valid => "valid",
            Record::Missing => "missing",
            Record::Corrupt => "corrupt",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = SlotsFile {
            booted: Some(SlotId::B),
            state: Some("/run/overlay-init/data/.overlay-init/state".into()),
            tries: Some(2),
            sources: [Some("/dev/vda1".into()), Some("/run/overlay-init/data/images/b 'new'.sqfs".into())],
            hash: [None, Some("/dev/vda5".into())],
            compatible: Some("acme,gw-100".into()),
            unversioned: true,
            security_version: Some(7),
            kexec: Some(BootFiles { kernel: "/boot/vmlinuz".into(), initrd: "/boot/initrd.img".into(), dtb: None }),
            uboot: true,
            boot: [Some("/dev/vdb2".into()), Some("/dev/vdb3".into())],
        };
        assert_eq!(SlotsFile::parse(&f.render()), f);
        assert_eq!(SlotsFile::parse(""), SlotsFile::default());
    }

    /// Confirming the booted slot raises the security floor to its version, never lowers it;
    /// confirming the other slot leaves it.
    #[test]
    fn mark_good_raises_the_security_floor() {
        let ctx = Context {
            booted: Some(SlotId::B),
            state: "/nonexistent".into(),
            policy: Policy { tries: 3, late_fallback: false, one_slot: false },
            sources: [None, None],
            hash: [None, None],
            verity_key: None,
            compatible: None,
            unversioned: false,
            security_version: Some(5),
            kexec: None,
            uboot: false,
            boot: [None, None],
        };
        let mut st = State::factory(3);
        ctx.mark_good(&mut st, SlotId::A);
        assert_eq!(st.security_floor, 0);
        ctx.mark_good(&mut st, SlotId::B);
        assert_eq!((st.security_floor, st.slot(SlotId::B).good), (5, true));
        st.security_floor = 9;
        ctx.mark_good(&mut st, SlotId::B);
        assert_eq!(st.security_floor, 9);
    }
}
