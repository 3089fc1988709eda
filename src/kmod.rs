//! Kernel module resolution from depmod's files, like modprobe but without it: dependencies from
//! `modules.dep`, soft dependencies from `modules.softdep`, names from `modules.alias`, and
//! built-in modules from `modules.builtin`. Pure: the loader in `boot::modules` acts on the plan.

use crate::rt::prelude::*;
use crate::util::sort::sort_by;
use alloc::collections::BTreeSet;

/// Module names compare with `-` and `_` as the same character, as the kernel does.
pub fn norm(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a `.ko` path (`kernel/arch/x86/crypto/crc32c-intel.ko` -> `crc32c_intel`).
/// A `module.param[=value]` word as modprobe reads it from /proc/cmdline: the module's name
/// (normalized) and `param=value` for `finit_module`. None for a word that is not one.
pub fn module_param(key: &str, value: Option<&str>) -> Option<(String, String)> {
    let (module, param) = key.split_once('.')?;
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !word(module) || !word(param) {
        return None;
    }
    let param = match value {
        // The kernel's parameter parser takes a value with spaces in double quotes.
        Some(v) if v.contains(' ') => format!("{param}=\"{v}\""),
        Some(v) => format!("{param}={v}"),
        None => param.to_string(),
    };
    Some((norm(module), param))
}

/// The parameter string `finit_module` gets for `module` (space-separated, in the order given).
pub fn params_for(module: &str, all: &[(String, String)]) -> String {
    let m = norm(module);
    all.iter().filter(|(name, _)| *name == m).map(|(_, p)| p.as_str()).collect::<Vec<_>>().join(" ")
}

pub fn name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    norm(file.split(".ko").next().unwrap_or(file))
}

/// The index as sorted lists searched by halving: the boot builds it once and asks it a few
/// dozen times, which a hash map (its hashing, random keys and per-type table code, 8 KB of
/// the init) does not pay for.
#[derive(Debug, Default)]
pub struct ModIndex {
    /// (module name, line, its path, its dependencies' paths in modules.dep order), sorted by
    /// name then line: of a name listed twice, the later line counts, as before.
    deps: Vec<(String, usize, String, Vec<String>)>,
    /// (module, place in the file, pre (or post), soft dependency), sorted by module then place,
    /// so each module's soft dependencies keep the file's order.
    soft: Vec<(String, usize, bool, String)>,
    /// (alias, module) in file order: the order modprobe tries alternatives in.
    aliases: Vec<(String, String)>,
    /// Built-in module names, sorted.
    builtin: Vec<String>,
    /// The running CPU's modalias (`/sys/devices/system/cpu/modalias`); None when unknown, as
    /// at build time, where every alternative is packed.
    cpu: Option<String>,
}

/// One thing to load: the request as named, and alternative chains of `.ko` paths (dependencies
/// first). The request is met when any chain loads; an alias like `crc32c` has several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadStep {
    pub request: String,
    pub chains: Vec<Vec<String>>,
    /// Soft dependencies are wanted, not required: a missing one is a warning.
    pub required: bool,
    /// The requested module (index into the requests) this step serves: its soft dependencies,
    /// itself and its post-dependencies form one group, loaded in order; groups are independent.
    pub group: usize,
}

impl ModIndex {
    pub fn parse(dep: &str, softdep: &str, alias: &str, builtin: &str) -> ModIndex {
        let mut ix = ModIndex::default();
        for (n, line) in dep.lines().enumerate() {
            let Some((path, rest)) = line.split_once(':') else {
                continue;
            };
            let list = rest.split_whitespace().map(String::from).collect();
            ix.deps.push((name_of(path), n, path.to_string(), list));
        }
        sort_by(&mut ix.deps, |a, b| (&a.0, a.1) < (&b.0, b.1));
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next().map(norm) else {
                continue;
            };
            let mut into_pre = true;
            for w in words {
                match w {
                    "pre:" => into_pre = true,
                    "post:" => into_pre = false,
                    _ => ix.soft.push((module.clone(), ix.soft.len(), into_pre, w.to_string())),
                }
            }
        }
        for line in alias.lines() {
            let mut w = line.split_whitespace();
            if let (Some("alias"), Some(a), Some(m)) = (w.next(), w.next(), w.next()) {
                ix.aliases.push((norm(a), norm(m)));
            }
        }
        sort_by(&mut ix.soft, |a, b| (&a.0, a.1) < (&b.0, b.1));
        ix.builtin = builtin.lines().map(name_of).collect();
        crate::util::sort::sort(&mut ix.builtin);
        ix
    }

    /// The index for a CPU whose modalias is `modalias`: of an alias's alternatives, those this
    /// CPU cannot run are left out (see `runnable`).
    pub fn for_cpu(self, modalias: &str) -> ModIndex {
        ModIndex { cpu: Some(norm(modalias.trim())), ..self }
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.binary_search(&norm(name)).is_ok()
    }

    /// The index in `deps` of module `name`'s entry (the later line of a name listed twice).
    fn dep_index(&self, name: &str) -> Option<usize> {
        let end = self.deps.partition_point(|d| d.0.as_str() <= name);
        (end > 0 && self.deps[end - 1].0 == name).then(|| end - 1)
    }

    /// Module `name`'s soft dependencies before it (`pre`) or after it, in the file's order.
    fn soft_of(&self, name: &str, pre: bool) -> impl Iterator<Item = &String> {
        let start = self.soft.partition_point(|e| e.0.as_str() < name);
        let end = self.soft.partition_point(|e| e.0.as_str() <= name);
        self.soft[start..end].iter().filter(move |e| e.2 == pre).map(|e| &e.3)
    }

    /// Module names that `request` stands for: itself if it is a module, else its aliases.
    fn candidates(&self, request: &str) -> Vec<String> {
        let n = norm(request);
        if self.dep_index(&n).is_some() || self.builtin.binary_search(&n).is_ok() {
            return vec![n];
        }
        self.aliases.iter().filter(|(a, _)| *a == n).map(|(_, m)| m.clone()).collect()
    }

    /// Of several alternatives, those the CPU can run. A module with `cpu:` aliases
    /// (crc32c_intel needs SSE4.2, crc32_arm_ce the ARMv8 CRC32 instructions) is left out when
    /// none matches the CPU's modalias, as udev would never load it: its init fails with ENODEV
    /// after the kernel has read and relocated it (38 ms of a TCG boot for crc32c_intel). All
    /// are kept when none would be left, or when the CPU is unknown.
    fn runnable(&self, names: Vec<String>) -> Vec<String> {
        let Some(cpu) = &self.cpu else {
            return names;
        };
        let fits = |m: &String| {
            let mut needs = self.cpu_aliases(m).peekable();
            needs.peek().is_none() || needs.any(|a| alias_matches(a, cpu))
        };
        let (kept, left_out): (Vec<String>, Vec<String>) = names.iter().cloned().partition(fits);
        if kept.is_empty() {
            return names;
        }
        for m in left_out {
            let needs: Vec<&str> = self.cpu_aliases(&m).collect();
            log::info!(
                "module {m}: not tried, this CPU's modalias (/sys/devices/system/cpu/modalias) matches none of {}",
                needs.join(", ")
            );
        }
        kept
    }

    /// Module `m`'s `cpu:` aliases: the CPU features it needs, any one of them enough.
    fn cpu_aliases<'a>(&'a self, m: &'a str) -> impl Iterator<Item = &'a str> {
        self.aliases.iter().filter(move |(a, n)| n == m && a.starts_with("cpu:")).map(|(a, _)| a.as_str())
    }

    /// The ordered steps that load `requests`. Built-in modules need nothing; soft dependencies
    /// come before (pre) or after (post) their module, as modprobe does. Iterative with an
    /// explicit stack: a long (or looping) softdep chain in a crafted modules.softdep can neither
    /// overflow PID 1's stack nor loop, since each module is planned once.
    pub fn plan(&self, requests: &[String]) -> Result<Vec<LoadStep>, String> {
        enum Work {
            Visit(String, bool, usize),
            Emit(LoadStep),
            Post(Vec<String>, usize),
        }
        let mut steps = Vec::new();
        // Each module is planned once: modules.dep's by their place in the index, other names
        // (aliases, built-ins, unknown ones) in a short list.
        let mut seen_dep = vec![false; self.deps.len()];
        let mut seen_other: Vec<String> = Vec::new();
        // `name?` asks for a module only if this kernel has it (a watchdog driver one kernel
        // series builds and another does not): missing, it is a warning, like a soft dependency.
        let visit = |(g, r): (usize, &String)| match r.strip_suffix('?') {
            Some(optional) => Work::Visit(optional.to_string(), false, g),
            None => Work::Visit(r.clone(), true, g),
        };
        let mut stack: Vec<Work> = requests.iter().enumerate().rev().map(visit).collect();
        while let Some(work) = stack.pop() {
            let (request, required, group) = match work {
                Work::Emit(step) => {
                    steps.push(step);
                    continue;
                }
                Work::Post(names, g) => {
                    let posts = names.iter().flat_map(|n| self.soft_of(n, false));
                    let posts: Vec<&String> = posts.collect();
                    stack.extend(posts.into_iter().rev().map(|p| Work::Visit(p.clone(), false, g)));
                    continue;
                }
                Work::Visit(request, required, g) => (request, required, g),
            };
            let n = norm(&request);
            let first = match self.dep_index(&n) {
                Some(i) => !core::mem::replace(&mut seen_dep[i], true),
                None if seen_other.contains(&n) => false,
                None => {
                    seen_other.push(n);
                    true
                }
            };
            if !first {
                continue;
            }
            let names = self.runnable(self.candidates(&request));
            if names.is_empty() {
                if required {
                    return Err(format!(
                        "module '{request}' is neither in modules.dep, modules.builtin nor modules.alias"
                    ));
                }
                log::warn!("module '{request}' (optional or a soft dependency) is not in this kernel's modules; continuing without it");
                continue;
            }
            if names.iter().any(|n| self.builtin.binary_search(n).is_ok()) {
                continue; // built in: nothing to load, no soft dependencies needed either
            }
            let chains = names
                .iter()
                .filter_map(|n| self.dep_index(n))
                .map(|i| {
                    let (_, _, path, deps) = &self.deps[i];
                    // modules.dep lists the deepest dependency last; load from the end.
                    let mut chain: Vec<String> = deps.iter().rev().cloned().collect();
                    chain.push(path.clone());
                    chain
                })
                .collect();
            let pres: Vec<&String> = names.iter().flat_map(|n| self.soft_of(n, true)).collect();
            // Popped in reverse: pre softdeps first, then this module, then its post softdeps.
            stack.push(Work::Post(names, group));
            stack.push(Work::Emit(LoadStep { request, chains, required, group }));
            stack.extend(pres.into_iter().rev().map(|p| Work::Visit(p.clone(), false, group)));
        }
        Ok(steps)
    }

    /// The depmod files restricted to the modules in `paths`, for a trimmed initramfs.
    /// Returns (modules.dep, modules.softdep, modules.alias).
    pub fn subset(&self, paths: &BTreeSet<String>) -> (String, String, String) {
        let keep: BTreeSet<String> = paths.iter().map(|p| name_of(p)).collect();
        let mut dep: Vec<String> = Vec::new();
        for (i, (name, _, path, deps)) in self.deps.iter().enumerate() {
            if paths.contains(path) && self.dep_index(name) == Some(i) {
                dep.push(format!("{path}: {}", deps.join(" ")).trim_end().to_string());
            }
        }
        let mut soft = Vec::new();
        let mut modules: Vec<&String> = self.soft.iter().map(|e| &e.0).filter(|m| keep.contains(*m)).collect();
        modules.dedup();
        for m in modules {
            for (pre, word) in [(true, "pre"), (false, "post")] {
                let list: Vec<&str> = self.soft_of(m, pre).map(String::as_str).collect();
                if !list.is_empty() {
                    soft.push(format!("softdep {m} {word}: {}", list.join(" ")));
                }
            }
        }
        let alias: Vec<String> =
            self.aliases.iter().filter(|(_, m)| keep.contains(m)).map(|(a, m)| format!("alias {a} {m}")).collect();
        for v in [&mut dep, &mut soft] {
            crate::util::sort::sort(v);
        }
        let join = |v: Vec<String>| v.into_iter().map(|l| l + "\n").collect::<String>();
        (join(dep), join(soft), join(alias))
    }

    /// What an initramfs carries for `requests`: every `.ko` any chain names (a boot may need
    /// any alternative), and the depmod files trimmed to them.
    pub fn pack(&self, requests: &[String]) -> Result<Packed, String> {
        let files: BTreeSet<String> = self.plan(requests)?.into_iter().flat_map(|s| s.chains).flatten().collect();
        let (dep, soft, alias) = self.subset(&files);
        let mut files: Vec<String> = files.into_iter().collect();
        crate::util::sort::sort(&mut files);
        Ok(Packed { files, dep, soft, alias })
    }
}

/// A modalias pattern as the kernel writes them (`*` any run, `?` any one character) against
/// a device's or CPU's modalias. The `[...]` classes of some USB aliases are not needed here:
/// only `cpu:` aliases are matched, and file2alias writes those with `*` alone.
fn alias_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was and the text position it is matched up to, to retry one further.
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        match p.get(i) {
            Some(b'*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(&c) if c == b'?' || c == t[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    star = Some((si, sj + 1));
                    i = si + 1;
                    j = sj + 1;
                }
                None => return false,
            },
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// The modules of an initramfs: `.ko` paths relative to `lib/modules/VERSION`, and the trimmed
/// `modules.dep`, `modules.softdep` and `modules.alias`.
pub struct Packed {
    pub files: Vec<String>,
    pub dep: String,
    pub soft: String,
    pub alias: String,
}

/// The folders above a relative path, outermost first (`a/b/c.ko` -> `a`, `a/b`).
pub fn parent_dirs(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (1..parts.len()).map(|i| parts[..i].join("/")).collect()
}

/// The index files an initramfs holds beside the modules, in the order they are listed.
pub const INDEX_FILES: [&str; 4] = ["modules.dep", "modules.softdep", "modules.alias", "modules.builtin"];

impl Packed {
    /// The kernel's gen_init_cpio lines under `/lib/modules/VERSION`: the folders (parents
    /// first), each `.ko` from `moddir`, and the index files from `index_dir`.
    pub fn cpio_lines(&self, version: &str, moddir: &str, index_dir: &str) -> String {
        let m = format!("/lib/modules/{version}");
        let mut dirs: Vec<String> =
            self.files.iter().flat_map(|f| parent_dirs(f)).collect::<BTreeSet<_>>().into_iter().collect();
        crate::util::sort::sort_by(&mut dirs, |a, b| (a.matches('/').count(), a) < (b.matches('/').count(), b));
        let mut out = format!("dir {m} 0755 0 0\n");
        for d in dirs {
            out.push_str(&format!("dir {m}/{d} 0755 0 0\n"));
        }
        for f in &self.files {
            out.push_str(&format!("file {m}/{f} {moddir}/{f} 0644 0 0\n"));
        }
        for name in INDEX_FILES {
            out.push_str(&format!("file {m}/{name} {index_dir}/{name} 0644 0 0\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_the_modprobe_way() {
        let mut all = Vec::new();
        for (k, v) in [
            ("block2mtd.block2mtd", Some("/dev/vdb,128KiB")),
            ("loop.max_part", Some("7")),
            ("ubi-core.fm_autoconvert", None),
            ("mod.label", Some("two words")),
            ("systemd.unit", Some("rescue.target")),
        ] {
            all.extend(module_param(k, v));
        }
        assert_eq!(module_param("a.b.c", Some("x")), None, "one dot: module.param");
        assert_eq!(module_param(".x", Some("1")), None);
        assert_eq!(params_for("block2mtd", &all), "block2mtd=/dev/vdb,128KiB");
        assert_eq!(params_for("ubi_core", &all), "fm_autoconvert");
        assert_eq!(params_for("mod", &all), "label=\"two words\"");
        assert_eq!(params_for("ext4", &all), "");
    }

    const DEP: &str = "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/fs/squashfs/squashfs.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
";
    const SOFT: &str = "# Soft dependencies\nsoftdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c\n";
    const ALIAS: &str = "alias crypto-crc32c crc32c_intel\nalias crc32c crc32c_intel\nalias crypto-crc32c crc32c_generic\nalias fs-ext4 ext4\n";
    const BUILTIN: &str = "kernel/fs/overlayfs/overlay.ko\n";

    fn ix() -> ModIndex {
        ModIndex::parse(DEP, SOFT, ALIAS, BUILTIN)
    }

    #[test]
    fn ext4_pulls_its_softdep_first_with_alternatives() {
        let plan = ix().plan(&["ext4".into()]).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].request, "crypto-crc32c");
        assert!(!plan[0].required);
        assert_eq!(
            plan[0].chains,
            vec![
                vec!["kernel/arch/x86/crypto/crc32c-intel.ko".to_string()],
                vec!["kernel/crypto/crc32c_generic.ko".to_string()]
            ]
        );
        assert_eq!(plan[1].request, "ext4");
        assert_eq!(
            plan[1].chains[0],
            ["kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko", "kernel/lib/crc16.ko", "kernel/fs/ext4/ext4.ko"]
        );
    }

    #[test]
    fn builtin_and_duplicates_and_dashes() {
        let plan = ix().plan(&["overlay".into(), "virtio-blk".into(), "virtio_blk".into()]).unwrap();
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert_eq!(plan[0].chains[0].last().unwrap(), "kernel/drivers/block/virtio_blk.ko");
        assert!(ix().is_builtin("overlay"));
    }

    #[test]
    fn unknown_module_is_an_error_naming_it() {
        let err = ix().plan(&["zfs".into()]).unwrap_err();
        assert!(err.contains("'zfs'"));
    }

    #[test]
    fn optional_modules_load_when_present_and_are_skipped_when_not() {
        let plan = ix().plan(&["zfs?".into(), "squashfs?".into()]).unwrap();
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert_eq!(plan[0].request, "squashfs");
        assert!(!plan[0].required);
        assert_eq!(plan[0].chains[0], ["kernel/fs/squashfs/squashfs.ko"]);
    }

    #[test]
    fn packed_lines_hold_every_alternative_and_the_trimmed_index() {
        let p = ix().pack(&["ext4".into()]).unwrap();
        assert!(p.files.contains(&"kernel/crypto/crc32c_generic.ko".to_string()), "{:?}", p.files);
        assert!(!p.files.iter().any(|f| f.contains("virtio")), "{:?}", p.files);
        assert!(p.dep.contains("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko") && !p.dep.contains("virtio"));
        let lines = p.cpio_lines("6.1.0", "/m", "/i");
        assert!(lines.starts_with("dir /lib/modules/6.1.0 0755 0 0\ndir /lib/modules/6.1.0/kernel 0755 0 0\n"));
        assert!(lines.contains("file /lib/modules/6.1.0/kernel/fs/ext4/ext4.ko /m/kernel/fs/ext4/ext4.ko 0644 0 0\n"));
        assert!(lines.ends_with("file /lib/modules/6.1.0/modules.builtin /i/modules.builtin 0644 0 0\n"));
    }

    /// The `cpu:` alias of Debian 6.1's crc32c-intel.ko, and CPU modaliases as the guests' kernels
    /// wrote them: QEMU 10's TCG x86_64 CPU (no SSE4.2), the same with SSE4.2 (feature 0x94)
    /// added, and QEMU's Cortex-A15 under Debian 6.1 armmp (no CRC32 instructions).
    const CPU_ALIAS: &str = "alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel\n";
    const TCG_CPU: &str = "cpu:type:x86,ven0002fam000Fmod006B:feature:,0000,0002,0003,0004,0005,0006,0007,0008,\
0009,000B,000C,000D,000E,000F,0010,0011,0013,0017,0018,0019,001A,0020,0022,0023,0024,0025,0026,0027,0028,0029,002B,002C,\
002D,002E,002F,0030,0031,0034,0037,0038,003D,0064,006E,0070,0072,0074,0075,0079,007A,0080,008D,009F,00C0,00C2,00C8,00ED,\
00F3,010F,0165,016C\n";
    const SSE42_CPU: &str = "cpu:type:x86,ven0002fam000Fmod006B:feature:,0000,0002,0080,008D,0094,009F\n";
    const A15_CPU: &str =
        "cpu:type:v7l:feature:,0001,0002,0004,0006,0007,000B,000C,000D,000F,0010,0011,0012,0013,0014,0015\n";

    #[test]
    fn an_alternative_this_cpu_cannot_run_is_left_out() {
        let alias = format!("{ALIAS}{CPU_ALIAS}");
        let chains = |cpu: Option<&str>| {
            let ix = ModIndex::parse(DEP, SOFT, &alias, BUILTIN);
            let ix = match cpu {
                Some(c) => ix.for_cpu(c),
                None => ix,
            };
            ix.plan(&["ext4".into()]).unwrap()[0].chains.concat()
        };
        let intel = "kernel/arch/x86/crypto/crc32c-intel.ko".to_string();
        let generic = "kernel/crypto/crc32c_generic.ko".to_string();
        assert_eq!(chains(Some(TCG_CPU)), std::slice::from_ref(&generic));
        assert_eq!(chains(Some(SSE42_CPU)), [intel.clone(), generic.clone()]);
        // Unknown CPU (the initramfs build): every alternative, so a board gets what it may need.
        assert_eq!(chains(None), [intel.clone(), generic]);
        // Asked for by name, it is still tried: the kernel's error then says why it failed.
        let ix = ModIndex::parse(DEP, SOFT, &alias, BUILTIN).for_cpu(TCG_CPU);
        assert_eq!(ix.plan(&["crc32c-intel".into()]).unwrap()[0].chains, [[intel]]);
    }

    #[test]
    fn modalias_patterns_match_as_the_kernel_writes_them() {
        for (pattern, text, want) in [
            ("cpu:type:x86,ven*fam*mod*:feature:*0094*", SSE42_CPU.trim(), true),
            ("cpu:type:x86,ven*fam*mod*:feature:*0094*", TCG_CPU.trim(), false),
            ("cpu:type:*:feature:*0021*", A15_CPU.trim(), false),
            ("cpu:type:*:feature:*0011*", A15_CPU.trim(), true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("", "x", false),
        ] {
            assert_eq!(alias_matches(pattern, text), want, "{pattern} against {text}");
        }
    }

    #[test]
    fn alias_request_resolves() {
        let plan = ix().plan(&["fs-ext4".into()]).unwrap();
        assert_eq!(plan.last().unwrap().chains[0].last().unwrap(), "kernel/fs/ext4/ext4.ko");
    }

    #[test]
    fn subset_keeps_only_listed_modules() {
        let ix = ix();
        let files: BTreeSet<String> = ix
            .plan(&["squashfs".into(), "ext4".into()])
            .unwrap()
            .into_iter()
            .flat_map(|s| s.chains)
            .flatten()
            .collect();
        let (dep, soft, alias) = ix.subset(&files);
        assert!(dep.contains("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko"));
        assert!(!dep.contains("virtio"));
        assert!(soft.contains("softdep ext4 pre: crypto-crc32c"));
        // Alias names are written normalised; the kernel and our parser treat - and _ alike.
        assert!(alias.contains("alias crypto_crc32c crc32c_generic"));
        assert!(alias.contains("alias fs_ext4 ext4"));
        // The subset resolves the same way as the whole.
        let sub = ModIndex::parse(&dep, &soft, &alias, "");
        assert_eq!(sub.plan(&["ext4".into()]).unwrap(), ix.plan(&["ext4".into()]).unwrap());
    }

    #[test]
    fn soft_dependencies_keep_the_file_order_and_a_later_line_wins() {
        let dep = "kernel/b.ko:\nkernel/z.ko:\nkernel/a.ko:\nkernel/m.ko:\nkernel/old/m.ko: kernel/a.ko\n";
        // m's soft dependencies over two lines, another module's in between.
        let soft = "softdep m pre: z b post: a\nsoftdep a pre: b\nsoftdep m pre: a\n";
        let ix = ModIndex::parse(dep, soft, "", "");
        let plan = ix.plan(&["m".into()]).unwrap();
        let order: Vec<&str> = plan.iter().map(|s| s.request.as_str()).collect();
        assert_eq!(order, ["z", "b", "a", "m"], "{plan:?}");
        // The later of m's two lines in modules.dep, as depmod's last word (and the old map) had it.
        assert_eq!(plan[3].chains[0], ["kernel/a.ko", "kernel/old/m.ko"]);
        let (_, soft, _) = ix.subset(&["kernel/m.ko".to_string(), "kernel/old/m.ko".to_string()].into());
        assert_eq!(soft, "softdep m post: a\nsoftdep m pre: z b a\n");
    }

    #[test]
    fn long_and_looping_softdep_chains_end() {
        // m0 pre: m1, m1 pre: m2, ... 100000 deep, and the last one points back to m0.
        let n = 100_000;
        let dep: String = (0..n).map(|i| format!("kernel/m{i}.ko:\n")).collect();
        let soft: String = (0..n).map(|i| format!("softdep m{i} pre: m{}\n", (i + 1) % n)).collect();
        let ix = ModIndex::parse(&dep, &soft, "", "");
        let plan = ix.plan(&["m0".into()]).unwrap();
        assert_eq!(plan.len(), n);
        assert_eq!(plan.last().unwrap().request, "m0");
        assert_eq!(plan[0].request, format!("m{}", n - 1));
    }
}
