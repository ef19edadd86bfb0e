//! Time spent per stage of a decode, when asked for (`benches/stages.rs`
//! reports it per layout): a lap of a monotonic clock after each stage, kept
//! in the decode cache. Off by default; on, it costs a clock read per stage.

use std::time::{Duration, Instant};

/// The stages of a decode, in order, and a run decoder's own steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The geometry, the allocation table walk, the plausibility check, the
    /// finaliser and collect tables.
    Walk,
    /// Which allocation covers each block, the table bits.
    Owners,
    /// A run decoder's planner: pairing with the snapshot before, what the
    /// change reaches.
    Plan,
    BaseKinds,
    /// Roles, qstr pools and (whole decodes) qstr rows.
    Roles,
    /// Strings and names of the allocations made.
    Names,
    /// Pointer edges and roots.
    Edges,
    /// Block rows, and what a run decoder carries (the reads).
    Rows,
    /// A run decoder's diff into lifetime changes and the type histogram.
    Diff,
    /// Reachability, dominators, retained sizes and owners (see [`crate::retain`]).
    Retention,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::Walk,
        Stage::Owners,
        Stage::Plan,
        Stage::BaseKinds,
        Stage::Roles,
        Stage::Names,
        Stage::Edges,
        Stage::Rows,
        Stage::Diff,
        Stage::Retention,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Walk => "table walk",
            Stage::Owners => "owners",
            Stage::Plan => "plan",
            Stage::BaseKinds => "base kinds",
            Stage::Roles => "roles",
            Stage::Names => "strings, names",
            Stage::Edges => "edges, roots",
            Stage::Rows => "rows",
            Stage::Diff => "diff",
            Stage::Retention => "retention",
        }
    }
}

/// Time per stage, summed over the decodes that asked for it.
#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    pub total: [Duration; Stage::ALL.len()],
    last: Option<Instant>,
}

impl StageTimes {
    /// Starts a decode's first lap.
    pub fn start(&mut self) {
        self.last = Some(Instant::now());
    }

    /// Ends `stage`'s lap: the time since the last lap is its.
    pub fn lap(&mut self, stage: Stage) {
        let now = Instant::now();
        if let Some(last) = self.last.replace(now) {
            self.total[stage as usize] += now - last;
        }
    }

    /// Time spent in `stage`.
    pub fn of(&self, stage: Stage) -> Duration {
        self.total[stage as usize]
    }
}

/// Laps `stage` when times are kept.
pub(super) fn lap(times: &mut Option<StageTimes>, stage: Stage) {
    if let Some(t) = times {
        t.lap(stage);
    }
}
