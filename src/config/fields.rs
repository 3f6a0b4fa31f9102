//! Reading the config object field by field. Each field is declared by one call, with
//! its name, type (the method), default, valid range and its README meaning; the
//! reader takes the field out of the object, so whatever is left at the end is unknown,
//! and the list of known fields is the list of calls made.

use std::path::Path;

use serde_json::{Map, Value};

use super::ConfigError;

/// One declared field, as the README documents it.
#[derive(Debug, Clone)]
pub(crate) struct FieldDoc {
    /// The JSON key.
    pub(crate) name: &'static str,
    /// What it means: the README's words, checked against the README by a test.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) meaning: &'static str,
}

/// Takes fields out of the config object.
pub(crate) struct Fields<'a> {
    path: &'a Path,
    map: Map<String, Value>,
    /// Every field declared so far.
    pub(crate) declared: Vec<FieldDoc>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(path: &'a Path, map: Map<String, Value>) -> Fields<'a> {
        Fields {
            path,
            map,
            declared: Vec::new(),
        }
    }

    /// An error about `field`.
    pub(crate) fn err(&self, field: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::field(self.path, field, problem)
    }

    /// Declares `name` and takes its value out of the object, if present.
    pub(crate) fn take(&mut self, name: &'static str, meaning: &'static str) -> Option<Value> {
        self.declared.push(FieldDoc { name, meaning });
        self.map.remove(name)
    }

    /// A string field.
    pub(crate) fn string(
        &mut self,
        name: &'static str,
        default: &str,
        meaning: &'static str,
    ) -> Result<String, ConfigError> {
        match self.take(name, meaning) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(self.err(name, format!("expected a string, got {}", kind(&v)))),
        }
    }

    /// A boolean field.
    pub(crate) fn bool(
        &mut self,
        name: &'static str,
        default: bool,
        meaning: &'static str,
    ) -> Result<bool, ConfigError> {
        match self.take(name, meaning) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(b),
            Some(v) => Err(self.err(name, format!("expected true or false, got {}", kind(&v)))),
        }
    }

    /// A whole number within `range`.
    pub(crate) fn uint(
        &mut self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        meaning: &'static str,
    ) -> Result<u64, ConfigError> {
        let n = match self.take(name, meaning) {
            None => return Ok(default),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| self.err(name, format!("expected a whole number, got {n}")))?,
            Some(v) => {
                return Err(self.err(name, format!("expected a whole number, got {}", kind(&v))));
            }
        };
        if !range.contains(&n) {
            return Err(self.err(
                name,
                format!("{n} is out of range {}..={}", range.start(), range.end()),
            ));
        }
        Ok(n)
    }

    /// Seconds, integer or fraction, within `range`.
    pub(crate) fn seconds(
        &mut self,
        name: &'static str,
        default: f64,
        range: std::ops::RangeInclusive<f64>,
        meaning: &'static str,
    ) -> Result<f64, ConfigError> {
        let s = match self.take(name, meaning) {
            None => return Ok(default),
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(v) => {
                return Err(self.err(
                    name,
                    format!("expected seconds (a number), got {}", kind(&v)),
                ));
            }
        };
        if !range.contains(&s) {
            return Err(self.err(
                name,
                format!(
                    "{s} seconds is out of range {}..={}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(s)
    }

    /// One of a few words, each standing for a value of `T`.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        name: &'static str,
        default: T,
        options: &[(&str, T)],
        meaning: &'static str,
    ) -> Result<T, ConfigError> {
        let Some(v) = self.take(name, meaning) else {
            return Ok(default);
        };
        let words = || {
            let w: Vec<String> = options.iter().map(|(w, _)| format!("\"{w}\"")).collect();
            w.join(" or ")
        };
        match &v {
            Value::String(s) => options
                .iter()
                .find(|(w, _)| w == s)
                .map(|(_, t)| *t)
                .ok_or_else(|| self.err(name, format!("\"{s}\" is not {}", words()))),
            v => Err(self.err(name, format!("expected {}, got {}", words(), kind(v)))),
        }
    }

    /// Fails on the first field that no declaration took.
    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        if let Some(unknown) = self.map.keys().next() {
            let known: Vec<&str> = self.declared.iter().map(|d| d.name).collect();
            return Err(self.err(
                unknown,
                format!("unknown field (known fields: {})", known.join(", ")),
            ));
        }
        Ok(())
    }
}

/// "a string", "an array", ... for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The strings of a JSON array, or the kind of the first item that is not one.
pub(crate) fn strings(items: Vec<Value>) -> Result<Vec<String>, &'static str> {
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            v => Err(kind(&v)),
        })
        .collect()
}

/// An `equals`/`when` object: pointer -> the compact JSON text of a scalar.
pub(crate) fn scalars(m: Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    m.into_iter()
        .map(|(p, v)| {
            if v.is_object() || v.is_array() {
                Err(format!(
                    "\"{p}\": only a string, number, true, false or null can be compared"
                ))
            } else {
                Ok((p, v.to_string()))
            }
        })
        .collect()
}
