//! Plausibility: is this snapshot one a GC could have left behind?
//!
//! A capture made slightly wrong (a snapshot zeroed or overwritten, RAM bounds
//! off, another build's layout) still decodes into rows, and those rows are
//! wrong: allocations die and are reborn, figures jump. Each check here is a
//! fact of py/gc.c that every real snapshot satisfies, so a snapshot failing one
//! is flagged (`snapshots.status = 'suspect: …'`, a warning, exit code 1) and
//! none of its rows are written.

use crate::error::DecodeError;
use crate::memory::Memory;
use crate::profile::Profile;

use super::geometry::AreaState;

/// The first check `ram` fails, or `None` if it passes them all:
/// - when the profile reads the GC state, it must add up (a GC that ran
///   `gc_init` leaves one that does), else the geometry was only computed from
///   the heap symbol;
/// - at most one run of tail blocks after a free block: the sweep frees a head
///   and then its tails, so only the one it is freeing can be caught half-done.
pub(super) fn check(
    profile: &Profile,
    mem: &Memory,
    state_address: u64,
    geometry_source: &str,
    orphan_tail_runs: u64,
) -> Option<DecodeError> {
    if profile.state.gc.read && geometry_source != "gc_state" {
        return Some(DecodeError::Suspect {
            check: "GC state",
            detail: format!(
                "{}'s GC state does not add up ({}), so this snapshot is not a heap left by gc_init; \
                 its geometry could only be guessed from the heap symbol",
                profile.symbols.state,
                describe_state(profile, mem, state_address)
            ),
        });
    }
    if orphan_tail_runs > 1 {
        return Some(DecodeError::Suspect {
            check: "allocation table",
            detail: format!(
                "{orphan_tail_runs} runs of tail blocks after a free block; a GC leaves at most one (mid-sweep)"
            ),
        });
    }
    None
}

/// The state's geometry words as read, for the message.
fn describe_state(profile: &Profile, mem: &Memory, state_address: u64) -> String {
    match AreaState::read(&mem.ram, state_address, &profile.state.gc, &profile.heap) {
        Some(s) => format!(
            "allocation table at 0x{:08x}, {} bytes; pool 0x{:08x}..0x{:08x}",
            s.alloc_table_start, s.alloc_table_byte_len, s.pool_start, s.pool_end
        ),
        None => "its words lie outside the snapshot".to_string(),
    }
}
