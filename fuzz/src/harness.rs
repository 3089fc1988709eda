//! One function per parser fed by untrusted bytes. The fuzz targets call them; so does the stable
//! regression test (`tests/it/fuzz_regressions.rs`), which replays the committed corpus and every
//! crash input found. Each function panics only when the code under test misbehaves: a parser
//! must return an error for bad input, never panic, loop or allocate without bound.

use overlay_init::ab::slots::{self, Policy};
use overlay_init::ab::state::{self, SlotId, State};
use overlay_init::block::device::{self, BlockDev};
use overlay_init::block::probe::{self, FsInfo, FsKind};
use overlay_init::block::spec::DevSpec;
use overlay_init::boot::report::Report;
use overlay_init::boot::upper;
use overlay_init::config::settings::Settings;
use overlay_init::kmod::ModIndex;
use overlay_init::plan::{self, DataState, Found};
use overlay_init::verity::hashtree as verity;
use overlay_init::verity::signature;

/// The parts of `data` split at NUL bytes, each decoded as the init decodes text.
fn parts(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> =
        data.splitn(n, |&b| b == 0).map(|p| overlay_init::config::cmdline::decode(p, "fuzz").0).collect();
    out.resize(n, String::new());
    out
}

/// The board config and the command line, through settings and the plan for a board whose
/// devices are all there.
pub fn settings(data: &[u8]) {
    let p = parts(data, 2);
    let (s, loaded) = Settings::load(&p[0], &p[1]);
    if !loaded.errors.is_empty() {
        return;
    }
    // mtdparts= tables placed in a 32 MiB master with 64 KiB erase blocks, and in degenerate ones.
    for (size, erase) in [(32 << 20, 64 << 10), (0, 0), (u64::MAX, 1)] {
        for t in &s.mtdparts {
            let _ = overlay_init::flash::mtdparts::place(t, size, erase);
        }
    }
    let dev = |name: &str, kind| BlockDev {
        name: name.into(),
        size: 64 << 20,
        fs: Some(FsInfo { kind, uuid: None, label: None, size: 1 << 20 }),
        ..Default::default()
    };
    let found = Found {
        root: Some(dev("vda1", FsKind::Squashfs)),
        data: DataState::Found { dev: dev("vda2", FsKind::Ext4), blank: false, offset: 0 },
        slots: [Some(dev("vda1", FsKind::Squashfs)), Some(dev("vda3", FsKind::Squashfs))],
        hash: [Some(dev("vda4", FsKind::Squashfs)), None],
    };
    if let Ok(plan) = plan::decide(&s, &found) {
        let _ = plan.to_string();
    }
}

/// `root=` / `oinit.data=` values; a parsed spec prints as text that parses to the same spec.
pub fn devspec(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(spec) = DevSpec::parse(&text) {
        let again = DevSpec::parse(&spec.to_string()).expect("a printed spec parses again");
        assert_eq!(again, spec);
    }
}

pub fn uevent(data: &[u8]) {
    let _ = device::parse_uevent(&String::from_utf8_lossy(data));
}

/// Superblocks and partition tables as read from a device's first bytes.
pub fn superblocks(data: &[u8]) {
    if let Some(fs) = probe::probe_fs(data) {
        let _ = fs.label.as_deref().map(str::len);
    }
    let _ = probe::image_id(data);
    let _ = probe::is_blank(data);
    for sector in [512, 4096] {
        let _ = probe::gpt_header(data, sector);
    }
    let _ = probe::gpt_entry_uuid(data);
    for partn in [0, 1, 4, u32::MAX] {
        let _ = probe::mbr_partuuid(data, partn);
    }
}

/// modules.dep, modules.softdep, modules.alias, modules.builtin and the requested names.
pub fn modules(data: &[u8]) {
    let p = parts(data, 5);
    let ix = ModIndex::parse(&p[0], &p[1], &p[2], &p[3]);
    let requests: Vec<String> = p[4].split(',').map(String::from).collect();
    if let Ok(steps) = ix.plan(&requests) {
        let files = steps.into_iter().flat_map(|s| s.chains).flatten().collect();
        let _ = ix.subset(&files);
    }
}

/// The state record: a decoded record encodes to the same record, and every slot operation on it
/// (driven by the bytes after the record) keeps it encodable and decodable.
pub fn state(data: &[u8]) {
    let (record, ops) = data.split_at(data.len().min(state::BLOCK));
    // A boot does a handful of operations; 32 cover every sequence that matters (each costs
    // two bitwise CRCs of the record).
    let ops = &ops[..ops.len().min(32)];
    let _ = state::pick([record, ops]);
    let Some(mut st) = State::decode(record) else { return };
    assert_eq!(State::decode(&st.encode()).as_ref(), Some(&st));
    let policy = Policy { tries: 3, late_fallback: false, one_slot: false };
    for &op in ops {
        let slot = if op & 1 == 0 { SlotId::A } else { SlotId::B };
        match op >> 1 & 7 {
            0 => {
                let _ = slots::choose(&mut st, policy);
            }
            1 => slots::mark_good(&mut st, slot, policy),
            2 => slots::mark_bad(&mut st, slot),
            3 => slots::activate(&mut st, slot, policy, (op & 16 != 0).then_some([op; 32])),
            4 => {
                let _ = slots::lower_failed(&mut st, slot, op & 16 != 0);
            }
            5 => {
                let _ = slots::uncounted(&st);
            }
            _ => st.generation = st.generation.wrapping_add(1),
        }
        let _ = st.to_string();
        assert_eq!(State::decode(&st.encode()).as_ref(), Some(&st), "an operation made the record unencodable");
    }
}

pub fn keep_list(data: &[u8]) {
    let (paths, _) = upper::parse_keep(&String::from_utf8_lossy(data));
    assert!(paths.iter().all(|p| p.starts_with('/') && !p.split('/').any(|c| c == "..")));
}

/// The boot report's JSON writer: any text in any field must give valid JSON.
pub fn report_json(data: &[u8]) {
    let p = parts(data, 4);
    let mut r = Report::default();
    r.devices.push(p[0].clone());
    r.warnings.extend([p[1].clone(), p[2].clone()]);
    r.init = p[3].clone();
    r.volatile = Some(p[2].clone());
    r.slot = Some((p[0].clone(), p[3].clone()));
    let json = r.to_json();
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&json) {
        panic!("invalid JSON ({e}): {json}");
    }
}

/// The newc reader, and the gen_init_cpio list parser with a write-read round trip (files are
/// left out: their data would be read from the host).
pub fn newc(data: &[u8]) {
    let _ = initramfs::read_newc(data);
    let Ok(entries) = initramfs::parse_list(&String::from_utf8_lossy(data)) else { return };
    let entries: Vec<_> = entries.into_iter().filter(|e| !matches!(e, initramfs::Entry::File { .. })).collect();
    let mut out = Vec::new();
    initramfs::write_newc(&entries, &mut out).expect("writing to memory");
    let back = initramfs::read_newc(&out).expect("our own archive reads back");
    assert_eq!(back.len(), entries.len(), "an entry was lost in the archive");
}

pub fn write_log(data: &[u8]) {
    if let Ok(entries) = crate::writelog::parse(data) {
        let _ = crate::writelog::flushes(&entries);
    }
}

/// A harness function: takes the fuzzer's bytes, panics on a bug.
pub type Target = fn(&[u8]);

/// Every target by name, for the regression test and the smoke run.
/// A verity superblock read from disk after a filesystem of the size the first 8 bytes give: the
/// parser, the layout and the table line never panic, and a layout always ends past its data.
/// The rest, as data blocks, builds a tree whose stored form is whole blocks.
pub fn verity(data: &[u8]) {
    let (head, rest) = data.split_at(data.len().min(8));
    let mut size = [0u8; 8];
    size[..head.len()].copy_from_slice(head);
    if let Ok(sb) = verity::parse_superblock(rest) {
        let separate = head.first().is_some_and(|b| b & 1 == 1);
        if let Ok(l) = verity::layout(u64::from_le_bytes(size), &sb, separate) {
            assert!(l.end > l.hash_offset && l.tree_block * verity::BLOCK > l.hash_offset);
            let fec = Some(verity::fec(&l, head.first().map_or(2, |b| 2 + b % 23)));
            let _ = verity::table((254, 1), (254, 2), &l, &sb, &[0; 32], verity::OnCorruption::Restart, fec);
        }
    }
    let blocks = (rest.len() as u64).div_ceil(verity::BLOCK).min(300);
    let mut at = 0;
    let tree = verity::build_tree(head, blocks, |b| {
        b.fill(0);
        let part = rest.get(at..).unwrap_or(&[]);
        let n = part.len().min(b.len());
        b[..n].copy_from_slice(&part[..n]);
        at += b.len();
        Ok(())
    });
    if let Ok(t) = tree {
        assert_eq!(t.on_disk().len() as u64, verity::tree_blocks(blocks) * verity::BLOCK);
    }
}

/// The verity metadata the boot reads after an image (`verity::meta`): the fuzz input is the
/// device, image and tree on it, the last byte says whether the tree is on a separate device and
/// whether a signature is required. Refused or read, never a panic, and a layout read always
/// fits the device.
pub fn verity_meta(data: &[u8]) {
    let flags = data.last().copied().unwrap_or(0);
    let head = &data[..data.len().min(probe::PROBE_LEN)];
    let size = data.len() as u64;
    let read = |at: u64, len: usize| {
        let at = usize::try_from(at).ok()?;
        data.get(at..at.checked_add(len)?).map(<[u8]>::to_vec)
    };
    if let Ok(m) = overlay_init::verity::meta::read(head, "fuzz", size, flags & 1 == 1, flags & 2 == 2, read) {
        assert!(m.layout.end <= size, "a layout past the device's end was accepted");
    }
}

/// Reconciliation's tree walk over crafted trees: the input is a list of entries (which tree,
/// kind, name bytes up to a NUL or the end), made in a scratch directory; plan and build run
/// over them and never panic, every name, UTF-8 or not, is planned, and what is built is read
/// back from the trees given (never from outside them).
pub fn reconcile_walk(data: &[u8]) {
    use overlay_init::reconcile::rules::Rules;
    use overlay_init::reconcile::walk::{self, Trees};
    use std::os::unix::ffi::OsStrExt;
    let base = std::env::temp_dir().join(format!("oi-fuzz-walk-{}", std::process::id()));
    let _ = overlay_init::fs::careful::open_dir_nofollow(&base).map(overlay_init::fs::careful::remove_contents);
    let trees = ["old", "new", "upper"].map(|t| base.join(t));
    for t in &trees {
        std::fs::create_dir_all(t).unwrap();
    }
    let mut made = 0;
    for entry in data.split(|&b| b == 0).take(64) {
        let [op, name @ ..] = entry else { continue };
        let name: Vec<u8> = name.iter().copied().filter(|&b| b != b'/').take(40).collect();
        if name.is_empty() || name == b"." || name == b".." {
            continue;
        }
        // The entry goes into the tree op picks, under the directory made last there, if any.
        let tree = &trees[usize::from(op % 3)];
        let parent = if op & 0x40 != 0 { tree.join("d") } else { tree.clone() };
        let _ = std::fs::create_dir_all(&parent);
        let path = parent.join(std::ffi::OsStr::from_bytes(&name));
        let _ = match (op >> 2) % 4 {
            0 => std::fs::write(&path, &name),
            1 => std::fs::create_dir_all(&path),
            2 => std::os::unix::fs::symlink("/etc/passwd", &path),
            _ => std::fs::write(&path, b"changed"),
        };
        made += 1;
    }
    let t = Trees { old: &trees[0], new: &trees[1], upper: &trees[2] };
    if let Ok(o) = walk::plan(&t, &Rules::default()) {
        assert!(o.entries.len() + o.skipped.len() <= made + 1, "more entries planned than made");
        let _ = walk::reconcile(&t, &Rules::default(), &base.join("to"), &base.join("conflicts"), Some(4));
        for e in &o.entries {
            assert!(trees[2].join(&e.rel).symlink_metadata().is_ok(), "{} is not in the upper", e.path);
        }
    }
    if let Ok(fd) = overlay_init::fs::careful::open_dir_nofollow(&base) {
        let _ = overlay_init::fs::careful::remove_contents(fd);
    }
}

/// The signature block after a hash tree and the board's key file: parsed or refused, never a
/// panic; a block that parses verifies (or not) against a key from the same bytes.
pub fn signature(data: &[u8]) {
    let key = signature::parse_public_key(data);
    let k = key.unwrap_or([0x5a; 32]);
    if let Ok(block) = signature::parse_block(data) {
        let _ = signature::verify(&k, &block);
        // Whatever a block claims, acceptance decides without panicking, and a manifest's
        // message names exactly what was parsed.
        if let Some(m) = &block.manifest {
            assert!(m.message(&block.root).contains(&format!("compatible={}\n", m.compatible)));
        }
        let sb = overlay_init::verity::hashtree::Superblock { data_blocks: 10, salt: Vec::new() };
        let a =
            overlay_init::verity::manifest::Acceptance { compatible: Some("x".into()), unversioned: false, floor: 3 };
        let _ = overlay_init::verity::manifest::accept(block.manifest.as_ref(), &sb, &a);
    }
    // Downgrade tokens are read from files an operator hands to install.
    if let Ok(t) = overlay_init::verity::manifest::parse_token(&String::from_utf8_lossy(data)) {
        let _ = overlay_init::verity::manifest::verify_token(&k, &t, Some("x"));
    }
}

pub const TARGETS: [(&str, Target); 14] = [
    ("settings", settings),
    ("devspec", devspec),
    ("uevent", uevent),
    ("superblocks", superblocks),
    ("modules", modules),
    ("state", state),
    ("keep_list", keep_list),
    ("report_json", report_json),
    ("newc", newc),
    ("write_log", write_log),
    ("verity", verity),
    ("signature", signature),
    ("verity_meta", verity_meta),
    ("reconcile_walk", reconcile_walk),
];
