//! Frame rendering: frames/s for SAMD21 and SAMD51 synthetic captures at the default
//! scale, encoding excluded, against decoding alone; one thread per snapshot and
//! all cores over a window of snapshots (how the pipeline runs it).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use heapvis::decode::{DecodeOptions, Decoder};
use heapvis::profile::Profile;
use heapvis::render::{png_bytes, ChartPoint, FrameLayout};
use heapvis::synth::{simulate_in_memory, Board, SynthConfig};
use rayon::prelude::*;

fn bench_board(c: &mut Criterion, board: Board, snapshots: u64) {
    let capture = simulate_in_memory(&SynthConfig::new(board, snapshots, 11)).expect("synthetic capture");
    let profile = Profile::default();
    let fw = capture.layout.firmware(&profile).expect("firmware");
    let size = (capture.layout.ram_end - capture.layout.ram_start) as usize;
    let snaps: Vec<&[u8]> = capture.ram.chunks(size).collect();
    let decoder = Decoder::new(&fw, &profile, DecodeOptions::default());
    let reports: Vec<_> = snaps.iter().enumerate().map(|(i, s)| decoder.decode(i as u64, s).unwrap()).collect();
    let chart: Vec<ChartPoint> = reports
        .iter()
        .map(|r| ChartPoint { snapshot: r.index, free: r.gc_info.free, largest_free: r.gc_info.max_free * 16 })
        .collect();
    let style = heapvis::render::FrameStyle::new(8, 0..reports.len() as u64, reports.len() as u64);
    let layout = FrameLayout::new(&reports[0].geometry, &style, &chart);
    let last = snaps.len() - 1;

    let mut g = c.benchmark_group(format!("frame/{}", board.name()));
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode", |b| b.iter(|| decoder.decode(last as u64, snaps[last]).unwrap()));
    g.bench_function("decode+render", |b| {
        b.iter(|| layout.render(&decoder.decode(last as u64, snaps[last]).unwrap(), "bench"))
    });
    g.bench_function("render", |b| b.iter(|| layout.render(&reports[last], "bench")));
    g.bench_function("png_encode", |b| {
        let canvas = layout.render(&reports[last], "bench");
        b.iter(|| png_bytes(&canvas).unwrap())
    });
    // All cores over a window of 64 snapshots, as the pipeline runs.
    let window: Vec<usize> = (snaps.len().saturating_sub(64)..snaps.len()).collect();
    g.throughput(Throughput::Elements(window.len() as u64));
    g.bench_function("parallel_decode", |b| {
        b.iter(|| window.par_iter().map(|&i| decoder.decode(i as u64, snaps[i]).unwrap().blocks.len()).sum::<usize>())
    });
    g.bench_function("parallel_decode+render", |b| {
        b.iter(|| {
            window
                .par_iter()
                .map(|&i| layout.render(&decoder.decode(i as u64, snaps[i]).unwrap(), "bench").pixels.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

fn frames(c: &mut Criterion) {
    bench_board(c, Board::Samd21, 600);
    bench_board(c, Board::Samd51, 1500);
}

criterion_group!(benches, frames);
criterion_main!(benches);
