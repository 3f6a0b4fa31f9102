//! Per-message logic that needs no socket: the JSON check and its pointer lookups,
//! decoding binary frames, heartbeat replies, message templates, and file names.

pub(crate) mod decode;
pub(crate) mod heartbeat;
pub mod jsonline;
pub(crate) mod route;
pub(crate) mod template;

use heartbeat::{Heartbeats, RuleSpec};
use jsonline::Pointers;

/// The pointer lookups one check pass does for a config: the route pointers first
/// (indices `0..route`), then the heartbeat rules' pointers.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    /// Every pointer the check finds.
    pub(crate) ptrs: Pointers,
    /// How many of them (from the start) make the route key.
    pub(crate) route: usize,
    /// The heartbeat rules, resolved against `ptrs`.
    pub(crate) heartbeats: Heartbeats,
}

impl Lookups {
    /// Resolves `route_by` and the heartbeat rules into one set of pointers.
    pub(crate) fn new(route_by: &[String], rules: &[RuleSpec]) -> Result<Lookups, String> {
        let mut ptrs = Pointers::default();
        for p in route_by {
            ptrs.add(p)?;
        }
        let route = route_by.len();
        if ptrs.len() != route {
            return Err("route_by names the same pointer twice".into());
        }
        let heartbeats = Heartbeats::new(rules, &mut ptrs)?;
        Ok(Lookups {
            ptrs,
            route,
            heartbeats,
        })
    }
}
