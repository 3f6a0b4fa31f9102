//! The Prometheus text-format file for node_exporter's textfile collector: the
//! counters of [`COUNTERS`] and the gauges of [`GAUGES`], rewritten atomically (temp
//! file + rename).

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::counters::{COUNTERS, GAUGES, Snapshot};

/// Renders the snapshot in the Prometheus text exposition format.
fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(2048);
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    for (i, g) in GAUGES.iter().enumerate() {
        debug_assert_eq!(g.gauge as usize, i);
        head(&mut out, g.metric, "gauge", g.help);
        let _ = writeln!(out, "{} {}", g.metric, s.gauge(g.gauge));
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

    /// docs/status-and-metrics.md names every metric and `reason` label declared here,
    /// and none that is not.
    #[test]
    fn the_documented_metrics_are_the_declared_ones() {
        let doc = include_str!("../../docs/status-and-metrics.md");
        let mut declared: Vec<&str> = COUNTERS
            .iter()
            .map(|d| d.metric)
            .chain(GAUGES.iter().map(|g| g.metric))
            .collect();
        declared.sort();
        declared.dedup();
        let mut documented: Vec<&str> = doc
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("wsrec_"))
            .collect();
        documented.sort();
        documented.dedup();
        assert_eq!(
            documented, declared,
            "docs/status-and-metrics.md vs COUNTERS and GAUGES"
        );
        for r in COUNTERS.iter().filter_map(|d| d.reason) {
            assert!(
                doc.contains(&format!("\"{r}\"")),
                "docs/status-and-metrics.md does not name reason \"{r}\""
            );
        }
    }
}
