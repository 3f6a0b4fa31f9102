//! Reconnect delays: exponential from `reconnect_initial_delay` to
//! `reconnect_max_delay`, with jitter so that many recorders restarted together do not
//! reconnect in step, reset after a connection that delivered data.

use std::time::Duration;

/// Exponential back-off with "equal jitter": each delay is drawn from
/// `[step/2, step]`, never below the initial delay.
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
    rng: u64,
}

impl Backoff {
    /// A back-off from `initial` doubling up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        let seed = crate::clock::now().as_nanos() as u64 ^ ((std::process::id() as u64) << 32);
        Backoff {
            initial,
            max,
            step: initial,
            rng: seed | 1,
        }
    }

    /// Back to the initial delay (after a connection that delivered data).
    pub(crate) fn reset(&mut self) {
        self.step = self.initial;
    }

    /// The next delay; doubles the step for the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        step.mul_f64(0.5 + 0.5 * frac).max(self.initial)
    }
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let now = time::OffsetDateTime::now_utc();
    Some(Duration::try_from(when - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jitters_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let d: Vec<f64> = (0..6).map(|_| b.next_delay().as_secs_f64()).collect();
        assert!((1.0..=1.0).contains(&d[0]), "{d:?}");
        assert!((1.0..=2.0).contains(&d[1]), "{d:?}");
        assert!((2.0..=4.0).contains(&d[2]), "{d:?}");
        assert!(d[3..].iter().all(|x| (4.0..=8.0).contains(x)), "{d:?}");
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
