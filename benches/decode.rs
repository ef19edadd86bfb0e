//! Decoding throughput of one snapshot, whole and on the metrics-only path, in
//! bytes of snapshot per second: busy SAMD51 heaps of every layout (the heaps of
//! real boards: thousands of small objects, mostly full; see `Workload::Busy`),
//! then a late snapshot of the light workload on each board, as one row each.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use heapvis::decode::{DecodeOptions, Decoder};
use heapvis::synth::{simulate_in_memory, Board, Flavor, SynthConfig, Workload};

fn bench_case(c: &mut Criterion, board: Board, flavor: Flavor, workload: Workload) {
    let late = if board == Board::Samd51 { 1500 } else { 600 };
    let mut config = SynthConfig::new(board, late, 11);
    (config.flavor, config.workload) = (flavor, workload);
    if workload == Workload::Busy {
        // A board that has run a while: the heap is busy from the first snapshot.
        (config.snapshots, config.start_after) = (4, 200_000);
    }
    let heapvis::synth::InMemoryCapture { layout, ram, .. } = simulate_in_memory(&config).expect("synthetic capture");
    let profile = flavor.profile();
    let fw = layout.firmware(&profile).expect("firmware");
    let size = (layout.ram_end - layout.ram_start) as usize;
    let snapshot = &ram[ram.len() - size..];
    let full = Decoder::new(&fw, &profile, DecodeOptions::default());
    let allocations = full.decode(0, snapshot).expect("a decodable snapshot").blocks.len();
    let name = format!("decode/{}/{flavor:?}/{workload:?}/{allocations}-allocations", board.name());
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("full", |b| b.iter(|| full.decode(0, std::hint::black_box(snapshot)).unwrap()));
    let metrics = Decoder::new(&fw, &profile, DecodeOptions { metrics_only: true, ..DecodeOptions::default() });
    group.bench_function("metrics_only", |b| b.iter(|| metrics.decode(0, std::hint::black_box(snapshot)).unwrap()));
    group.finish();
}

fn decode(c: &mut Criterion) {
    for flavor in [Flavor::CircuitPython3, Flavor::MicroPython, Flavor::MicroPython64, Flavor::CircuitPython10] {
        bench_case(c, Board::Samd51, flavor, Workload::Busy);
    }
    bench_case(c, Board::Samd21, Flavor::CircuitPython3, Workload::Light);
    bench_case(c, Board::Samd51, Flavor::CircuitPython3, Workload::Light);
}

criterion_group!(benches, decode);
criterion_main!(benches);
