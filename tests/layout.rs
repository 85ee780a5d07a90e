//! The shape of `src/`, checked so that it stays the shape README's "Layout" describes: no
//! file over 600 lines, the transports never naming the upstream layer, and no two folders
//! of `src/` importing each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules of the crate a file names through `crate::` paths, grouped
/// imports (`crate::{a, b::c}`) included.
fn crate_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `crate::finder!` and the like are macros, not modules.
            if !name.is_empty() && !rest[name.len()..].starts_with('!') {
                found.insert(name);
            }
        }
    }
    found
}

/// The folder of `src/` a file sits in (`None` for files at the top).
fn folder_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let mut parts = rel.components();
    let first = parts.next()?.as_os_str().to_str()?.to_string();
    parts.next().map(|_| first)
}

#[test]
fn no_file_in_src_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 20, "src/ walked: {} files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn folders_of_src_import_no_cycle_and_transports_never_name_upstreams() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let Some(folder) = folder_of(f) else { continue };
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let entry = deps.entry(folder.clone()).or_default();
        entry.extend(crate_modules(&text).into_iter().filter(|m| *m != folder));
    }
    // The checker itself must see the dependencies that do exist.
    assert!(deps["router"].contains("upstream"), "{deps:?}");
    assert!(deps["transport"].contains("ingress"), "{deps:?}");

    assert!(
        !deps["transport"].contains("upstream"),
        "src/transport imports src/upstream"
    );
    let mut pairs = Vec::new();
    for (a, uses) in &deps {
        for b in uses {
            if a < b && deps.get(b).is_some_and(|back| back.contains(a)) {
                pairs.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(pairs.is_empty(), "folders importing each other: {pairs:?}");
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths() {
    let text = "use crate::{wire::Envelope, session};\nuse crate::router::Router;\ncrate::finder!(b\"x\");";
    let found = crate_modules(text);
    let want: BTreeSet<String> = ["router", "session", "wire"].map(String::from).into();
    assert_eq!(found, want);
}
