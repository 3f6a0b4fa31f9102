//! `route_ids`: per-connection ids learnt from the messages. A message that matches
//! `when` says that the value at `id` stands, on this connection, for the route key
//! made of the values at `key` (Bitfinex:
//! `{"event":"subscribed","chanId":17,"channel":"trades","symbol":"tBTCUSD"}`, then data
//! as `[17,...]`). Parsed here from its config object; applied by [`super::route`].

use std::ops::Range;

use serde_json::Value;

use super::jsonline::{Pointers, unquoted};
use crate::config::{kind, scalars, strings};

/// `route_ids` as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteIdsSpec {
    /// Pointer -> compact JSON text it must equal.
    pub(crate) when: Vec<(String, String)>,
    /// Where the id is.
    pub(crate) id: String,
    /// The pointers whose values, joined by the route separator, make the key.
    pub(crate) key: Vec<String>,
}

impl RouteIdsSpec {
    /// Parses the `route_ids` object.
    pub(crate) fn parse(v: Value) -> Result<RouteIdsSpec, String> {
        let Value::Object(mut m) = v else {
            return Err(format!("expected an object, got {}", kind(&v)));
        };
        let when = match m.remove("when") {
            Some(Value::Object(w)) if !w.is_empty() => scalars(w)?,
            _ => return Err("\"when\" must be an object of pointers to values".into()),
        };
        let id = match m.remove("id") {
            Some(Value::String(s)) => s,
            _ => return Err("\"id\" must be a JSON pointer".into()),
        };
        let key = match m.remove("key") {
            Some(Value::Array(a)) if !a.is_empty() => {
                strings(a).map_err(|k| format!("\"key\": expected pointers, found {k}"))?
            }
            _ => return Err("\"key\" must be an array of JSON pointers".into()),
        };
        if let Some(k) = m.keys().next() {
            return Err(format!("unknown key \"{k}\" (known: when, id, key)"));
        }
        Ok(RouteIdsSpec { when, id, key })
    }
}

/// [`RouteIdsSpec`] resolved to pointer indices.
#[derive(Debug, Clone)]
pub(crate) struct RouteIds {
    when: Vec<(usize, Vec<u8>)>,
    id: usize,
    key: Vec<usize>,
}

impl RouteIds {
    /// Resolves the spec's pointers, adding them to `ptrs`.
    pub(crate) fn new(spec: &RouteIdsSpec, ptrs: &mut Pointers) -> Result<RouteIds, String> {
        Ok(RouteIds {
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
        })
    }

    /// The id that `msg` teaches, and the key it stands for (in `key`), if `msg`
    /// matches `when`.
    pub(crate) fn learned<'m>(
        &self,
        msg: &'m [u8],
        found: &[Option<Range<usize>>],
        sep: &[u8],
        key: &mut Vec<u8>,
    ) -> Option<&'m [u8]> {
        let value = |i: usize| found[i].clone().map(|r| &msg[r]);
        if !self.when.iter().all(|(i, v)| value(*i) == Some(&v[..])) {
            return None;
        }
        let id = unquoted(value(self.id)?);
        key.clear();
        for (n, &i) in self.key.iter().enumerate() {
            if n > 0 {
                key.extend_from_slice(sep);
            }
            key.extend_from_slice(unquoted(value(i)?));
        }
        Some(id)
    }
}
