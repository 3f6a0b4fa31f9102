//! `wsrec gaps`: reads the coverage journal and prints the windows of time in a range
//! that no connection session covered (from subscribe to close), and the sequence
//! gaps (`sequence`) found while one did.

use std::collections::BTreeMap;
use std::path::Path;

use super::coverage::FILE_NAME;
use crate::cli::GapsArgs;
use crate::clock::unix_ms;
use crate::error::Fatal;
use crate::exit_codes::Exit;

/// Parses Unix seconds (integer or fraction) or an RFC 3339 time into Unix ms.
fn parse_time(s: &str) -> Result<u64, Fatal> {
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0) as u64);
    }
    crate::clock::parse_rfc3339_ms(s).map_err(|e| {
        Fatal::Usage(format!(
            "gaps: \"{s}\" is neither Unix seconds nor RFC 3339: {e}"
        ))
    })
}

fn fmt_ms(ms: u64) -> String {
    crate::clock::rfc3339_ms(ms)
}

/// The covered windows `[start, end)` in Unix ms, from the journal's lines.
pub(crate) fn covered(journal: &str, now_ms: u64) -> Vec<(u64, u64)> {
    // (connected_ms, line) -> (start, closed at, last seen alive, pid). Redundant
    // lines (`"line"`) each have their own sessions; a stretch either covered is
    // covered (the merge below), so a gap is where both lines missed it.
    type Key = (u64, Option<String>);
    let mut sessions: BTreeMap<Key, (u64, Option<u64>, u64, Option<u64>)> = BTreeMap::new();
    for line in journal.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(connected) = v["connected_ms"].as_u64() else {
            continue;
        };
        let start = v["subscribed_ms"].as_u64().unwrap_or(connected);
        let key = (connected, v["line"].as_str().map(str::to_string));
        let entry = sessions
            .entry(key)
            .or_insert((start, None, start, v["pid"].as_u64()));
        let at = v["at_ms"]
            .as_u64()
            .or(v["last_msg_ms"].as_u64())
            .unwrap_or(start);
        entry.2 = entry.2.max(at);
        if v["event"] == "close" {
            // A session whose data stopped (data_timeout) covers only up to then.
            entry.1 = v["data_until_ms"].as_u64().or(v["closed_ms"].as_u64());
        }
    }
    // The newest session of each line (or of the one connection).
    let mut last: BTreeMap<&Option<String>, u64> = BTreeMap::new();
    for (connected, line) in sessions.keys() {
        last.insert(line, *connected);
    }
    let mut windows: Vec<(u64, u64)> = sessions
        .iter()
        .map(|((connected, line), &(start, closed, alive, pid))| {
            // No close line: the process died, and the session counts up to its last
            // checkpoint (one a minute); or, for the newest session, it still runs: its
            // process is alive (or, in a journal without pids, it checkpointed within
            // two minutes).
            let running = last.get(line) == Some(connected)
                && match pid {
                    Some(pid) => Path::new(&format!("/proc/{pid}")).exists(),
                    None => now_ms.saturating_sub(alive) <= 120_000,
                };
            let end = closed.unwrap_or(if running { now_ms } else { alive });
            (start, end.max(start))
        })
        .collect();
    windows.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in windows {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// A sequence gap from the journal: a topic's last number and the next, and when each
/// came (Unix ms). The numbers are kept as the JSON text the journal has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeqGap {
    pub(crate) topic: String,
    pub(crate) last: String,
    pub(crate) next: String,
    pub(crate) start_ms: u64,
    pub(crate) end_ms: u64,
}

/// The sequence gaps of the journal that overlap `[from, to]`, in order of time.
pub(crate) fn sequence_gaps(journal: &str, from: u64, to: u64) -> Vec<SeqGap> {
    let mut out: Vec<SeqGap> = journal
        .lines()
        .filter(|l| l.contains("\"sequence_gap\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "sequence_gap")
        .filter_map(|v| {
            let end_ms = v["at_ms"].as_u64()?;
            Some(SeqGap {
                topic: v["topic"].as_str().unwrap_or("").to_string(),
                last: v["last"].to_string(),
                next: v["next"].to_string(),
                start_ms: v["last_ms"].as_u64().unwrap_or(end_ms).min(end_ms),
                end_ms,
            })
        })
        .filter(|g| g.end_ms >= from && g.start_ms <= to)
        .collect();
    out.sort_by_key(|g| (g.start_ms, g.end_ms));
    out
}

/// The parts of `[from, to)` outside `windows`.
pub(crate) fn gaps_in(windows: &[(u64, u64)], from: u64, to: u64) -> Vec<(u64, u64)> {
    let mut gaps = Vec::new();
    let mut cursor = from;
    for &(s, e) in windows {
        if e <= cursor {
            continue;
        }
        if s >= to {
            break;
        }
        if s > cursor {
            gaps.push((cursor, s.min(to)));
        }
        cursor = cursor.max(e);
    }
    if cursor < to {
        gaps.push((cursor, to));
    }
    gaps
}

/// Prints the gaps for `output_dir`'s journal; exit code 0.
pub(crate) fn run(output_dir: &Path, args: &GapsArgs) -> Result<u8, Fatal> {
    if args.json && args.csv {
        return Err(Fatal::Usage("gaps: --json or --csv, not both".into()));
    }
    // The flags first: a wrong range is the user's to fix, whatever the journal holds.
    let given_from = args.from.as_deref().map(parse_time).transpose()?;
    let given_to = args.to.as_deref().map(parse_time).transpose()?;
    if let (Some(from), Some(to)) = (given_from, given_to) {
        if to < from {
            return Err(Fatal::Usage(format!(
                "gaps: --to {} is before --from {}",
                fmt_ms(to),
                fmt_ms(from)
            )));
        }
    }
    if args.min_gap.is_nan() || args.min_gap < 0.0 {
        return Err(Fatal::Usage(format!(
            "gaps: --min-gap {} must be 0 or more seconds",
            args.min_gap
        )));
    }
    let path = output_dir.join(FILE_NAME);
    let journal = std::fs::read_to_string(&path).map_err(|e| {
        Fatal::Other(format!(
            "coverage journal {}: {e} (is coverage_journal on?)",
            path.display()
        ))
    })?;
    let now = unix_ms();
    let windows = covered(&journal, now);
    let to = given_to.unwrap_or(now);
    // By default from the first session, but never past the end the user gave.
    let from = given_from.unwrap_or_else(|| windows.first().map_or(now, |w| w.0).min(to));
    if to < from {
        return Err(Fatal::Usage(format!(
            "gaps: --from {} is in the future (--to defaults to now, {})",
            fmt_ms(from),
            fmt_ms(to)
        )));
    }
    let min = (args.min_gap * 1000.0) as u64;
    let gaps: Vec<_> = gaps_in(&windows, from, to)
        .into_iter()
        .filter(|(s, e)| e - s >= min)
        .collect();
    // Not filtered by --min-gap: a sequence gap loses messages however short it is.
    let seq = sequence_gaps(&journal, from, to);
    if args.json || args.csv {
        return print_rows(&gaps, &seq, args.csv);
    }
    let missing: u64 = gaps.iter().map(|(s, e)| e - s).sum();
    // Both kinds in order of time.
    let mut lines: Vec<(u64, String)> = gaps
        .iter()
        .map(|(s, e)| {
            let text = format!(
                "gap {} .. {} ({:.3}s)",
                fmt_ms(*s),
                fmt_ms(*e),
                (e - s) as f64 / 1000.0
            );
            (*s, text)
        })
        .collect();
    lines.extend(seq.iter().map(|g| {
        let text = format!(
            "sequence gap {} {} .. {} ({:.3}s): last {}, next {}",
            g.topic,
            fmt_ms(g.start_ms),
            fmt_ms(g.end_ms),
            (g.end_ms - g.start_ms) as f64 / 1000.0,
            g.last,
            g.next
        );
        (g.start_ms, text)
    }));
    lines.sort_by_key(|(t, _)| *t);
    for (_, l) in &lines {
        println!("{l}");
    }
    let span = to.saturating_sub(from).max(1);
    println!(
        "{} gaps, {:.3}s missing of {:.3}s ({:.3}% covered) from {} to {}",
        gaps.len(),
        missing as f64 / 1000.0,
        span as f64 / 1000.0,
        100.0 * (span - missing.min(span)) as f64 / span as f64,
        fmt_ms(from),
        fmt_ms(to)
    );
    if !seq.is_empty() {
        println!(
            "{} sequence gaps (messages missing while connected)",
            seq.len()
        );
    }
    Ok(Exit::Success.into())
}

/// `--json` / `--csv`: the gaps as rows, nothing else on stdout.
fn print_rows(gaps: &[(u64, u64)], seq: &[SeqGap], csv: bool) -> Result<u8, Fatal> {
    use super::gap_rows::{COLUMNS, Kind, Row};
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    if csv {
        text.push_str(&COLUMNS.join(","));
        text.push('\n');
    }
    let mut rows: Vec<Row> = gaps
        .iter()
        .map(|&(start_ms, end_ms)| Row {
            start_ms,
            end_ms,
            kind: Kind::Connection,
            topic: None,
            numbers: None,
        })
        .collect();
    rows.extend(seq.iter().map(|g| Row {
        start_ms: g.start_ms,
        end_ms: g.end_ms,
        kind: Kind::Sequence,
        topic: Some(&g.topic),
        numbers: Some((&g.last, &g.next)),
    }));
    rows.sort_by_key(|r| r.start_ms);
    for row in rows {
        text.push_str(&if csv {
            row.csv(fmt_ms)
        } else {
            row.json(fmt_ms)
        });
        text.push('\n');
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Fatal::Other(format!("gaps: writing to stdout: {e}")))?;
    Ok(Exit::Success.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_gaps() {
        let j = r#"{"event":"open","connected_ms":1000,"subscribed_ms":1100}
{"event":"close","connected_ms":1000,"subscribed_ms":1100,"closed_ms":5000}
{"event":"open","connected_ms":7000,"subscribed_ms":7050,"at_ms":7050}
{"event":"progress","connected_ms":7000,"subscribed_ms":7050,"at_ms":8000}
{"event":"open","connected_ms":9000,"subscribed_ms":9000,"at_ms":9000}
"#;
        // 7000 crashed after its checkpoint at 8000; 9000 is running.
        let w = covered(j, 12_000);
        assert_eq!(w, vec![(1100, 5000), (7050, 8000), (9000, 12_000)]);
        assert_eq!(
            gaps_in(&w, 0, 13_000),
            vec![(0, 1100), (5000, 7050), (8000, 9000), (12_000, 13_000)]
        );
        // Long after, with no checkpoint since: the newest session is not stretched.
        assert_eq!(covered(j, 500_000).last(), Some(&(9000, 9000)));
        assert_eq!(gaps_in(&w, 2000, 4000), vec![]);
        // Data stopped at 3000 (data_timeout at 4500): a gap from 3000, not 4500.
        let j = r#"{"event":"close","connected_ms":1000,"subscribed_ms":1100,"closed_ms":4500,"data_until_ms":3000}
{"event":"close","connected_ms":4600,"subscribed_ms":4700,"closed_ms":9000}
"#;
        assert_eq!(gaps_in(&covered(j, 10_000), 1100, 9000), vec![(3000, 4700)]);
        let j = r#"{"event":"open","connected_ms":1000,"subscribed_ms":1100}
{"event":"sequence_gap","at_ms":2500,"topic":"book","last":17,"next":30,"prev":20,"last_ms":2400}
{"event":"sequence_gap","at_ms":9500,"topic":"book","last":"18446744073709551617","next":2,"last_ms":9000}
"#;
        let g = sequence_gaps(j, 0, 5000);
        assert_eq!(
            g,
            [SeqGap {
                topic: "book".into(),
                last: "17".into(),
                next: "30".into(),
                start_ms: 2400,
                end_ms: 2500
            }]
        );
        assert_eq!(
            sequence_gaps(j, 0, 10_000)[1].last,
            "\"18446744073709551617\""
        );
        // Redundant lines: a gap only where both missed it, even when their sessions
        // connected in the same millisecond.
        let j = r#"{"event":"close","line":"a","connected_ms":1000,"subscribed_ms":1000,"closed_ms":3000}
{"event":"close","line":"b","connected_ms":1000,"subscribed_ms":1000,"closed_ms":5000}
{"event":"close","line":"a","connected_ms":3100,"subscribed_ms":3200,"closed_ms":8000}
{"event":"close","line":"b","connected_ms":6000,"subscribed_ms":6000,"closed_ms":7000}
{"event":"close","line":"b","connected_ms":8500,"subscribed_ms":8600,"closed_ms":9000}
"#;
        assert_eq!(gaps_in(&covered(j, 10_000), 1000, 9000), vec![(8000, 8600)]);
    }
}
