//! The Prometheus text-format file for node_exporter's textfile collector: the
//! same figures as `--status --json`, rewritten atomically (temp file + rename).

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::stats::Snapshot;

/// Renders the snapshot in the Prometheus text exposition format.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let one = |v: f64| vec![(String::new(), v)];
    metric("wsrec_up", "gauge", "1 while the recorder runs.", &one(1.0));
    metric(
        "wsrec_uptime_seconds",
        "gauge",
        "Seconds since the recorder started.",
        &one(s.uptime_s),
    );
    metric(
        "wsrec_messages_total",
        "counter",
        "Messages received and accepted.",
        &one(s.messages as f64),
    );
    metric(
        "wsrec_lines_written_total",
        "counter",
        "Lines written to files.",
        &one(s.lines_written as f64),
    );
    metric(
        "wsrec_bytes_written_total",
        "counter",
        "Bytes written to files.",
        &one(s.bytes_written as f64),
    );
    metric(
        "wsrec_connected",
        "gauge",
        "1 while connected.",
        &one(s.connected as u8 as f64),
    );
    metric(
        "wsrec_connects_total",
        "counter",
        "Successful connections.",
        &one(s.connects as f64),
    );
    metric(
        "wsrec_reconnects_total",
        "counter",
        "Connections after the first.",
        &one(s.reconnects as f64),
    );
    metric(
        "wsrec_connect_attempts_total",
        "counter",
        "Connection attempts.",
        &one(s.attempts as f64),
    );
    let mut dropped = vec![(r#"{reason="queue_full"}"#.to_string(), s.dropped as f64)];
    dropped.extend(
        s.rejected
            .iter()
            .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), *n as f64)),
    );
    metric(
        "wsrec_dropped_total",
        "counter",
        "Frames not written, by reason.",
        &dropped,
    );
    metric(
        "wsrec_write_errors_total",
        "counter",
        "Failed writes (retried).",
        &one(s.write_errors as f64),
    );
    metric(
        "wsrec_queue_depth",
        "gauge",
        "Messages waiting for the writer.",
        &one(s.queue_depth as f64),
    );
    metric(
        "wsrec_queue_capacity",
        "gauge",
        "Channel capacity in messages.",
        &one(s.queue_capacity as f64),
    );
    let age = s.last_message_age_s.unwrap_or(s.uptime_s);
    metric(
        "wsrec_last_message_age_seconds",
        "gauge",
        "Seconds since the last message.",
        &one(age),
    );
    out
}

/// Writes the file atomically: readers see the old or the new file, never a mix.
pub fn write_file(path: &Path, s: &Snapshot) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, render(s))?;
    std::fs::rename(&tmp, path)
}
