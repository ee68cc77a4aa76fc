#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Static checks that the documentation names the settings the binaries really have: every
//! `WARREN_*` variable in `docs/configuration.md` is read by some binary (`env = "…"` in a
//! clap attribute), and every variable a binary reads is documented there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate sits in the workspace root")
        .to_path_buf()
}

/// Every `.rs` file under the `src/` of each workspace crate (not tests, not examples).
fn sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root())
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("src"))
        .filter(|src| src.is_dir() && src.parent().is_some_and(|c| c.join("Cargo.toml").exists()))
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The `WARREN_*` names in `text` that follow `prefix` (e.g. `env = "`).
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    text.match_indices(prefix)
        .filter_map(|(at, _)| {
            let rest = &text[at + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            name.starts_with("WARREN_").then_some(name)
        })
        .collect()
}

#[test]
fn configuration_docs_and_binaries_name_the_same_variables() {
    let mut read_by_code = BTreeSet::new();
    for file in sources() {
        let text = std::fs::read_to_string(&file).unwrap();
        read_by_code.extend(names_after(&text, "env = \""));
    }
    let docs = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    // Variables are documented in table rows: "| `WARREN_X` | default | meaning |", and
    // some rows name two ("`WARREN_CPU`, `WARREN_MEM_MB`").
    let documented: BTreeSet<String> = docs
        .lines()
        .filter(|line| line.starts_with("| `"))
        .flat_map(|line| {
            let first_cell = line.split('|').nth(1).unwrap_or("");
            names_after(first_cell, "`")
        })
        .filter(|name| !name.starts_with("WARREN_TEST_"))
        .collect();
    assert!(
        read_by_code.contains("WARREN_LEASE_TTL"),
        "{read_by_code:?}"
    );

    let undocumented: Vec<_> = read_by_code.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "read by a binary but not in docs/configuration.md: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&read_by_code).collect();
    assert!(
        phantom.is_empty(),
        "in docs/configuration.md but read by no binary: {phantom:?}"
    );
}
