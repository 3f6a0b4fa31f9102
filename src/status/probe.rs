//! The `--status` client: asks the running instance, prints, and maps its health to
//! the exit code.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::Fatal;

/// Exit code of `--status` when the recorder runs but is disconnected or stale.
const EXIT_UNHEALTHY: u8 = crate::exit_codes::Exit::Unhealthy as u8;
/// Exit code of `--status` when no instance answers.
const EXIT_NO_INSTANCE: u8 = crate::exit_codes::Exit::Failure as u8;

/// Asks the instance on `path` for its status; prints it; returns the exit code
/// (0 healthy, [`EXIT_UNHEALTHY`], or [`EXIT_NO_INSTANCE`] with a message).
pub(crate) fn query(path: &Path, json: bool) -> Result<u8, Fatal> {
    let no_instance = |e: io::Error| {
        Fatal::Code(
            EXIT_NO_INSTANCE,
            format!("no wsrec instance answers on {}: {e}", path.display()),
        )
    };
    let mut conn = UnixStream::connect(path).map_err(no_instance)?;
    conn.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(no_instance)?;
    conn.write_all(b"json\n").map_err(no_instance)?;
    let mut text = String::new();
    conn.read_to_string(&mut text).map_err(no_instance)?;
    let v: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
        Fatal::Code(
            EXIT_NO_INSTANCE,
            format!("status socket {}: unreadable answer: {e}", path.display()),
        )
    })?;
    if json {
        println!("{}", text.trim());
    } else {
        println!("{}", v["status_line"].as_str().unwrap_or_default());
    }
    Ok(if v["healthy"].as_bool() == Some(true) {
        0
    } else {
        EXIT_UNHEALTHY
    })
}
