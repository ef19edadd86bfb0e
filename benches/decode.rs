//! Decoding throughput: one SAMD21 and one SAMD51 snapshot (late in a synthetic run,
//! so the heap is full of objects), full decode and the metrics-only path, reported
//! in bytes of snapshot per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use heapvis::decode::{DecodeOptions, Decoder};
use heapvis::profile::Profile;
use heapvis::synth::{simulate_in_memory, Board, SynthConfig};

fn bench_board(c: &mut Criterion, board: Board, snapshots: u64) {
    let config = SynthConfig::new(board, snapshots, 11);
    let heapvis::synth::InMemoryCapture { layout, ram, .. } = simulate_in_memory(&config).expect("synthetic capture");
    let profile = Profile::default();
    let fw = layout.firmware(&profile).expect("firmware");
    let size = (layout.ram_end - layout.ram_start) as usize;
    let snapshot = &ram[ram.len() - size..];
    let mut group = c.benchmark_group(format!("decode/{}", board.name()));
    group.throughput(Throughput::Bytes(size as u64));
    let full = Decoder::new(&fw, &profile, DecodeOptions::default());
    group.bench_function("full", |b| b.iter(|| full.decode(0, std::hint::black_box(snapshot)).unwrap()));
    let metrics = Decoder::new(&fw, &profile, DecodeOptions { metrics_only: true, ..DecodeOptions::default() });
    group.bench_function("metrics_only", |b| b.iter(|| metrics.decode(0, std::hint::black_box(snapshot)).unwrap()));
    group.finish();
}

fn decode(c: &mut Criterion) {
    bench_board(c, Board::Samd21, 600);
    bench_board(c, Board::Samd51, 1500);
}

criterion_group!(benches, decode);
criterion_main!(benches);
