//! Per-message logic that needs no socket: the JSON check and its pointer lookups,
//! decoding binary frames, heartbeat replies, message templates, and file names.

pub(crate) mod decode;
pub(crate) mod heartbeat;
pub mod json;
// The path examples/check_speed.rs (through lib.rs) and the rest of the crate use.
pub use json as jsonline;
pub(crate) mod route;
pub(crate) mod template;

use std::borrow::Cow;
use std::ops::Range;

use heartbeat::{Heartbeats, RuleSpec};
use jsonline::{Pointers, unquoted};

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
    learn: Option<Learn>,
}

impl Lookups {
    /// Resolves `route_by`, the heartbeat rules and `route_ids` into one set of
    /// pointers.
    pub(crate) fn new(
        route_by: &[String],
        rules: &[RuleSpec],
        ids: Option<&RouteIdsSpec>,
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
            learn,
        })
    }

    /// Whether ids are learnt (`route_ids`): worth a look at every message.
    #[inline]
    pub(crate) fn learns(&self) -> bool {
        self.learn.is_some()
    }

    /// The id that `msg` teaches, and the key it stands for (in `key`), if `msg`
    /// matches `route_ids`. `escaped` is the check's [`jsonline::Valid::escaped`]:
    /// values are compared and joined as the strings they are.
    pub(crate) fn learned<'m>(
        &self,
        msg: &'m [u8],
        found: &[Option<Range<usize>>],
        escaped: u32,
        sep: &[u8],
        key: &mut Vec<u8>,
    ) -> Option<Cow<'m, [u8]>> {
        let l = self.learn.as_ref()?;
        let value = |i: usize| found[i].clone().map(|r| &msg[r]);
        let esc = |i: usize| escaped >> i & 1 != 0;
        if !l
            .when
            .iter()
            .all(|(i, v)| value(*i).is_some_and(|m| jsonline::equals(m, esc(*i), v)))
        {
            return None;
        }
        let raw = value(l.id)?;
        let id = if esc(l.id) {
            Cow::Owned(jsonline::text(raw, true, &mut Vec::new()).to_vec())
        } else {
            Cow::Borrowed(unquoted(raw))
        };
        key.clear();
        for (n, &i) in l.key.iter().enumerate() {
            if n > 0 {
                key.extend_from_slice(sep);
            }
            jsonline::push_text(value(i)?, esc(i), key);
        }
        Some(id)
    }
}
