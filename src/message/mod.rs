//! Per-message logic that needs no socket: the JSON check and its pointer lookups,
//! decoding binary frames, heartbeat replies, message templates, and file names.

pub(crate) mod decode;
pub(crate) mod dedupe;
pub(crate) mod heartbeat;
pub mod jsonline;
pub(crate) mod reconnect_on;
pub(crate) mod route;
pub(crate) mod template;

use std::ops::Range;

use heartbeat::{Heartbeats, RuleSpec};
use jsonline::{Pointers, unquoted};
use reconnect_on::{NoticeSpec, ReconnectOn};

/// `route_ids` as configured: messages that match `when` say that the value at `id`
/// stands, on this connection, for the route key made of the values at `key` (Bitfinex:
/// `{"event":"subscribed","chanId":17,"channel":"trades","symbol":"tBTCUSD"}`, then
/// data as `[17,...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteIdsSpec {
    /// Pointer -> compact JSON text it must equal.
    pub(crate) when: Vec<(String, String)>,
    /// Where the id is.
    pub(crate) id: String,
    /// The pointers whose values, joined by the route separator, make the key.
    pub(crate) key: Vec<String>,
}

/// [`RouteIdsSpec`] resolved to pointer indices.
#[derive(Debug)]
struct Learn {
    when: Vec<(usize, Vec<u8>)>,
    id: usize,
    key: Vec<usize>,
}

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
    /// The notices that start a planned reconnect, resolved against `ptrs`.
    pub(crate) reconnect_on: ReconnectOn,
    learn: Option<Learn>,
}

impl Lookups {
    /// Resolves `route_by`, the heartbeat rules, `route_ids` and the reconnect notices
    /// into one set of pointers.
    pub(crate) fn new(
        route_by: &[String],
        rules: &[RuleSpec],
        ids: Option<&RouteIdsSpec>,
        notices: &[NoticeSpec],
    ) -> Result<Lookups, String> {
        let mut ptrs = Pointers::default();
        for p in route_by {
            ptrs.add(p)?;
        }
        let route = route_by.len();
        if ptrs.len() != route {
            return Err("route_by names the same pointer twice".into());
        }
        let heartbeats = Heartbeats::new(rules, &mut ptrs)?;
        let reconnect_on = ReconnectOn::new(notices, &mut ptrs)?;
        let learn = match ids {
            None => None,
            Some(spec) => Some(Learn {
                when: spec
                    .when
                    .iter()
                    .map(|(p, v)| Ok((ptrs.add(p)?, v.clone().into_bytes())))
                    .collect::<Result<_, String>>()?,
                id: ptrs.add(&spec.id)?,
                key: spec
                    .key
                    .iter()
                    .map(|p| ptrs.add(p))
                    .collect::<Result<_, _>>()?,
            }),
        };
        Ok(Lookups {
            ptrs,
            route,
            heartbeats,
            reconnect_on,
            learn,
        })
    }

    /// Whether ids are learnt (`route_ids`): worth a look at every message.
    #[inline]
    pub(crate) fn learns(&self) -> bool {
        self.learn.is_some()
    }

    /// The id that `msg` teaches, and the key it stands for (in `key`), if `msg`
    /// matches `route_ids`.
    pub(crate) fn learned<'m>(
        &self,
        msg: &'m [u8],
        found: &[Option<Range<usize>>],
        sep: &[u8],
        key: &mut Vec<u8>,
    ) -> Option<&'m [u8]> {
        let l = self.learn.as_ref()?;
        let value = |i: usize| found[i].clone().map(|r| &msg[r]);
        if !l.when.iter().all(|(i, v)| value(*i) == Some(&v[..])) {
            return None;
        }
        let id = unquoted(value(l.id)?);
        key.clear();
        for (n, &i) in l.key.iter().enumerate() {
            if n > 0 {
                key.extend_from_slice(sep);
            }
            key.extend_from_slice(unquoted(value(i)?));
        }
        Some(id)
    }
}
