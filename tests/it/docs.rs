//! The documentation's links resolve: every relative link in README.md, ARCHITECTURE.md,
//! SECURITY.md and docs/*.md names a file of the repository and, with `#anchor`, a heading of it
//! (GitHub's anchor rule: lower case, spaces to dashes, punctuation dropped). The README stays a
//! front door: at most 250 lines.

use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pages() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        ["README.md", "ARCHITECTURE.md", "SECURITY.md"].iter().map(|p| repo().join(p)).collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    out.extend(docs);
    out
}

/// GitHub's anchor for a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut fence = false;
    let mut out = Vec::new();
    for l in text.lines() {
        if l.starts_with("```") {
            fence = !fence;
        } else if !fence && l.starts_with('#') {
            out.push(anchor(l.trim_start_matches('#')));
        }
    }
    out
}

/// The targets of `[text](target)` links outside code.
fn links(text: &str) -> Vec<String> {
    let mut fence = false;
    let mut out = Vec::new();
    for l in text.lines() {
        if l.starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        let mut rest = l;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut seen = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") || link.starts_with("mailto:") {
                continue;
            }
            seen += 1;
            let (file, frag) = link.split_once('#').map_or((link.as_str(), None), |(f, a)| (f, Some(a)));
            let target = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            let Ok(body) =
                std::fs::read_to_string(&target).or_else(|e| if target.is_dir() { Ok(String::new()) } else { Err(e) })
            else {
                broken.push(format!("{}: {link} (no such file)", page.display()));
                continue;
            };
            if let Some(a) = frag {
                if !anchors(&body).iter().any(|h| h == a) {
                    broken.push(format!("{}: {link} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(seen > 20, "only {seen} links read: the link reader is broken");
    assert_eq!(broken, Vec::<String>::new());
}

#[test]
fn the_readme_is_a_front_door() {
    let n = std::fs::read_to_string(repo().join("README.md")).unwrap().lines().count();
    assert!(n <= 250, "README.md has {n} lines: move reference material to docs/");
}

#[test]
fn anchors_follow_githubs_rule() {
    assert_eq!(
        anchor(" Kernel: the initramfs linked into the kernel image"),
        "kernel-the-initramfs-linked-into-the-kernel-image"
    );
    assert_eq!(
        links("see [a](docs/x.md#y) and [b](https://e.org)\n```\n[c](no.md)\n```"),
        ["docs/x.md#y", "https://e.org"]
    );
}
