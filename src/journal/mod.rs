//! The coverage journal (which windows of time were recorded) and `wsrec gaps`.

pub(crate) mod coverage;
pub(crate) mod gap_rows;
pub(crate) mod gaps;
