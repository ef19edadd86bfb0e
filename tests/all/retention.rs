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
    // The sidecar's fields, joined: every snapshot has its event.
    assert_eq!(q(&exact, "count(*) filter (where event is null)")[0][0], serde_json::json!(0));
    let events = q(&exact, "string_agg(distinct event::varchar, ',' order by event::varchar)");
    assert!(events[0][0].as_str().unwrap().contains("alloc"), "{events:?}");
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

/// `why` on the simulator's `history` list: each item is named as Python would
/// (`__main__.history[k]`, its index in the list), the path runs from
/// `__main__`'s table through the list and its items, the items' array is its
/// nearest dominator, and what it retains is what the `blocks` table says.
#[test]
fn why_names_the_path_as_python_would() {
    use heapvis::retain::why::why;
    let (dir, s) = capture(Flavor::CircuitPython3, Board::Samd21, 3);
    let last = s.dump.count() - 1;
    let r = s.decode_one(last).unwrap();
    let ret = r.retention.as_ref().unwrap();
    let roots = s.roots().of(last).unwrap();
    let why = |address| why(&r, &roots, address);
    let items = r.blocks.iter().find(|b| {
        b.kind == "list_items" && {
            let w = why(b.address).unwrap();
            w.python.as_deref() == Some("__main__.history")
        }
    });
    let items = items.expect("the history list's items");
    // Its items, by their word in the array.
    let bpb = r.geometry.bytes_per_block;
    let held: Vec<_> = r
        .edges
        .iter()
        .filter(|e| e.from_address == Some(items.address) && e.to_is_head())
        .filter_map(|e| Some((e.from_word?, e.to_address)))
        .collect();
    assert!(held.len() > 3, "history holds readings: {held:?}");
    let mut named = 0;
    for (k, address) in held {
        let w = why(address).unwrap();
        assert!(w.reachable);
        if w.path.len() == 1 {
            // Also on the stack (the loop's last reading): held from there directly.
            assert!(w.path[0].name.starts_with("stack (0x"), "{:?}", w.path);
            continue;
        }
        named += 1;
        assert_eq!(w.python.as_deref(), Some(format!("__main__.history[{k}]").as_str()), "{:?}", w.path);
        let names: Vec<&str> = w.path.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names[names.len() - 3..], ["__main__.history", "(items)", &format!("[{k}]")]);
        assert_eq!(w.path.last().unwrap().address, address);
        let i = r.blocks.iter().position(|b| b.address == address).unwrap();
        assert_eq!(w.retained_bytes, ret.retained_bytes[i]);
        assert!(w.retained_bytes >= r.blocks[i].blocks * bpb);
        // A reading held by the list alone: the items array is its nearest dominator.
        if matches!(ret.idom[i], heapvis::retain::Holder::Allocation(j) if j as usize == r.blocks.iter().position(|b| b.address == items.address).unwrap())
        {
            assert!(w.dominators[0].contains(&format!("0x{:08x}", items.address)), "{:?}", w.dominators);
        }
    }
    assert!(named > 3, "readings named through `history`: {named}");
    // The command prints the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapvis"))
        .args(["why", &format!("0x{:x}", items.address), "--snapshot", &last.to_string()])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("python: __main__.history\n") && text.contains("retains "), "{text}");
    // Garbage is said to be garbage.
    if let Some(g) = r.blocks.iter().zip(&ret.reachable).find(|(_, r)| !**r).map(|(b, _)| b) {
        let w = why(g.address).unwrap();
        assert!(!w.reachable && w.path.is_empty() && w.retained_bytes == 0);
    }
}

/// Every path `why` gives starts at a root the GC scans and passes through each
/// of the target's dominators (a dominator lies on every path from the roots):
/// for every reachable allocation of the last snapshot, on every layout. A path
/// from a stale stack word below the stack pointer would break this.
#[test]
fn why_paths_start_at_scanned_roots_and_pass_through_every_dominator() {
    use heapvis::retain::{why::why, Holder};
    for (flavor, seed) in [(Flavor::CircuitPython3, 5), (Flavor::MicroPython, 6), (Flavor::CircuitPython10, 7)] {
        let (_dir, s) = capture(flavor, Board::Samd21, seed);
        let last = s.dump.count() - 1;
        let r = s.decode_one(last).unwrap();
        let ret = r.retention.as_ref().unwrap();
        let roots = s.roots().of(last).unwrap();
        assert!(roots.exact(), "the sidecar gives the stack pointer");
        let mut checked = 0;
        for (i, b) in r.blocks.iter().enumerate().filter(|(i, _)| ret.reachable[*i]) {
            let w = why(&r, &roots, b.address).unwrap();
            assert_eq!(w.path.last().map(|p| p.address), Some(b.address), "{flavor:?}: {:?}", w.path);
            let first = r
                .edges
                .iter()
                .find(|e| e.root_address.is_some() && e.to_address == w.path[0].address && e.to_is_head());
            let root = first.and_then(|e| e.root_address).unwrap();
            // The first step is named after a scanned root word.
            let named = &w.path[0].name;
            assert!(
                roots.state.contains(&root) || roots.stack.contains(&root) || !named.starts_with("0x"),
                "{flavor:?}: path from an unscanned word {named}"
            );
            let on_path: Vec<u64> = w.path.iter().map(|p| p.address).collect();
            let mut d = ret.idom[i];
            let mut hops = 0;
            while let Holder::Allocation(j) = d {
                let a = r.blocks[j as usize].address;
                assert!(
                    on_path.contains(&a),
                    "{flavor:?}: dominator 0x{a:08x} of 0x{:08x} off its path {:?}",
                    b.address,
                    w.path
                );
                d = ret.idom[j as usize];
                hops += 1;
                assert!(hops <= r.blocks.len());
            }
            checked += 1;
        }
        assert!(checked > 100, "{flavor:?}: a busy heap's reachable allocations: {checked}");
    }
}

/// `leaks` on the simulator's leaking program (its global `history` list is
/// never cut, its global `cache` dict takes new keys): the two suspects are
/// those two, by their Python names, and nothing its start-up made ranks.
#[test]
fn the_leaks_are_the_growing_global_list_and_cache() {
    for seed in [4, 5] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SynthConfig::new(Board::Samd21, 1500, seed);
        (config.workload, config.every, config.leak) = (Workload::Busy, 2, true);
        synth::write_dir(&config, dir.path()).unwrap();
        let inputs = heapvis::firmware::InputPaths::resolve(&[dir.path().to_path_buf()]).unwrap();
        let s = Session::open_with(&inputs, None).unwrap();
        let out = dir.path().join("out");
        s.analyze(&out, &AnalyzeOptions::default(), &Silent).unwrap();
        let (suspects, warm) = heapvis::answers::leaks::suspects(&out).unwrap();
        assert!(warm > 0, "the warm-up ends at the first collection");
        let mut top: Vec<&str> = suspects.iter().take(2).map(|s| s.owner.as_str()).collect();
        top.sort();
        assert_eq!(top, ["__main__.cache", "__main__.history"], "seed {seed}: {suspects:#?}");
        assert_eq!(suspects.len(), 2, "nothing else grows steadily: {suspects:#?}");
        for s in &suspects {
            assert!(s.bytes_per_1000 > 0.0 && s.r2 >= heapvis::answers::leaks::MIN_R2 && s.bytes_to > s.bytes_from);
        }
        // The command says the same.
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_heapvis")).arg("leaks").arg(&out).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && text.contains(" 1. __main__.") && text.contains(" 2. __main__."), "{text}");
        // Each with an example at the last snapshot, held through the owner:
        // `why` on that address names the same path, and the allocation is of
        // the kind that grows most beneath the owner.
        let mut examples = suspects.clone();
        heapvis::answers::leaks::add_examples(&out, &mut examples, &s).unwrap();
        for x in &examples {
            let e = x.example.as_ref().unwrap_or_else(|| panic!("an example for {}", x.owner));
            assert!(e.path.starts_with(&format!("{}[", x.owner)) || e.path == x.owner, "{} vs {}", e.path, x.owner);
            assert_eq!(e.kind, x.growing_kinds[0].0);
            assert!(text.contains(&format!("example: {} ({} at 0x{:08x}", e.path, e.kind, e.address)), "{text}");
            let r = s.decode_one(e.snapshot).unwrap();
            let w = heapvis::retain::why::why(&r, &s.roots().of(e.snapshot).unwrap(), e.address).unwrap();
            assert_eq!((w.python.as_deref(), w.target.kind), (Some(e.path.as_str()), e.kind.as_str()));
        }
    }
    // A program that does not leak: its sawtooth `history` and bounded `cache` are no suspects.
    let (dir, s) = capture(Flavor::CircuitPython3, Board::Samd21, 9);
    let out = dir.path().join("steady");
    s.analyze(&out, &AnalyzeOptions::default(), &Silent).unwrap();
    let (suspects, _) = heapvis::answers::leaks::suspects(&out).unwrap();
    assert!(suspects.iter().all(|s| s.owner != "__main__.cache"), "{suspects:#?}");
}

/// A root the port declares outside `mp_state_ctx` and the stack (a static
/// buffer its `gc_collect` scans): an allocation only it points to is garbage
/// without it in the profile, and held by it with it, in a whole decode and in
/// the run's tables alike. A port root the build lacks is refused.
#[test]
fn a_port_root_holds_what_only_it_points_to() {
    let (dir, s) = capture(Flavor::CircuitPython3, Board::Samd21, 12);
    let last = s.dump.count() - 1;
    let r = s.decode_one(last).unwrap();
    let ret = r.retention.as_ref().unwrap();
    let g = r.blocks.iter().zip(&ret.reachable).find(|(_, reach)| !**reach).map(|(b, _)| b.clone());
    let g = g.expect("garbage at the last snapshot of a busy heap");
    // The board's USB buffer (.bss, outside the state and the stack) points at it.
    let buf = s.firmware.symbols.address_of("usb_rx_buf").unwrap();
    let patched = tempfile::tempdir().unwrap();
    for f in ["firmware.bin", "firmware.map", "ram.events.jsonl"] {
        std::fs::copy(dir.path().join(f), patched.path().join(f)).unwrap();
    }
    let mut ram = std::fs::read(dir.path().join("ram.bin")).unwrap();
    let at = (last * s.dump.snapshot_bytes() + (buf - s.firmware.ram_start)) as usize;
    ram[at..at + 4].copy_from_slice(&(g.address as u32).to_le_bytes());
    std::fs::write(patched.path().join("ram.bin"), &ram).unwrap();
    let inputs = heapvis::firmware::InputPaths::resolve(&[patched.path().to_path_buf()]).unwrap();
    let held = |profile: heapvis::profile::Profile, name: &str| {
        let s = Session::open_with(&inputs, Some(profile)).unwrap();
        let r = s.decode_one(last).unwrap();
        let ret = r.retention.as_ref().unwrap();
        let i = r.blocks.iter().position(|b| b.address == g.address).unwrap();
        let several: std::sync::Arc<str> = std::sync::Arc::from(heapvis::retain::SEVERAL_ROOTS);
        let h = ret.held(i, &several, |j| r.blocks[j].address);
        let whole = (h.reachable, h.holder_root.as_deref().map(str::to_string));
        let out = patched.path().join(name);
        s.analyze(&out, &AnalyzeOptions::default(), &Silent).unwrap();
        let row = &duck(&format!("select reachable, holder_root from read_parquet('{{d}}/allocations/*.parquet') where address = {} and last_snapshot = {last}", g.address), &out)[0];
        (whole, (row[0].as_bool().unwrap(), row[1].as_str().map(str::to_string)))
    };
    let plain = Flavor::CircuitPython3.profile();
    assert_eq!(held(plain.clone(), "plain"), ((false, None), (false, None)), "no port root: garbage");
    for (k, entry) in ["usb_rx_buf".to_string(), format!("usb_rx_buf..0x{:x}", buf + 64)].into_iter().enumerate() {
        let mut p = plain.clone();
        p.symbols.port_roots = vec![entry.clone()];
        let ((reach, holder), (row_reach, row_holder)) = held(p, &format!("port-{k}"));
        assert!(reach && row_reach, "{entry}: held");
        assert!(holder.as_deref().is_some_and(|h| h.starts_with("usb_rx_buf")), "{entry}: {holder:?}");
        assert_eq!(holder, row_holder, "{entry}: the tables say the same");
    }
    let mut p = plain.clone();
    p.symbols.port_roots = vec!["no_such_buffer".into()];
    let e = Session::open_with(&inputs, Some(p)).err().expect("refused").to_string();
    assert!(e.contains("port_roots `no_such_buffer`"), "{e}");
}

/// The `retainers` rows hold every reachable allocation once, each under the
/// nearest owner on its dominator chain; an allocation a root holds directly
/// (or several roots, none through another) is that root's own, whatever the
/// scopes name. Counted independently from each whole decode's dominators,
/// and, for the run's tables, against the `snapshots` table's reachable count.
#[test]
fn retainers_count_each_reachable_allocation_once_under_its_root() {
    for (k, flavor) in [Flavor::CircuitPython3, Flavor::MicroPython, Flavor::MicroPython64, Flavor::CircuitPython10]
        .into_iter()
        .enumerate()
    {
        let (dir, s) = capture(flavor, Board::Samd21, 20 + k as u64);
        let last = s.dump.count() - 1;
        let mut several_seen = false;
        for i in [0, last / 3, last] {
            let r = s.decode_one(i).unwrap();
            let ret = r.retention.as_ref().unwrap();
            let rows = r.retainers.as_ref().unwrap();
            let total: u64 = rows.iter().map(|x| x.allocations).sum();
            assert_eq!(total, ret.reachable.iter().filter(|&&x| x).count() as u64, "{flavor:?} snapshot {i}");
            let mut direct: std::collections::HashMap<&str, u64> = Default::default();
            for h in &ret.idom {
                match h {
                    heapvis::retain::Holder::Root(r) => *direct.entry(&ret.roots[*r as usize]).or_default() += 1,
                    heapvis::retain::Holder::Roots => *direct.entry(heapvis::retain::SEVERAL_ROOTS).or_default() += 1,
                    _ => {}
                }
            }
            several_seen |= direct.contains_key(heapvis::retain::SEVERAL_ROOTS);
            for (owner, held) in direct {
                let counted: u64 = rows.iter().filter(|x| &*x.owner == owner).map(|x| x.allocations).sum();
                assert!(counted >= held, "{flavor:?} snapshot {i}: {owner} holds {held} directly, {counted} counted");
            }
        }
        assert!(several_seen, "{flavor:?}: some allocation is held by several roots");
        let out = dir.path().join("out");
        s.analyze(&out, &AnalyzeOptions::default(), &Silent).unwrap();
        // The table holds changes: the figures at N are each pair's last row at or before N.
        let sql = "with r as (select * from read_parquet('{d}/retainers/*.parquet')),
            s as (select snapshot, reachable_allocations from read_parquet('{d}/snapshots/*.parquet')),
            grid as (select s.snapshot, p.owner, p.kind from s, (select distinct owner, kind from r) p),
            t as (select g.snapshot, sum(x.allocations) n from grid g asof left join r x
                  on g.owner = x.owner and g.kind = x.kind and g.snapshot >= x.snapshot group by 1)
            select count(*) filter (where s.reachable_allocations is distinct from coalesce(t.n, 0)), count(*)
            from s left join t using (snapshot)";
        let row = &duck(sql, &out)[0];
        let (wrong, all) = (row[0].as_i64(), row[1].as_i64());
        assert_eq!(
            (wrong, all),
            (Some(0), Some(s.dump.count() as i64)),
            "{flavor:?}: retainers sum to the reachable count"
        );
    }
}
