//! Planned reconnects by the clock (`max_connection_age`): Binance and KuCoin close
//! every connection after 24 h, so a connection is replaced (make-before-break, see
//! [`super::handover`]) before that, at a random point within `connection_age_jitter`
//! so that recorders started together do not renew together; or at a chosen time of
//! day (UTC), away from the venue's busy hours.

use std::time::Duration;

use serde_json::Value;

/// Seconds in a day.
const DAY: u64 = 86_400;

/// When a connection is renewed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ConnectionAge {
    /// This long after connecting, up to `jitter` earlier.
    After {
        /// The age.
        age: Duration,
        /// Up to this much earlier, at random.
        jitter: Duration,
    },
    /// At this time of day, UTC (seconds after midnight), up to `jitter` earlier.
    Daily {
        /// Seconds after midnight UTC.
        at_s: u64,
        /// Up to this much earlier, at random.
        jitter: Duration,
    },
}

/// Parses `max_connection_age` (seconds, or `"HH:MM"`/`"HH:MM:SS"` UTC) with its
/// jitter (seconds). `0` = never.
pub(crate) fn parse(v: Value, jitter: f64) -> Result<Option<ConnectionAge>, String> {
    let jitter = Duration::from_secs_f64(jitter);
    match v {
        Value::Number(n) => {
            let s = n.as_f64().unwrap_or(f64::NAN);
            if s == 0.0 {
                return Ok(None);
            }
            if !(5.0..=30.0 * DAY as f64).contains(&s) {
                return Err(format!(
                    "{s} seconds is out of range 5..={} (or 0 = never)",
                    30 * DAY
                ));
            }
            let age = Duration::from_secs_f64(s);
            if jitter >= age {
                return Err(format!(
                    "connection_age_jitter ({}s) must be less than the age ({s}s)",
                    jitter.as_secs_f64()
                ));
            }
            Ok(Some(ConnectionAge::After { age, jitter }))
        }
        Value::String(t) => {
            let parts: Vec<&str> = t.split(':').collect();
            let num = |s: &str, max: u64| s.parse::<u64>().ok().filter(|n| *n < max);
            let hms = match parts[..] {
                [h, m] => num(h, 24).zip(num(m, 60)).map(|(h, m)| h * 3600 + m * 60),
                [h, m, s] => num(h, 24)
                    .zip(num(m, 60))
                    .zip(num(s, 60))
                    .map(|((h, m), s)| h * 3600 + m * 60 + s),
                _ => None,
            };
            let at_s = hms.ok_or_else(|| {
                format!("\"{t}\" is not a time of day (\"HH:MM\" or \"HH:MM:SS\", UTC)")
            })?;
            if jitter >= Duration::from_secs(DAY / 2) {
                return Err(
                    "connection_age_jitter must be under 12 hours with a time of day".into(),
                );
            }
            Ok(Some(ConnectionAge::Daily { at_s, jitter }))
        }
        _ => Err("expected seconds (a number) or a time of day (\"HH:MM\", UTC)".into()),
    }
}

impl ConnectionAge {
    /// How long after `now` (Unix time) a connection opened now is renewed; `r` in
    /// [0, 1) draws the jitter.
    pub(crate) fn delay(&self, now: Duration, r: f64) -> Duration {
        match *self {
            ConnectionAge::After { age, jitter } => age - jitter.mul_f64(r),
            ConnectionAge::Daily { at_s, jitter } => {
                let early = jitter.mul_f64(r);
                // The next time of day that, moved earlier by the jitter, is still at
                // least a minute away (so that a renewal does not plan another at once).
                let now_s = now.as_secs_f64();
                let mut at = (now.as_secs() / DAY * DAY + at_s) as f64 - early.as_secs_f64();
                while at < now_s + 60.0 {
                    at += DAY as f64;
                }
                Duration::from_secs_f64(at - now_s)
            }
        }
    }
}

/// A number in [0, 1) for the jitter: spread, not cryptographic quality.
pub(crate) fn random_fraction() -> f64 {
    let mut x = crate::clock::now().as_nanos() as u64 ^ ((std::process::id() as u64) << 40) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_jitter_and_times_of_day() {
        let a = parse(json!(82_800), 1800.0).unwrap().unwrap();
        assert_eq!(a.delay(Duration::ZERO, 0.0), Duration::from_secs(82_800));
        assert_eq!(a.delay(Duration::ZERO, 0.5), Duration::from_secs(81_900));
        assert_eq!(parse(json!(0), 0.0).unwrap(), None);
        assert!(parse(json!(4), 0.0).is_err());
        assert!(parse(json!(100), 100.0).is_err());
        let d = parse(json!("03:30"), 0.0).unwrap().unwrap();
        // 01:00 UTC on day 10 -> 03:30 the same day.
        let now = Duration::from_secs(10 * DAY + 3600);
        assert_eq!(d.delay(now, 0.0), Duration::from_secs(9000));
        // 03:29:30 -> tomorrow (less than a minute away).
        let now = Duration::from_secs(10 * DAY + 3 * 3600 + 29 * 60 + 30);
        assert_eq!(d.delay(now, 0.0), Duration::from_secs(DAY + 30));
        assert!(parse(json!("24:00"), 0.0).is_err());
        assert!(parse(json!("3h"), 0.0).is_err());
        assert_eq!(
            parse(json!("23:59:59"), 0.0).unwrap(),
            Some(ConnectionAge::Daily {
                at_s: 86_399,
                jitter: Duration::ZERO
            })
        );
    }
}
