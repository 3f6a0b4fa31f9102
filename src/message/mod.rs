//! Per-message logic that needs no socket: the JSON check (and compaction).

pub mod jsonline;
