//! The plan's types: the steps that assemble the root, with the `Display` text that is logged at
//! boot, printed by `overlay-init plan` and pinned by the golden tests. A leaf: the deciding
//! files (`root`, `data`, `ab`) and the executors all import it, it imports none of them.

use crate::ab::state::{SlotId, State};
use crate::block::device::BlockDev;
use crate::config::ab::Carry;
use crate::config::paths::{self, CARRY_VOLUME};
use crate::rt::prelude::*;
use core::fmt;

/// Overlay options stated explicitly instead of inheriting the kernel's build defaults:
/// - `redirect_dir=nofollow`: never follow a redirect stored in an upper (Debian builds with
///   redirects on, and a plain `off` would still follow them); a renamed directory is copied up.
/// - `metacopy=off`: a metadata-only copy-up points at lower data; over a replaced lower image
///   that pointer could expose another file's data.
/// - `index=off`: the index ties the upper to one lower's file handles; off lets an upper be
///   reused over a new image (A/B updates) without a mount failure.
pub const OVERLAY_SAFE_OPTS: &str = "redirect_dir=nofollow,metacopy=off,index=off";

/// The type of an image file lower: squashfs or EROFS, read from the image when it is mounted
/// (`rootfstype=` names the partition holding the file).
pub const AUTO_IMAGE: &str = "squashfs|erofs";

/// What the device search found, the input of `decide`.
#[derive(Debug, Clone)]
pub struct Found {
    /// The `root=` device (the squashfs, or the partition holding the lower image file).
    pub root: Option<BlockDev>,
    pub data: DataState,
    /// The A/B slot partitions, when slots are partitions.
    pub slots: [Option<BlockDev>; 2],
    /// Hash partitions of verified lowers (slot a or the one image, slot b), when configured.
    pub hash: [Option<BlockDev>; 2],
}

#[derive(Debug, Clone, PartialEq)]
pub enum DataState {
    NotConfigured,
    Found {
        dev: BlockDev,
        blank: bool,
        /// Non-zero: the data area starts this far into `dev` (`oinit.data=appended`).
        offset: u64,
    },
    Missing(String),
    /// The mount was tried and failed (set by the executor before deciding again).
    Unmountable(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Data,
    LowerDev,
    Lower,
    Volatile,
    /// Preparing upper and work: on the data partition, so its failure counts as the data's.
    Upper,
    Overlay,
    Switch,
    /// A write of the A/B state record.
    State,
    /// Factory reset, a new image's upper, the keep-list of a slot switch, the trash.
    Slot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Device(String),
    /// A file attached to a read-only loop device first.
    LoopFile(String),
    Virtual(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub role: Role,
    pub source: Source,
    pub target: String,
    pub fstype: String,
    /// Comma-separated options as a user writes them; the executor splits flags from data.
    pub options: String,
}

/// Where a verified lower's root hash comes from. Never from the image itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A setting gave it (the board config, or a command line from a signed boot chain).
    RootHash { key: &'static str, hash: [u8; 32] },
    /// The signature block after the hash tree, checked with the board's public key; a root hash
    /// setting, when there is one too, must name the same hash.
    /// `accept` says which signed images the device takes (product, security version floor).
    Signed { key_file: String, pinned: Option<[u8; 32]>, accept: crate::verity::manifest::Acceptance },
}

/// A dm-verity device over the lower image, mounted in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verity {
    /// The image: a partition, or a file attached to a read-only loop device first.
    pub data: Source,
    /// The hash partition, when the tree is not appended to the image.
    pub hash: Option<String>,
    /// The dm device's name: it appears as /dev/mapper/NAME.
    pub name: String,
    pub trust: Trust,
    pub on_corruption: crate::verity::hashtree::OnCorruption,
    /// Read every block once before the mount (the first boot of an image).
    pub check_all: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Fsck {
        device: String,
        budget: u32,
    },
    Mkfs {
        device: String,
    },
    /// Adds MTD partition `name` of `master` from byte `offset`, `length` bytes (BLKPG).
    AddMtdPartition {
        master: String,
        name: String,
        offset: u64,
        length: u64,
    },
    /// Creates UBI volume `name` of `bytes` bytes on `ubi` (`/dev/ubiN`) as volume `vol_id`.
    MakeUbiVolume {
        ubi: String,
        vol_id: u32,
        name: String,
        bytes: u64,
    },
    /// Attaches `device` from `offset` on to a read-write loop device and links it as `link`.
    AttachLoop {
        device: String,
        offset: u64,
        link: String,
    },
    Verity(Verity),
    Mount(Mount),
    /// Creates upper (0755: the merged root inherits it) and work (0700), and empties a stale work.
    PrepareUpper {
        upper: String,
        work: String,
    },
    SwitchRoot {
        root: String,
        inits: Vec<String>,
        args: Vec<String>,
        /// Variables the real init gets besides the kernel's (OpenWRT's `INITRAMFS=1`).
        env: Vec<(String, String)>,
    },
    /// Writes the state record as it is after the steps before (A/B); a `critical` write that
    /// fails hands the boot to the plan for that case, any other is a warning.
    SaveState {
        state: Box<State>,
        why: String,
        critical: bool,
    },
    /// Moves every slot's upper aside into `base/.trash/TAG-SLOT` and carries the keep-list.
    FactoryReset {
        why: String,
        base: String,
        tag: String,
        boot: u32,
        /// `oinit.datarecreate`: the UBI data volume is removed and made again instead.
        recreate: bool,
    },
    NewUpper(Box<NewUpper>),
    /// Copies the keep-list's paths from the upper of the slot booted before into this one's.
    CarryKeepList {
        base: String,
        from_slot: SlotId,
        slot: SlotId,
    },
    /// Deletes `base/.trash` in a process that outlives the switch.
    DeleteTrash {
        base: String,
    },
    /// Hands over to `slot`'s own kernel in its lower mounted at `lower` (`oinit.kexec`), unless
    /// it is the running kernel or the slot has none; a refusal fails the slot like its lower.
    Kexec {
        slot: SlotId,
        lower: String,
        kernel: String,
        initrd: String,
        dtb: Option<String>,
        /// The dm-verity device under the lower, removed with the lower when the slot's kernel
        /// is refused (the other slot's lower takes the same name).
        verity: Option<String>,
    },
}

/// A slot booting a new image: its upper is made from `from_slot`'s by the carry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpper {
    pub base: String,
    pub slot: SlotId,
    pub from_slot: SlotId,
    /// The image the slot's old upper was made for (0: unknown).
    pub recorded: u32,
    pub id: u32,
    pub carry: Carry,
    /// The image `from_slot`'s upper was made over, when it is another slot's (still on disk).
    pub old_image: Option<String>,
    /// Where the board verifies its lowers: the dm-verity device the old image is read through
    /// while reconciling (never read unverified; without one there is no `old_image`).
    pub old_verity: Option<Verity>,
}

/// The plan that takes over when a step of role `when` fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    pub when: Role,
    pub why: String,
    pub plan: Box<Plan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub devices: Vec<String>,
    pub steps: Vec<Step>,
    /// Why the upper is not on the data partition, when it is not: shown loudly.
    pub volatile: Option<String>,
    pub warnings: Vec<String>,
    /// The A/B slot this plan boots, and why.
    pub slot: Option<(SlotId, String)>,
    pub alternatives: Vec<Alternative>,
}

impl Plan {
    pub(crate) fn new() -> Plan {
        Plan {
            devices: Vec::new(),
            steps: Vec::new(),
            volatile: None,
            warnings: Vec::new(),
            slot: None,
            alternatives: Vec::new(),
        }
    }
}

/// Why no plan can be made; the boot follows the failure policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub what: String,
    pub hint: String,
}

pub(crate) fn err(what: String, hint: &str) -> PlanError {
    PlanError { what, hint: hint.to_string() }
}

impl Step {
    pub fn role(&self) -> Role {
        match self {
            Step::Fsck { .. }
            | Step::Mkfs { .. }
            | Step::AttachLoop { .. }
            | Step::AddMtdPartition { .. }
            | Step::MakeUbiVolume { .. } => Role::Data,
            Step::Verity(_) => Role::LowerDev,
            Step::Kexec { .. } => Role::Lower,
            Step::Mount(m) => m.role,
            Step::PrepareUpper { .. } => Role::Upper,
            Step::SwitchRoot { .. } => Role::Switch,
            Step::SaveState { .. } => Role::State,
            Step::FactoryReset { .. } | Step::NewUpper(_) | Step::CarryKeepList { .. } | Step::DeleteTrash { .. } => {
                Role::Slot
            }
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Fsck { device, budget } => {
                write!(f, "check {device} with e2fsck -p (at most {budget} s)")
            }
            Step::Mkfs { device } => write!(f, "format blank {device} with mkfs.ext4"),
            Step::AttachLoop { device, offset, link } => {
                write!(f, "attach {device} from byte {offset} to a read-write loop device, linked as {link}")
            }
            Step::MakeUbiVolume { ubi, vol_id, name, bytes } => write!(
                f,
                "create UBI volume {name} on {ubi} as volume {vol_id}, {bytes} bytes (UBI_IOCMKVOL; UBIFS formats it at mount)"
            ),
            Step::AddMtdPartition { master, name, offset, length } => write!(
                f,
                "add MTD partition {name} to {master} from byte {offset}, {length} bytes (BLKPG_ADD_PARTITION)"
            ),
            Step::Verity(v) => {
                let trust = match &v.trust {
                    Trust::RootHash { key, .. } => format!("root hash from {key}"),
                    Trust::Signed { key_file, pinned, accept } => {
                        let mut t = format!("root hash signed by the key {key_file}");
                        if pinned.is_some() {
                            t.push_str(" and equal to the oinit.roothash setting");
                        }
                        if let Some(c) = &accept.compatible {
                            t.push_str(&format!(", for {c}"));
                        }
                        if accept.floor > 0 {
                            t.push_str(&format!(", security version {} or later", accept.floor));
                        }
                        t
                    }
                };
                let check =
                    if v.check_all { "every block read once now (new image)" } else { "blocks checked as read" };
                let tree = v.hash.as_ref().map_or(String::new(), |h| format!(" (hash tree on {h})"));
                write!(
                    f,
                    "verify {}{tree} with dm-verity as /dev/mapper/{}: {trust}; {check}; on corruption: {}",
                    v.data, v.name, v.on_corruption
                )
            }
            Step::Mount(m) => write!(f, "mount {} on {} type {} ({})", m.source, m.target, m.fstype, m.options),
            Step::PrepareUpper { upper, work } => {
                write!(f, "prepare upper {upper} (0755) and work {work} (0700, emptied)")
            }
            Step::SwitchRoot { root, inits, args, env } => {
                write!(f, "switch root to {root}, exec the first of {}", inits.join(" "))?;
                if !args.is_empty() {
                    write!(f, " with arguments {}", args.join(" "))?;
                }
                for (k, v) in env {
                    write!(f, ", {k}={v} in its environment")?;
                }
                Ok(())
            }
            Step::SaveState { state, why, critical } => {
                let slot = |s: SlotId| {
                    let v = state.slot(s);
                    let status = match (v.good, v.bad, v.last) {
                        (_, true, _) => "bad".to_string(),
                        (true, false, _) => "good".to_string(),
                        (false, false, crate::ab::state::Outcome::Never) => "not booted yet".to_string(),
                        (false, false, _) => format!("trial, {} tries left", v.tries),
                    };
                    format!("{} {status}, image {:08x}", s.name(), v.image)
                };
                write!(
                    f,
                    "write the state record ({why}): boot {}, active {}; {}; {}",
                    state.boots,
                    state.active.name(),
                    slot(SlotId::A),
                    slot(SlotId::B)
                )?;
                if state.reset_requested {
                    write!(f, "; factory reset pending (attempt {})", state.reset_attempts)?;
                }
                if *critical {
                    write!(f, " [must succeed: this boot spends a try]")?;
                }
                Ok(())
            }
            Step::FactoryReset { why, recreate: true, .. } => write!(
                f,
                "FACTORY RESET ({why}): carry the state and keep-list in UBI volume {}, remove the data volume and \
                 make it again (if the carry cannot be made: move the uppers aside)",
                CARRY_VOLUME
            ),
            Step::FactoryReset { why, base, tag, .. } => write!(
                f,
                "FACTORY RESET ({why}): move every upper under {base} to .trash/{tag}-SLOT, carry the keep-list into fresh ones"
            ),
            Step::NewUpper(n) => {
                let policy = match n.carry {
                    Carry::Reconcile if n.old_image.is_none() => "keeplist (oinit.carry=reconcile, but the old image is gone)",
                    Carry::Reconcile => "reconcile",
                    Carry::KeepList => "keeplist",
                    Carry::Keep => "keep",
                };
                if n.recorded == 0 && n.from_slot == n.slot {
                    return write!(
                        f,
                        "first image {:08x} in slot {}: a fresh upper (nothing to carry), made in {}/.staging-{} and renamed into place",
                        n.id,
                        n.slot.name(),
                        n.base,
                        n.slot.name()
                    );
                }
                write!(
                    f,
                    "new image {:08x} in slot {} (its upper was for {:08x}): its upper moved aside, a new one built in {}/.staging-{} from slot {}'s by {policy}",
                    n.id,
                    n.slot.name(),
                    n.recorded,
                    n.base,
                    n.slot.name(),
                    n.from_slot.name()
                )?;
                if let (Carry::Reconcile, Some(old)) = (n.carry, &n.old_image) {
                    let verified = n.old_verity.as_ref().map_or(String::new(), |v| format!(" through dm-verity as {}", v.name));
                    write!(f, " (old image {old}{verified} mounted at {})", paths::OLD_LOWER)?;
                }
                write!(f, ", renamed into place")
            }
            Step::CarryKeepList { base, from_slot, slot } => write!(
                f,
                "carry the keep-list from {base}/{}/upper into {base}/{}/upper (switch to an existing slot)",
                from_slot.name(),
                slot.name()
            ),
            Step::DeleteTrash { base } => write!(f, "delete {base}/.trash in the background"),
            Step::Kexec { slot, lower, kernel, initrd, dtb, .. } => {
                write!(f, "unless {lower}{kernel} is the running kernel (or absent): load it with {lower}{initrd}")?;
                if let Some(d) = dtb {
                    write!(f, " and {lower}{d}")?;
                }
                write!(f, ", sync and unmount the data, and kexec into it: stage two boots slot {} uncounted", slot.name())
            }
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Device(d) => f.write_str(d),
            Source::LoopFile(file) => write!(f, "{file} (read-only loop device)"),
            Source::Virtual(v) => f.write_str(v),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.devices {
            writeln!(f, "device {d}")?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "step {}: {s}", i + 1)?;
        }
        if let Some(v) = &self.volatile {
            writeln!(f, "WARNING: VOLATILE ROOT: {v}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        for a in &self.alternatives {
            writeln!(f, "== if {}:", a.why)?;
            for line in a.plan.to_string().lines() {
                writeln!(f, "   {line}")?;
            }
        }
        Ok(())
    }
}
