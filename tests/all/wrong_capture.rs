//! Captures made slightly wrong are said to be wrong: each case here decoded to
//! `status = 'ok'` rows and exit 0 before the checks of `heapvis::check` (the
//! capture against its inputs) and `decode::plausible` (each snapshot).

use std::path::Path;

use heapvis::synth::{Board, Flavor, SynthConfig};

use crate::bad_input::{fatal, heapvis};
use crate::common::{capture, duck};

fn analyze(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"analyze"];
    all.extend_from_slice(args);
    heapvis(&all)
}

/// Overwrites snapshot `i` of the capture's dump with `fill(byte offset)`.
fn overwrite_snapshot(dir: &Path, snapshot_bytes: usize, i: usize, fill: impl Fn(usize) -> u8) {
    let path = dir.join("ram.bin");
    let mut ram = std::fs::read(&path).unwrap();
    for (k, b) in ram[i * snapshot_bytes..(i + 1) * snapshot_bytes].iter_mut().enumerate() {
        *b = fill(k);
    }
    std::fs::write(&path, ram).unwrap();
}

#[test]
fn a_zeroed_ff_or_random_snapshot_is_suspect_and_the_run_goes_on() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = move |_: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    let fills: [(&str, &mut dyn FnMut(usize) -> u8); 3] =
        [("zeroed", &mut |_| 0), ("0xFF", &mut |_| 0xff), ("random", &mut random)];
    for (what, fill) in fills {
        let c = capture(Board::Samd21, 30, 5, 0);
        let fill = std::cell::RefCell::new(fill);
        overwrite_snapshot(c.dir.path(), 32768, 17, |k| (fill.borrow_mut())(k));
        let o = c.dir.path().join("o");
        let out = analyze(&[&c.dir.path(), &"-o", &o]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: exit 1 for a suspect snapshot: {err}");
        assert!(err.contains("snapshot 17: suspect: GC state"), "{what}: a warning names it: {err}");
        let rows = duck(
            "SELECT snapshot, status, used_bytes FROM '{d}/snapshots/*.parquet' WHERE status <> 'ok' ORDER BY 1",
            &o,
        );
        assert_eq!(rows.len(), 1, "{what}: only the overwritten snapshot: {rows:?}");
        assert_eq!(rows[0][0], 17);
        assert!(rows[0][1].as_str().unwrap().starts_with("suspect: GC state: mp_state_ctx's GC state does not add up"));
        assert!(rows[0][2].is_null(), "{what}: no figure of a suspect snapshot");
        // Its rows are not in the lifetimes: nothing died at 16 to be reborn at 18.
        let reborn = duck(
            "SELECT count(*) FROM '{d}/allocations/*.parquet' a JOIN '{d}/allocations/*.parquet' b
             ON a.address = b.address AND a.blocks = b.blocks AND a.last_snapshot = 16 AND b.first_snapshot = 18",
            &o,
        );
        assert_eq!(reborn[0][0], 0, "{what}: no allocation dies and is reborn around the suspect snapshot");
    }
}

#[test]
fn an_allocation_table_no_gc_wrote_is_suspect() {
    // Orphan tail runs all over the table, with the GC state intact.
    let c = capture(Board::Samd21, 12, 6, 0);
    let s = crate::common::session(&c.inputs);
    let g = s.decoder(Default::default()).geometry_of(s.dump.snapshot(5).unwrap()).unwrap().0;
    let atb = (g.first.alloc_table_start - s.firmware.ram_start) as usize;
    let path = c.dir.path().join("ram.bin");
    let mut ram = std::fs::read(&path).unwrap();
    for b in &mut ram[5 * 32768 + atb..5 * 32768 + atb + 8] {
        *b = 0b10_00_10_00; // FREE, TAIL, FREE, TAIL: four orphan tail runs a byte
    }
    std::fs::write(&path, ram).unwrap();
    let o = c.dir.path().join("o");
    let out = analyze(&[&c.dir.path(), &"-o", &o, &"-q"]);
    assert_eq!(out.status.code(), Some(1));
    let rows = duck("SELECT snapshot, status FROM '{d}/snapshots/*.parquet' WHERE status <> 'ok'", &o);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0][1].as_str().unwrap().starts_with("suspect: allocation table: "), "{rows:?}");
}

#[test]
fn ram_bounds_that_do_not_fit_the_dump_are_refused_with_the_right_ones() {
    let c = capture(Board::Samd21, 40, 7, 0);
    let o = c.dir.path().join("o");
    let right = "pass `--ram-start 0x20000000 --ram-end 0x20008000`";
    // Off by 4 either way, up to _ebss instead of _estack, twice as wide.
    for (start, end, found) in [
        ("0x20000004", "_estack", "bytes into the dump, so the dump starts at 0x20000000"),
        ("0x1ffffffc", "_estack", "so the dump starts at 0x20000000 and its snapshots are 32768 bytes"),
        ("_srelocate", "0x20007ff0", "recurs every 32768 bytes in the dump"),
        ("_srelocate", "0x20010000", "recurs every 32768 bytes in the dump"),
    ] {
        let err = fatal(&analyze(&[&c.dir.path(), &"-o", &o, &"--ram-start", &start, &"--ram-end", &end]));
        assert!(err.contains(found) && err.contains(right), "{start}..{end}: {err}");
        assert!(!o.exists(), "nothing written");
    }
    // With the bounds it names, the run goes through.
    let out = analyze(&[&c.dir.path(), &"-o", &o, &"-q", &"--ram-start", &"0x20000000", &"--ram-end", &"0x20008000"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn another_builds_firmware_or_random_bytes_are_refused() {
    let big = capture(Board::Samd51, 6, 8, 0);
    let small = capture(Board::Samd21, 6, 8, 0);
    let o = small.dir.path().join("o");
    let (bin, map) = (small.dir.path().join("firmware.bin"), small.dir.path().join("firmware.map"));
    let err = fatal(&analyze(&[&big.inputs.ram, &bin, &map, &"-o", &o]));
    assert!(err.contains("not the dump's build"), "a SAMD51 dump with a SAMD21 map: {err}");
    let noise: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let noise_path = small.dir.path().join("noise.bin");
    std::fs::write(&noise_path, noise).unwrap();
    let err = fatal(&analyze(&[&noise_path, &bin, &map, &"-o", &o]));
    assert!(err.contains("not of this build") && err.contains("firmware.elf"), "random bytes: {err}");
}

#[test]
fn a_current_circuitpython_capture_names_the_profile_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let config = SynthConfig { flavor: Flavor::CircuitPython10, ..SynthConfig::new(Board::Samd21, 20, 9) };
    heapvis::synth::write_dir(&config, dir.path()).unwrap();
    let o = dir.path().join("o");
    let err = fatal(&analyze(&[&dir.path(), &"-o", &o]));
    assert!(err.contains("with the layout profile `circuitpython-3.0-atmel-samd`"), "{err}");
    assert!(err.contains("pass `--profile circuitpython-10-synthetic`"), "{err}");
    let out = analyze(&[&dir.path(), &"-o", &o, &"-q", &"--profile", &"circuitpython-10-synthetic"]);
    assert_eq!(out.status.code(), Some(0), "the named profile reads it: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_short_or_empty_flash_image_is_refused() {
    let c = capture(Board::Samd21, 3, 1, 0);
    let flash = std::fs::read(c.dir.path().join("firmware.bin")).unwrap();
    for len in [0, 100] {
        let short = c.dir.path().join("short.bin");
        std::fs::write(&short, &flash[..len]).unwrap();
        let map = c.dir.path().join("firmware.map");
        let err = fatal(&analyze(&[&c.inputs.ram, &short, &map, &"-o", &c.dir.path().join("o")]));
        assert!(err.contains(&format!("it holds {len} bytes")) && err.contains("past its end"), "{err}");
    }
}

#[test]
fn a_dump_in_the_maps_place_is_refused_before_it_is_read() {
    let c = capture(Board::Samd21, 3, 1, 0);
    let bin = c.dir.path().join("firmware.bin");
    let err = fatal(&analyze(&[&c.inputs.ram, &bin, &c.inputs.ram, &"-o", &c.dir.path().join("o")]));
    assert!(err.contains("not a GNU ld map") && err.contains("binary data"), "{err}");
}

#[test]
fn the_flash_image_is_never_taken_for_the_dump() {
    let c = capture(Board::Samd21, 3, 1, 0);
    std::fs::remove_file(c.dir.path().join("ram.bin")).unwrap();
    std::fs::write(c.dir.path().join("firmware.elf"), b"\x7fELF not really").unwrap();
    let err = fatal(&analyze(&[&c.dir.path(), &"-o", &c.dir.path().join("o")]));
    assert!(err.contains("ram.bin (the RAM dump)") && err.contains("not found"), "{err}");
}

#[test]
fn a_micropython_bin_and_map_are_told_to_use_the_elf_or_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let config = SynthConfig { flavor: Flavor::MicroPython, ..SynthConfig::new(Board::Samd21, 5, 2) };
    heapvis::synth::write_dir(&config, dir.path()).unwrap();
    let err = fatal(&analyze(&[&dir.path(), &"-o", &dir.path().join("o")]));
    assert!(err.contains("no symbol `_srelocate`") && err.contains("MicroPython build"), "{err}");
    assert!(err.contains("heapvis analyze ram.bin") && err.contains("heapvis profile"), "names the commands: {err}");
}

#[test]
fn inspect_labels_each_snapshot_of_a_range_and_goes_on_past_a_suspect_one() {
    let c = capture(Board::Samd21, 8, 5, 0);
    overwrite_snapshot(c.dir.path(), 32768, 3, |_| 0);
    let out = heapvis(&[&"inspect", &c.dir.path(), &"--snapshot", &"2..5"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for i in 2..5 {
        assert!(stdout.contains(&format!("=== snapshot {i} ===")), "{stdout}");
    }
    assert!(stderr.contains("snapshot 3 is suspect"), "{stderr}");
    let after = stdout.split("=== snapshot 4 ===").nth(1).unwrap_or("");
    assert!(after.contains("Total heap length"), "snapshot 4 is still printed: {after}");
}

#[test]
fn absurd_options_are_usage_errors_and_graph_takes_one_snapshot() {
    let c = capture(Board::Samd21, 4, 5, 0);
    let o = c.dir.path().join("o");
    for (flag, value, says) in [
        ("--threads", "100000", "1..=1024"),
        ("--threads", "0", "1..=1024"),
        ("--fps", "0", "1..=1000"),
        ("--scale", "0", "1..=64"),
        ("--frame-step", "0", "at least 1"),
    ] {
        let out = analyze(&[&c.dir.path(), &"-o", &o, &flag, &value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(says), "{flag} {value}: {err}");
        assert!(!o.exists(), "nothing written");
    }
    let err = fatal(&heapvis(&[&"graph", &c.dir.path(), &"--snapshot", &"1..3"]));
    assert!(err.contains("one snapshot") && err.contains("0..=3"), "{err}");
}

#[test]
fn a_few_bad_snapshots_do_not_make_the_capture_look_wrong() {
    // Snapshots 1 and 3 of 9 zeroed, 2 overwritten with noise: the capture's
    // period is still found, and each is flagged on its own.
    let c = capture(Board::Samd21, 9, 5, 0);
    overwrite_snapshot(c.dir.path(), 32768, 1, |_| 0);
    overwrite_snapshot(c.dir.path(), 32768, 3, |_| 0);
    overwrite_snapshot(c.dir.path(), 32768, 2, |k| (k.wrapping_mul(2_654_435_761) >> 7) as u8);
    let o = c.dir.path().join("o");
    let out = analyze(&[&c.dir.path(), &"-o", &o, &"-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = duck("SELECT snapshot FROM '{d}/snapshots/*.parquet' WHERE status LIKE 'suspect:%' ORDER BY 1", &o);
    assert_eq!(rows, vec![vec![serde_json::json!(1)], vec![serde_json::json!(2)], vec![serde_json::json!(3)]]);
}
