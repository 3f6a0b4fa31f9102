//! The `--status` client: asks the running instance, prints, and maps its health to
//! the exit code. The status line goes to stdout exactly as the Go streamer printed it;
//! why an instance is unhealthy goes to stderr, so that scripts reading stdout see no
//! change.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::error::Fatal;

/// Exit code of `--status` when the recorder runs but is disconnected or stale.
const EXIT_UNHEALTHY: u8 = crate::exit_codes::Exit::Unhealthy as u8;
/// Exit code of `--status` when no instance answers (or it may not be asked).
const EXIT_NO_INSTANCE: u8 = crate::exit_codes::Exit::Failure as u8;

/// Asks the instance on `path` for its status; prints it; returns the exit code
/// (0 healthy, [`EXIT_UNHEALTHY`] with the reason on stderr, or [`EXIT_NO_INSTANCE`]
/// with a message).
pub(crate) fn query(path: &Path, json: bool) -> Result<u8, Fatal> {
    let no_instance = |e: io::Error| Fatal::Code(EXIT_NO_INSTANCE, not_answering(path, &e));
    let mut conn = UnixStream::connect(path).map_err(no_instance)?;
    conn.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(no_instance)?;
    conn.write_all(b"json\n").map_err(no_instance)?;
    let mut text = String::new();
    conn.read_to_string(&mut text).map_err(no_instance)?;
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| {
        Fatal::Code(
            EXIT_NO_INSTANCE,
            format!("status socket {}: unreadable answer: {e}", path.display()),
        )
    })?;
    if json {
        println!("{}", text.trim());
    } else {
        println!("{}", v["status_line"].as_str().unwrap_or_default());
        if let Some(r) = v["redundancy"].as_str().filter(|r| *r != "full") {
            println!("{}", redundancy_line(r, &v));
        }
    }
    if v["healthy"].as_bool() == Some(true) {
        return Ok(0);
    }
    eprintln!("wsrec: unhealthy: {}", why_unhealthy(&v));
    Ok(EXIT_UNHEALTHY)
}

/// `redundancy degraded: line a up, line b down` (or `down`: both).
fn redundancy_line(state: &str, v: &Value) -> String {
    let line = |n: &str| {
        let up = v[format!("line_{n}")]["connected"].as_bool() == Some(true);
        format!("line {n} {}", if up { "up" } else { "down" })
    };
    format!("redundancy {state}: {}, {}", line("a"), line("b"))
}

/// Why connecting to the socket failed, in the words an operator acts on.
fn not_answering(path: &Path, e: &io::Error) -> String {
    let p = path.display();
    match e.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "permission denied on {p}: the status socket is only for the user wsrec runs as and its group (mode 0660); run --status as that user, or add yours to its group"
        ),
        io::ErrorKind::NotFound => format!(
            "no wsrec instance answers on {p}: no such socket (is wsrec running with this config's status_socket?)"
        ),
        io::ErrorKind::ConnectionRefused => format!(
            "no wsrec instance answers on {p}: the socket is left over from a process that ended"
        ),
        _ => format!("no wsrec instance answers on {p}: {e}"),
    }
}

/// The reason an answer says unhealthy: disconnected (since when, the last error), or
/// connected with no message within `stale_timeout`.
fn why_unhealthy(v: &Value) -> String {
    let secs = |k: &str| v[k].as_f64();
    let stale = secs("stale_timeout_s").unwrap_or(0.0);
    let why = if v["connected"].as_bool() != Some(true) {
        let attempts = v["connect_attempts"].as_u64().unwrap_or(0);
        match (
            v["connects"].as_u64().unwrap_or(0),
            secs("last_frame_age_s"),
        ) {
            (0, _) => format!(
                "never connected since it started {} ago ({attempts} attempts)",
                ago(secs("uptime_s"))
            ),
            (_, Some(age)) => format!(
                "disconnected, reconnecting; the last frame came {} ago, at {}",
                ago(Some(age)),
                at(age)
            ),
            (_, None) => "disconnected, reconnecting".to_string(),
        }
    } else {
        match secs("last_message_age_s") {
            Some(age) => format!(
                "connected, but no message for {} (stale_timeout is {stale}s)",
                ago(Some(age))
            ),
            None => format!(
                "connected, but no message yet in {} (stale_timeout is {stale}s)",
                ago(secs("uptime_s"))
            ),
        }
    };
    match v["last_error"].as_str() {
        Some(e) if !e.is_empty() => why + "; last error: " + e,
        _ => why,
    }
}

/// `12.3s`, or `?` when the figure is missing.
fn ago(secs: Option<f64>) -> String {
    secs.map_or("?".into(), |s| format!("{s:.1}s"))
}

/// The UTC time `age` seconds ago, RFC 3339 to the second.
fn at(age: f64) -> String {
    let then = time::OffsetDateTime::now_utc() - time::Duration::seconds_f64(age);
    let then = then.replace_nanosecond(0).unwrap_or(then);
    then.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_for_unhealthy() {
        let never = json!({"connected": false, "connects": 0, "connect_attempts": 3,
            "uptime_s": 5.0, "last_error": "connection refused", "stale_timeout_s": 60.0});
        assert_eq!(
            why_unhealthy(&never),
            "never connected since it started 5.0s ago (3 attempts); last error: connection refused"
        );
        let lost = json!({"connected": false, "connects": 2, "last_frame_age_s": 12.0,
            "last_error": "", "stale_timeout_s": 60.0});
        assert!(
            why_unhealthy(&lost)
                .starts_with("disconnected, reconnecting; the last frame came 12.0s ago, at 20")
        );
        let stale = json!({"connected": true, "connects": 1, "last_message_age_s": 75.5,
            "stale_timeout_s": 60.0, "last_error": ""});
        assert_eq!(
            why_unhealthy(&stale),
            "connected, but no message for 75.5s (stale_timeout is 60s)"
        );
    }
}
