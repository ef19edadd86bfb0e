//! Making captures: the gdb script that snapshots a board's RAM at every heap
//! change and writes the sidecar heapvis reads beside the dump.

pub mod gdb_script;
