//! The source tree's one layering rule and its absence of import cycles, read from the `use`
//! lines (and `crate::`/`super::` paths) of every file in `src/` and `xtask/src/`.
//!
//! The rule: only the acting folders (`boot/`, `cli/`) touch the system through `sys/`; the pure
//! folders decide or encode and import only each other and the low layers (`fs/`, `util/`);
//! `sys/` and `util/` import nothing above themselves. A new top-level folder must be placed in
//! one of these layers here, so the rule cannot be bypassed by adding a folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layer of each top-level module of `src/`, and which layers it may import.
const SRC_LAYERS: &[(&str, &str)] = &[
    ("boot", "acting"),
    ("cli", "acting"),
    ("ab", "pure"),
    ("block", "pure"),
    ("config", "pure"),
    ("flash", "pure"),
    ("kexec", "pure"),
    ("kmod", "pure"),
    ("plan", "pure"),
    ("reconcile", "pure"),
    ("verity", "pure"),
    ("uboot", "pure"),
    ("fs", "low"),
    ("util", "util"),
    ("sys", "sys"),
    // std's API, or its replacement over rustix and the C library: below everything.
    ("rt", "runtime"),
];

fn may_import(from: &str, to: &str) -> bool {
    match (from, to) {
        (a, b) if a == b => true,
        (_, "runtime") => true,
        ("acting", _) => true,
        ("pure", "low" | "util") => true,
        ("low", "util" | "sys") => true,
        _ => false,
    }
}

/// Module path (`boot::slot`, `` for the crate root) of a file relative to the source root.
fn module_of(rel: &str) -> String {
    let rel = rel.trim_end_matches(".rs");
    let mut segs: Vec<&str> = rel.split('/').collect();
    if matches!(segs.last(), Some(&("mod" | "lib" | "main"))) {
        segs.pop();
    }
    segs.join("::")
}

/// The code without line comments and without the trailing `#[cfg(test)] mod tests` block:
/// test code may import freely, and a path named in a comment is no import.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(path: &str, out: &mut Vec<String>) {
    let Some(open) = path.find('{') else {
        out.push(path.split(" as ").next().unwrap_or(path).trim().to_string());
        return;
    };
    let (prefix, body) = (&path[..open], &path[open + 1..path.rfind('}').unwrap_or(path.len())]);
    let (mut depth, mut start) = (0, 0);
    for (i, c) in body.char_indices().chain([(body.len(), ',')]) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                let part = body[start..i].trim();
                if !part.is_empty() {
                    expand(&format!("{prefix}{part}"), out);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
}

/// Every module path a file's code names: its `use` items (groups expanded), every inline
/// `crate::`/`super::`/`self::` path, and in a file with child modules, paths through them.
fn named_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let children: Vec<&str> = code
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("pub ").strip_prefix("mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .collect();
    let relative = |path: &str| match path.split_once("::") {
        Some(("crate" | "super" | "self", _)) => Some(path.to_string()),
        Some((first, _)) if children.contains(&first) => Some(format!("self::{path}")),
        _ => None,
    };
    // `use` items, for their groups: `use crate::{a, b::c}` names a and b::c.
    for item in code.split(';') {
        let item = item.trim_start().lines().skip_while(|l| l.trim_start().starts_with("#[")).collect::<Vec<_>>();
        let item = item.join(" ");
        let item = item.trim_start().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
        let Some(path) = item.strip_prefix("use ") else { continue };
        let path: String = path.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut paths = Vec::new();
        expand(&path.replace(":: ", "::").replace(" ::", "::"), &mut paths);
        out.extend(paths.iter().filter_map(|p| relative(p)));
    }
    // Inline paths: `crate::sys::mount::x()`, `super::verity::open(..)`, `child::f()`.
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            let mut e = i;
            while e < bytes.len() && (ident(bytes[e]) || bytes[e] == b':') {
                e += 1;
            }
            // `crate::boot::` before a `{` is a group's prefix, read with the `use` items above.
            if !code[i..e].ends_with("::") {
                out.extend(relative(&code[i..e]));
            }
            i = e;
        } else {
            i += 1;
        }
    }
    out
}

/// The file a path names: the longest prefix of it that is a known module.
fn resolve(path: &str, from: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = if from.is_empty() { Vec::new() } else { from.split("::").collect() };
    // `self` is the file's own module and `super` its parent, whether the file is a folder's
    // mod.rs or not.
    match segs.first() {
        Some(&"crate") => {
            segs.remove(0);
            base.clear();
        }
        Some(&"self") => {
            segs.remove(0);
        }
        Some(&"super") => {
            while segs.first() == Some(&"super") {
                segs.remove(0);
                base.pop();
            }
        }
        _ => return None,
    }
    let full: Vec<&str> = base.into_iter().chain(segs).collect();
    (1..=full.len()).rev().map(|n| full[..n].join("::")).find(|m| modules.contains(m))
}

struct Tree {
    /// file module -> modules it imports
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn read_tree(files: &[(String, String)]) -> Tree {
    let modules: BTreeSet<String> = files.iter().map(|(rel, _)| module_of(rel)).collect();
    let mut edges = BTreeMap::new();
    for (rel, text) in files {
        let from = module_of(rel);
        let set: BTreeSet<String> = named_paths(&code_of(text))
            .iter()
            .filter_map(|p| resolve(p, &from, &modules))
            .filter(|to| *to != from && !to.is_empty())
            .collect();
        edges.insert(from, set);
    }
    Tree { edges }
}

/// The import cycles: strongly connected sets of more than one file (Tarjan).
fn cycles(t: &Tree) -> Vec<Vec<String>> {
    struct S<'a> {
        t: &'a Tree,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut S<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        let t = s.t;
        for w in t.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s =
        S { t, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for v in t.edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// Imports that break the layering rule, and top-level modules no layer names.
fn layering_breaks(t: &Tree) -> Vec<String> {
    let layer = |m: &str| {
        let top = m.split("::").next().unwrap_or("");
        SRC_LAYERS.iter().find(|(name, _)| *name == top).map(|(_, l)| *l)
    };
    let mut out = Vec::new();
    for (from, tos) in &t.edges {
        if from.is_empty() {
            continue;
        }
        let Some(lf) = layer(from) else {
            out.push(format!("{from}: a top-level module no layer names (add it to SRC_LAYERS)"));
            continue;
        };
        for to in tos {
            match layer(to) {
                Some(lt) if !may_import(lf, lt) => out.push(format!("{from} ({lf}) imports {to} ({lt})")),
                _ => {}
            }
        }
    }
    out
}

fn read_dir(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn src_has_no_import_cycle_and_keeps_its_layers() {
    let t = read_tree(&read_dir(&repo().join("src")));
    assert!(t.edges.len() > 40, "the tree was not read: {} files", t.edges.len());
    assert_eq!(cycles(&t), Vec::<Vec<String>>::new(), "import cycles in src/");
    assert_eq!(layering_breaks(&t), Vec::<String>::new(), "layering breaks in src/");
}

#[test]
fn xtask_has_no_import_cycle() {
    let t = read_tree(&read_dir(&repo().join("xtask/src")));
    assert!(t.edges.len() > 20, "the tree was not read: {} files", t.edges.len());
    assert_eq!(cycles(&t), Vec::<Vec<String>>::new(), "import cycles in xtask/src/");
}

/// The checks themselves find what they look for: a cycle through a `use` group and an inline
/// path, a pure folder reaching `sys/`, a folder no layer names.
#[test]
fn the_checks_see_cycles_and_breaks() {
    let files = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    let t = read_tree(&files(&[
        ("lib.rs", "pub mod plan;\npub mod sys;\npub mod extra;\n"),
        ("plan/mod.rs", "pub mod a;\npub mod b;\n"),
        ("plan/a.rs", "use crate::plan::{b::Thing, self};\n"),
        ("plan/b.rs", "fn f() { super::a::g(); crate::sys::mount::x(); }\n"),
        ("sys/mod.rs", "pub mod mount;\n"),
        ("sys/mount.rs", "// use crate::plan::a; (a comment)\n"),
        ("extra.rs", ""),
    ]));
    assert_eq!(cycles(&t), vec![vec!["plan::a".to_string(), "plan::b".to_string()]]);
    let breaks = layering_breaks(&t);
    assert!(breaks.contains(&"plan::b (pure) imports sys::mount (sys)".to_string()), "{breaks:?}");
    assert!(breaks.iter().any(|b| b.starts_with("extra: a top-level module no layer names")), "{breaks:?}");
    assert!(!breaks.iter().any(|b| b.starts_with("sys::mount")), "a comment is no import: {breaks:?}");
}
