//! The per-message JSON check on real venue traffic: every message of bench/corpus/
//! checked with its venue's preset pointers (examples/venues/<venue>.json: `route_by`,
//! the heartbeat rules' and `route_ids`' pointers), as the reader checks it.
//! `scripts/check-insns` runs it under callgrind for instructions per message and per
//! byte; alone it prints what the corpus holds.
//!
//! - `CHECK_CORPUS_VENUE=okx`: one venue (default: every file in bench/corpus/);
//! - `CHECK_CORPUS_PASSES=n`: passes over the messages (default 1);
//! - `CHECK_CORPUS_MODE=pointers` (default), `bare` (no pointers) or `noop` (the loop
//!   alone, to subtract).

use std::path::Path;

use serde_json::Value;
use wsrec::jsonline::{Pointers, check_with};

/// The pointers a preset has the check find, in the order the reader adds them.
fn preset_pointers(preset: &Value) -> Vec<String> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut out = strings(&preset["route_by"]);
    for rule in preset["heartbeat_replies"].as_array().into_iter().flatten() {
        out.extend(strings(&rule["has"]));
        out.extend(keys(&rule["equals"]));
    }
    let ids = &preset["route_ids"];
    out.extend(keys(&ids["when"]));
    out.extend(ids["id"].as_str().map(String::from));
    out.extend(strings(&ids["key"]));
    out
}

struct Venue {
    name: String,
    msgs: Vec<Vec<u8>>,
    ptrs: Pointers,
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let only = std::env::var("CHECK_CORPUS_VENUE").ok();
    let passes: usize = std::env::var("CHECK_CORPUS_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mode = std::env::var("CHECK_CORPUS_MODE").unwrap_or_else(|_| "pointers".into());
    let mut files: Vec<_> = std::fs::read_dir(root.join("bench/corpus"))
        .expect("bench/corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut venues = Vec::new();
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        let text = std::fs::read(&f).unwrap();
        let msgs = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let mut ptrs = Pointers::default();
        if mode == "pointers" {
            let preset = root.join(format!("examples/venues/{name}.json"));
            let preset: Value = serde_json::from_slice(&std::fs::read(&preset).unwrap()).unwrap();
            for p in preset_pointers(&preset) {
                ptrs.add(&p).unwrap();
            }
        }
        venues.push(Venue { name, msgs, ptrs });
    }
    let mut valid = vec![0usize; venues.len()];
    let mut found_values = vec![0usize; venues.len()];
    for _ in 0..passes {
        for (v, venue) in venues.iter().enumerate() {
            let mut found = vec![None; venue.ptrs.len()];
            for m in &venue.msgs {
                let m = std::hint::black_box(&m[..]);
                if mode == "noop" {
                    valid[v] += m.len().min(1);
                    continue;
                }
                if check_with(m, &venue.ptrs, &mut found).is_ok() {
                    valid[v] += 1;
                    found_values[v] += found.iter().filter(|f| f.is_some()).count();
                }
            }
        }
    }
    for (v, venue) in venues.iter().enumerate() {
        let bytes: usize = venue.msgs.iter().map(Vec::len).sum();
        println!(
            "{} messages={} bytes={} min={} max={} pointers={} valid={} found={}",
            venue.name,
            venue.msgs.len(),
            bytes,
            venue.msgs.iter().map(Vec::len).min().unwrap_or(0),
            venue.msgs.iter().map(Vec::len).max().unwrap_or(0),
            venue.ptrs.len(),
            valid[v] / passes.max(1),
            found_values[v] / passes.max(1),
        );
    }
}
