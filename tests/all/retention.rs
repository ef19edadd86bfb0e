//! Who holds what, held to the firmware's own mark phase: on a snapshot taken
//! when a collection has marked and not yet swept (gdb at `gc_collect_end`),
//! with the stack pointer from the sidecar, the allocations heapvis calls
//! reachable must be exactly the MARK-ed ones; on the simulator's captures of
//! every layout. Without the stack pointer, the whole stack region is scanned:
//! the reachable set can only grow, and the snapshots table says so.

use heapvis::pipeline::{AnalyzeOptions, Session, Silent};
use heapvis::synth::{self, Board, Flavor, SynthConfig, Workload};

use crate::common::duck;

fn capture(flavor: Flavor, board: Board, seed: u64) -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SynthConfig::new(board, 1200, seed);
    (config.flavor, config.workload, config.start_after) = (flavor, Workload::Busy, 3_000);
    (config.events, config.log_marks) = (true, true);
    synth::write_dir(&config, dir.path()).unwrap();
    let inputs = heapvis::firmware::InputPaths::resolve(&[dir.path().to_path_buf()]).unwrap();
    let session = Session::open_with(&inputs, Some(flavor.profile())).unwrap();
    (dir, session)
}

#[test]
fn reachable_is_exactly_what_the_gc_marked() {
    for (k, (flavor, board)) in [
        (Flavor::CircuitPython3, Board::Samd21),
        (Flavor::MicroPython, Board::Samd21),
        (Flavor::MicroPython64, Board::Samd21),
        (Flavor::CircuitPython10, Board::Samd21),
    ]
    .into_iter()
    .enumerate()
    {
        let (_dir, s) = capture(flavor, board, k as u64 + 1);
        let sidecar = s.sidecar.as_ref().expect("the simulator wrote a sidecar");
        let marked: Vec<u64> = (0..s.dump.count())
            .filter(|&i| sidecar.get(i).and_then(|e| e.event.as_deref()) == Some("collect_marked"))
            .collect();
        assert!(marked.len() >= 2, "{flavor:?}: collections in the capture: {}", marked.len());
        for i in marked {
            let r = s.decode_one(i).unwrap();
            let ret = r.retention.as_ref().expect("retention");
            assert!(r.reachability.as_ref().unwrap().exact, "the stack pointer is known");
            assert!(r.blocks.iter().any(|b| b.marked), "{flavor:?} snapshot {i}: a mark phase marks something");
            for (b, reachable) in r.blocks.iter().zip(&ret.reachable) {
                assert_eq!(
                    *reachable,
                    b.marked,
                    "{flavor:?} snapshot {i}: {} at 0x{:08x} is {} but the GC {} it",
                    b.kind,
                    b.address,
                    if *reachable { "reachable" } else { "unreachable" },
                    if b.marked { "marked" } else { "did not mark" }
                );
            }
        }
    }
}

#[test]
fn without_the_stack_pointer_the_stack_region_is_scanned_whole() {
    let (dir, s) = capture(Flavor::MicroPython, Board::Samd21, 7);
    let exact = dir.path().join("exact");
    s.analyze(&exact, &AnalyzeOptions::default(), &Silent).unwrap();
    std::fs::remove_file(dir.path().join("ram.events.jsonl")).unwrap();
    let inputs = heapvis::firmware::InputPaths::resolve(&[dir.path().to_path_buf()]).unwrap();
    let s = Session::open_with(&inputs, Some(Flavor::MicroPython.profile())).unwrap();
    let over = dir.path().join("over");
    s.analyze(&over, &AnalyzeOptions::default(), &Silent).unwrap();
    let q = |d: &std::path::Path, what: &str| duck(&format!("select {what} from '{{d}}/snapshots/*.parquet'"), d);
    assert_eq!(q(&exact, "distinct reachability")[0][0], serde_json::json!("exact"));
    assert_eq!(q(&over, "distinct reachability")[0][0], serde_json::json!("over_approximation"));
    assert!(q(&exact, "count(*) filter (where stack_pointer is null)")[0][0] == serde_json::json!(0));
    // Every snapshot: at least as much reachable, and more somewhere (stale
    // frames below the stack pointer hold old pointers).
    let both = dir.path();
    let rows = duck(
        "select sum(case when o.reachable_allocations < e.reachable_allocations then 1 else 0 end), \
         sum(case when o.reachable_allocations > e.reachable_allocations then 1 else 0 end) \
         from '{d}/exact/snapshots/*.parquet' e join '{d}/over/snapshots/*.parquet' o using (snapshot)",
        both,
    );
    assert_eq!(rows[0][0], serde_json::json!(0), "scanning more of the stack never reaches less");
    assert!(rows[0][1].as_i64().unwrap() > 0, "stale frames hold something somewhere: {rows:?}");
}
