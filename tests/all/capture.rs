//! `heapvis gdb-script`, run for real: a host program shaped like a firmware
//! build (tests/support/gdb_target.c: the firmware's function names, its "RAM"
//! between `_sdata` and `_estack`, each call recording itself in RAM) is built
//! with gcc -g and run under gdb in batch mode with the generated script. The
//! dump and the sidecar must say, snapshot by snapshot, what the program did.

use std::path::Path;
use std::process::Command;

use heapvis::sidecar::Sidecar;

const RAM_BYTES: usize = 4096;

fn build(dir: &Path, pie: bool) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gdb_target.c");
    let prog = dir.join("prog");
    let pie_flags: &[&str] = if pie { &["-fpie", "-pie"] } else { &["-fno-pie", "-no-pie"] };
    let o =
        Command::new("gcc").args(["-g", "-O1"]).args(pie_flags).arg(&src).arg("-o").arg(&prog).output().expect("gcc");
    assert!(o.status.success(), "gcc: {}", String::from_utf8_lossy(&o.stderr));
    prog
}

/// Writes the script with `args` and runs the program under gdb with it.
fn capture(dir: &Path, prog: &Path, args: &[&str]) -> std::process::Output {
    let o = Command::new(env!("CARGO_BIN_EXE_heapvis"))
        .current_dir(dir)
        .arg("gdb-script")
        .arg(prog)
        .args(["--run", "--ram-start", "_sdata", "--ram-end", "_estack", "-o", "capture.py"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "gdb-script: {}", String::from_utf8_lossy(&o.stderr));
    Command::new("gdb").current_dir(dir).args(["-batch", "-nx", "-x", "capture.py"]).arg(prog).output().expect("gdb")
}

/// A snapshot the script should take: its event, the size requested, and
/// what RAM says had happened before the call (allocations, collections
/// started, collections ended, MemoryErrors).
type Expected = (&'static str, Option<u64>, [u32; 4]);

/// The program's calls replayed: the snapshots a script taking every
/// `every`-th allocation (and the mark phases' ends with `collections`) makes.
fn expected(every: u64, collections: bool) -> Vec<Expected> {
    let (mut want, mut done) = (Vec::new(), [0u32; 4]);
    for i in 1..=30u64 {
        if i % every == 0 {
            want.push(("alloc", Some(16 * i), done));
        }
        done[0] += 1;
        if i % 10 == 0 {
            want.push(("collect_start", None, done));
            done[1] += 1;
            if collections {
                want.push(("collect_end", None, done));
            }
            done[2] += 1;
        }
        if i == 25 {
            want.push(("memory_error", Some(4000), done));
            done[3] += 1;
        }
    }
    want
}

fn word(snapshot: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(snapshot[4 * i..4 * i + 4].try_into().unwrap())
}

#[test]
fn the_script_captures_every_heap_change_with_its_sidecar() {
    for (every, collections) in [(1, true), (7, false)] {
        let dir = tempfile::tempdir().unwrap();
        let prog = build(dir.path(), false);
        let every_arg = every.to_string();
        let every: u64 = every;
        let mut args = vec!["--every", &every_arg];
        if collections {
            args.push("--collections");
        }
        let o = capture(dir.path(), &prog, &args);
        let log = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && log.contains("exited normally"), "gdb:\n{log}");
        let want = expected(every, collections);
        let dump = std::fs::read(dir.path().join("ram.bin")).unwrap();
        assert_eq!(dump.len(), want.len() * RAM_BYTES, "one whole RAM per snapshot\n{log}");
        let text = std::fs::read_to_string(dir.path().join("ram.events.jsonl")).unwrap();
        let sidecar = Sidecar::parse(Path::new("ram.events.jsonl"), &text).unwrap();
        let mut last_time = 0.0;
        for (k, (event, requested, done)) in want.iter().enumerate() {
            let e = sidecar.get(k as u64).unwrap_or_else(|| panic!("a line for snapshot {k}"));
            assert_eq!((e.event.as_deref(), e.requested_bytes), (Some(*event), *requested), "snapshot {k}");
            assert!(e.sp.is_some_and(|sp| sp > 0xffff_ffff), "a 64-bit host stack pointer: {:?}", e.sp);
            let function = match *event {
                "alloc" => "gc_alloc",
                "collect_start" => "gc_collect_start",
                "collect_end" => "gc_collect_end",
                _ => "m_malloc_fail",
            };
            assert_eq!(e.frames[..2], [function, "run_program"], "snapshot {k}");
            let t = e.time.unwrap();
            assert!(t >= last_time);
            last_time = t;
            let snap = &dump[k * RAM_BYTES..(k + 1) * RAM_BYTES];
            let seen = [0, 1, 2, 3].map(|i| word(snap, i));
            assert_eq!(&seen, done, "snapshot {k} ({event}): RAM as it was before the call");
        }
        assert_eq!(sidecar.get(want.len() as u64), None, "no line past the dump");
        // The events it breaks at are said, so a MemoryError it would have seen
        // and did not is 0, not unknown.
        let watched = if collections {
            "alloc,collect_start,memory_error,collect_end"
        } else {
            "alloc,collect_start,memory_error"
        };
        assert_eq!(sidecar.get(3).and_then(|e| e.watched.as_deref()), Some(watched));
        // A second run never appends to the first capture.
        let o = capture(dir.path(), &prog, &args);
        let log = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert!(log.contains("exists: move the earlier capture away"), "{log}");
        assert_eq!(std::fs::read(dir.path().join("ram.bin")).unwrap().len(), dump.len());
    }
}

/// A position-independent program is not where its ELF says: the script
/// refuses to snapshot the wrong memory.
#[test]
fn a_build_gdb_places_elsewhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let prog = build(dir.path(), true);
    let o = capture(dir.path(), &prog, &[]);
    let log = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("load the same build"), "{log}");
    assert!(!dir.path().join("ram.bin").exists() && !dir.path().join("ram.events.jsonl").exists());
}

/// Without the functions of a MicroPython build there is no script.
#[test]
fn a_build_without_the_allocator_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x.c");
    std::fs::write(&src, "int _sdata[4]; int _estack; int main(void) { return 0; }\n").unwrap();
    let prog = dir.path().join("x");
    assert!(Command::new("gcc").arg(&src).arg("-o").arg(&prog).status().unwrap().success());
    let o = Command::new(env!("CARGO_BIN_EXE_heapvis"))
        .arg("gdb-script")
        .arg(&prog)
        .args(["--ram-start", "_sdata", "--ram-end", "_estack"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("gc_alloc"), "{}", String::from_utf8_lossy(&o.stderr));
}
