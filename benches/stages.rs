//! CPU per snapshot, per stage of the decode, on busy SAMD51 heaps of every
//! layout (a board that has run 200,000 heap changes, a snapshot at every
//! change): decoded each from the one before, as the default tables are, and
//! whole. One thread, the tables' writer left out (its share is in
//! `benches/soak.rs`'s end-to-end figures). From the one before, with the
//! retention the default tables have (its cost is in `diff`); whole, without.
//!
//! `cargo bench --bench stages`; `HEAPVIS_STAGE_SNAPSHOTS` sets the snapshots
//! per layout (default 1,000).

use std::time::Duration;

use heapvis::decode::stages::{Stage, StageTimes};
use heapvis::decode::{DecodeCache, DecodeOptions, Decoder};
use heapvis::incremental::RunDecoder;
use heapvis::retain::GcRoots;
use heapvis::synth::{simulate_in_memory, Board, Flavor, SynthConfig, Workload};
use heapvis::tables::TableSet;

fn main() {
    let snapshots: u64 = std::env::var("HEAPVIS_STAGE_SNAPSHOTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let stages: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
    println!("| layout | allocations (avg) | decode | {} | total | decoded from the one before |", stages.join(" | "));
    println!("|{}", " --- |".repeat(stages.len() + 5));
    for flavor in [Flavor::CircuitPython3, Flavor::MicroPython, Flavor::MicroPython64, Flavor::CircuitPython10] {
        let mut config = SynthConfig::new(Board::Samd51, snapshots, 11);
        (config.flavor, config.workload, config.start_after) = (flavor, Workload::Busy, 200_000);
        config.events = true;
        let capture = simulate_in_memory(&config).expect("synthetic capture");
        let profile = flavor.profile();
        let fw = capture.layout.firmware(&profile).expect("firmware");
        let size = (capture.layout.ram_end - capture.layout.ram_start) as usize;
        let decoder = Decoder::new(&fw, &profile, DecodeOptions::default());
        let snapshots: Vec<&[u8]> = capture.ram.chunks_exact(size).collect();
        let allocations: u64 = capture.truth.iter().map(|t| t.len() as u64).sum::<u64>() / snapshots.len() as u64;

        // From the one before, as the default tables are made.
        let mut run = RunDecoder::new(&decoder, TableSet::DEFAULT).expect("a run decoder");
        run.time_stages();
        let mut focused = 0;
        // Retention from the GC's roots, the stack pointer from the simulator.
        let sp = |i: usize| capture.summary.events.get(i).and_then(|e| e.sp);
        for (i, ram) in snapshots.iter().enumerate() {
            let roots = GcRoots::new(&fw, &profile, sp(i));
            run.prepare(i as u64, ram, roots.as_ref()).expect("decodable");
            focused += run.last_focused() as u64;
        }
        let share = focused as f64 / snapshots.len() as f64;
        row(
            flavor,
            allocations,
            "from the one before",
            run.stage_times().expect("timed"),
            snapshots.len(),
            Some(share),
        );

        // Whole.
        let mut cache = DecodeCache::default();
        cache.time_stages();
        for (i, ram) in snapshots.iter().enumerate() {
            decoder.decode_with(i as u64, ram, &mut cache).expect("decodable");
        }
        row(flavor, allocations, "whole", cache.stage_times.as_ref().expect("timed"), snapshots.len(), None);
    }
}

fn row(flavor: Flavor, allocations: u64, how: &str, t: &StageTimes, n: usize, share: Option<f64>) {
    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6 / n as f64);
    let cells: Vec<String> = Stage::ALL.iter().map(|&s| us(t.of(s))).collect();
    let total: Duration = t.total.iter().sum();
    let share = share.map_or("-".to_string(), |s| format!("{:.1} %", s * 100.0));
    println!("| {flavor:?} | {allocations} | {how} | {} | {} | {share} |", cells.join(" | "), us(total));
}
