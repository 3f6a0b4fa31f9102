//! The Prometheus text-format file for node_exporter's textfile collector: the
//! counters of [`COUNTERS`] and a few gauges, rewritten atomically (temp file + rename).

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::counters::{COUNTERS, Snapshot};

/// Renders the snapshot in the Prometheus text exposition format.
fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(2048);
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let gauges: [(&str, &str, f64); 7] = [
        ("wsrec_up", "1 while the recorder runs.", 1.0),
        (
            "wsrec_uptime_seconds",
            "Seconds since the recorder started.",
            s.uptime_s,
        ),
        (
            "wsrec_connected",
            "1 while connected.",
            s.connected as u8 as f64,
        ),
        (
            "wsrec_queue_depth",
            "Messages waiting for the writer.",
            s.queue_depth as f64,
        ),
        (
            "wsrec_queue_capacity",
            "Channel capacity in messages.",
            s.queue_capacity as f64,
        ),
        (
            "wsrec_last_message_age_seconds",
            "Seconds since the last message.",
            s.last_message_age_s.unwrap_or(s.uptime_s),
        ),
        (
            "wsrec_last_data_age_seconds",
            "Seconds since a line last reached a topic file (tracked with data_timeout; else the uptime).",
            s.last_data_age_s.unwrap_or(s.uptime_s),
        ),
    ];
    for (name, help, v) in gauges {
        head(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    // Counters sharing a metric (by reason) go under one HELP/TYPE header.
    for (i, d) in COUNTERS.iter().enumerate() {
        if COUNTERS[..i].iter().all(|e| e.metric != d.metric) {
            head(&mut out, d.metric, "counter", d.help);
            for (e, n) in COUNTERS
                .iter()
                .zip(s.counts)
                .filter(|(e, _)| e.metric == d.metric)
            {
                match e.reason {
                    Some(r) => {
                        let _ = writeln!(out, "{}{{reason=\"{r}\"}} {n}", e.metric);
                    }
                    None => {
                        let _ = writeln!(out, "{} {n}", e.metric);
                    }
                }
            }
        }
    }
    out
}

/// Writes the file atomically: readers see the old or the new file, never a mix.
pub(crate) fn write_file(path: &Path, s: &Snapshot) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, render(s))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::counters::{Count, Stats};

    #[test]
    fn one_header_per_metric_and_every_counter() {
        let s = Stats::new(10, 60.0);
        s.add(Count::RejectBinary, 3);
        s.add(Count::Dropped, 2);
        let text = render(&s.snapshot());
        assert_eq!(
            text.matches("# TYPE wsrec_dropped_total counter").count(),
            1
        );
        assert!(
            text.contains("wsrec_dropped_total{reason=\"binary\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("wsrec_dropped_total{reason=\"queue_full\"} 2\n"),
            "{text}"
        );
        for d in &COUNTERS {
            assert!(text.contains(d.metric), "{}", d.metric);
        }
    }
}
