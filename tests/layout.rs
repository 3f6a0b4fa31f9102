//! The test suite's own layout: with `autotests = false` a file in tests/ that no
//! target names is never compiled, and its tests pass unrun.

use std::fs;
use std::path::Path;

/// Every tests/*.rs is a module of tests/tests.rs or a `[[test]]` in Cargo.toml.
#[test]
fn every_test_file_is_compiled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let toc = fs::read_to_string(root.join("tests/tests.rs")).unwrap();
    let cargo = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut orphans = Vec::new();
    for entry in fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".rs") else {
            continue;
        };
        let declared = name == "tests.rs"
            || toc.lines().any(|l| l.trim() == format!("mod {stem};"))
            || cargo.contains(&format!("path = \"tests/{name}\""));
        if !declared {
            orphans.push(name.to_string());
        }
    }
    assert!(
        orphans.is_empty(),
        "tests/{orphans:?} run nowhere: add `mod NAME;` to tests/tests.rs (see its table of contents)"
    );
}
