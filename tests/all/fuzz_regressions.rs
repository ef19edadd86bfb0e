//! Replays the fuzz targets' seed corpus and every input a fuzz run found a
//! crash with (`fuzz/regressions/TARGET/`, added as they are fixed) through the
//! targets' own bodies: what libFuzzer found once stays fixed, in both builds.

use std::path::Path;

#[path = "../../fuzz/bodies.rs"]
mod bodies;

/// Every file of `fuzz/corpus/TARGET/seed-*` and `fuzz/regressions/TARGET/`.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = crate::common::repo().join("fuzz");
    let mut found = Vec::new();
    for (dir, seeds_only) in [(root.join("corpus").join(target), true), (root.join("regressions").join(target), false)]
    {
        for e in std::fs::read_dir(&dir).into_iter().flatten().map(|e| e.unwrap()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if !seeds_only || name.starts_with("seed-") {
                found.push((name, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    found.sort();
    found
}

fn replay(target: &str, body: fn(&[u8])) {
    let all = inputs(target);
    assert!(!all.is_empty(), "{target}: no seed in {}", Path::new("fuzz/corpus").join(target).display());
    for (name, data) in all {
        // A panic names the input that made it.
        let ok = std::panic::catch_unwind(|| body(&data));
        assert!(ok.is_ok(), "{target}: {name} panics");
    }
}

#[test]
fn decode_snapshot_inputs_replay_cleanly() {
    replay("decode_snapshot", bodies::decode_snapshot);
}

#[test]
fn map_parser_inputs_replay_cleanly() {
    replay("map_parser", bodies::map_parser);
}

#[test]
fn elf_dwarf_inputs_replay_cleanly() {
    replay("elf_dwarf", bodies::elf_dwarf);
}
