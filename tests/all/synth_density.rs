//! The busy simulated heaps look like real ones: held to the figures of real
//! busy boards (`../shared/real-heaps.md`, copied into the constants below, and
//! the README's "Synthetic captures"), for every layout the simulator builds.
//! The figures come from the simulator's own registry at each snapshot, not
//! from the decoder under test.

use std::collections::BTreeMap;

use heapvis::decode::HeapGeometry;
use heapvis::synth::gc::SnapshotSink;
use heapvis::synth::{simulate, Board, Flavor, Layout, SynthConfig, TruthBlock, Workload};

/// Real busy MicroPython heaps (1.28 on Cortex-M3 and RISC-V, 1.9.4): 2,727 to
/// 3,300 allocations per snapshot on average in 112 to 143 KB, 63 to 68 % used,
/// 86 to 87 % of allocations one block long, 7.5 to 8.2 % two, 2.7 to 2.9 %
/// 9 to 32 blocks, fragmentation 0.85 to 0.88.
const REAL_ALLOCATIONS: std::ops::RangeInclusive<f64> = 2_727.0..=3_300.0;
const REAL_USED: std::ops::RangeInclusive<f64> = 0.63..=0.68;
const REAL_ONE_BLOCK: std::ops::RangeInclusive<f64> = 0.86..=0.87;
const REAL_TWO_BLOCKS: std::ops::RangeInclusive<f64> = 0.075..=0.082;
const REAL_9_TO_32_BLOCKS: std::ops::RangeInclusive<f64> = 0.027..=0.029;

/// Per-snapshot figures from the registry of live (not yet collected) blocks.
#[derive(Default)]
struct Density {
    pool_blocks: u64,
    bytes_per_block: u64,
    /// The first area's pool (the others' runs are counted between allocations).
    pool: std::ops::Range<u64>,
    snapshots: u64,
    allocations: f64,
    used: f64,
    one_block: f64,
    two_blocks: f64,
    large: f64,
    fragmentation: f64,
}

impl SnapshotSink for Density {
    fn snapshot(&mut self, _ram: &[u8], live: &BTreeMap<u64, TruthBlock>) {
        self.snapshots += 1;
        let used: u64 = live.values().map(|t| t.blocks).sum();
        self.allocations += live.len() as f64;
        self.used += used as f64 / self.pool_blocks as f64;
        let share =
            |of: &dyn Fn(u64) -> bool| live.values().filter(|t| of(t.blocks)).count() as f64 / live.len().max(1) as f64;
        self.one_block += share(&|b| b == 1);
        self.two_blocks += share(&|b| b == 2);
        self.large += share(&|b| (9..=32).contains(&b));
        // Free runs between allocations, by address, and at the pool's ends.
        let bpb = self.bytes_per_block;
        let mut largest = 0;
        let mut end = self.pool.start;
        for t in live.values() {
            largest = largest.max(t.address.saturating_sub(end) / bpb);
            end = t.address + t.blocks * bpb;
        }
        largest = largest.max(self.pool.end.saturating_sub(end) / bpb);
        let free = self.pool_blocks.saturating_sub(used).max(1);
        self.fragmentation += 1.0 - largest.min(free) as f64 / free as f64;
    }
    fn full(&self) -> bool {
        false
    }
}

fn density(flavor: Flavor, workload: Workload) -> (Density, heapvis::synth::SynthSummary) {
    let mut config = SynthConfig::new(Board::Samd51, 1500, 5);
    (config.flavor, config.workload, config.every) = (flavor, workload, 40);
    let layout = Layout::with_flavor(config.board, config.heap_misalign, config.seed, flavor);
    let g = HeapGeometry::from_gc_init(layout.heap_start, layout.heap_bytes, &flavor.heap_layout()).unwrap();
    let second = flavor.second_area_bytes(Board::Samd51) / g.bytes_per_block;
    let pool = g.first.pool_start..g.first.pool_end;
    let mut d = Density {
        pool_blocks: g.pool_blocks() + second,
        bytes_per_block: g.bytes_per_block,
        pool,
        ..Density::default()
    };
    let summary = simulate(&config, &layout, &mut d).unwrap();
    (d, summary)
}

#[test]
fn busy_simulated_heaps_are_as_full_and_as_small_grained_as_real_ones() {
    for flavor in [Flavor::CircuitPython3, Flavor::MicroPython, Flavor::MicroPython64, Flavor::CircuitPython10] {
        let (d, summary) = density(flavor, Workload::Busy);
        assert_eq!(d.snapshots, 1500, "{flavor:?}: the program runs to the end");
        let n = d.snapshots as f64;
        let (allocations, used, fragmentation) = (d.allocations / n, d.used / n, d.fragmentation / n);
        let (one_block, two_blocks, large) = (d.one_block / n, d.two_blocks / n, d.large / n);
        let what = format!(
            "{flavor:?}: {allocations:.0} allocations, {:.0} % used, {:.1} / {:.1} / {:.1} % of 1, 2 and 9 to 32 blocks, fragmentation {fragmentation:.2}",
            100.0 * used,
            100.0 * one_block,
            100.0 * two_blocks,
            100.0 * large
        );
        // Close to the real figures; a 64-bit port's objects take half as many
        // blocks of twice the size, so it holds fewer.
        let fewest = if flavor == Flavor::MicroPython64 { 0.5 } else { 0.85 };
        assert!(
            allocations >= fewest * REAL_ALLOCATIONS.start() && allocations <= 1.2 * REAL_ALLOCATIONS.end(),
            "{what}"
        );
        assert!(used >= REAL_USED.start() - 0.1 && used <= REAL_USED.end() + 0.1, "{what}");
        assert!((one_block - REAL_ONE_BLOCK.start()).abs() < 0.03, "{what}");
        assert!((two_blocks - REAL_TWO_BLOCKS.start()).abs() < 0.03, "{what}");
        // The arrays that hold much of a real heap's bytes are there.
        assert!(large >= 0.5 * REAL_9_TO_32_BLOCKS.start() && large <= 2.0 * REAL_9_TO_32_BLOCKS.end(), "{what}");
        assert!(fragmentation > 0.7, "{what}");
        assert!(summary.out_of_memory >= 1 && summary.collections >= 10, "{what}: {summary:?}");
    }
    // The light workload stays light: it is a row of the benches, not the headline.
    let (d, _) = density(Flavor::CircuitPython3, Workload::Light);
    assert!(d.allocations / (d.snapshots as f64) < 400.0);
}
