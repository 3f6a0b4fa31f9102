//! The status socket: a server thread that answers each connection with the status
//! (the seed's line, or JSON when asked with `json\n`), and the `--status` client.

use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use crate::error::Fatal;
use crate::stats::Stats;

/// Exit code of `--status` when the recorder runs but is disconnected or stale.
pub const EXIT_UNHEALTHY: u8 = 3;
/// Exit code of `--status` when no instance answers.
pub const EXIT_NO_INSTANCE: u8 = 1;

/// A bound status socket; the file is removed when this is dropped.
pub struct StatusServer {
    path: PathBuf,
    listener: UnixListener,
}

impl StatusServer {
    /// Binds `path`, replacing a leftover socket file whose process is gone and refusing
    /// (exit 2) when a live instance answers on it.
    pub fn bind(path: &Path) -> Result<StatusServer, Fatal> {
        let name = path.display();
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(Fatal::Usage(format!(
                    "status_socket {name}: exists and is not a socket"
                )));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(Fatal::Usage(format!(
                    "status_socket {name}: another wsrec instance is running and listening on it"
                )));
            }
            log::info!(
                "status_socket {name}: replacing a leftover socket of a process that is gone"
            );
            std::fs::remove_file(path).map_err(|e| {
                Fatal::Usage(format!(
                    "status_socket {name}: cannot remove the leftover: {e}"
                ))
            })?;
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| Fatal::Usage(format!("status_socket {name}: cannot listen: {e}")))?;
        Ok(StatusServer {
            path: path.to_path_buf(),
            listener,
        })
    }

    /// Serves until `quit` is set and a connection wakes the loop ([`wake`]).
    pub fn serve(&self, stats: &Stats, quit: &AtomicBool) {
        for conn in self.listener.incoming() {
            if quit.load(Relaxed) {
                break;
            }
            if let Ok(conn) = conn {
                if let Err(e) = answer(conn, stats) {
                    log::debug!("status client: {e}");
                }
            }
        }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Wakes a server blocked in `accept` so that it can see the quit flag.
pub fn wake(path: &Path) {
    let _ = UnixStream::connect(path);
}

fn answer(mut conn: UnixStream, stats: &Stats) -> io::Result<()> {
    // The request is optional: a client that sends nothing (or closes its side, as
    // `socat` does) gets the seed's line.
    conn.set_read_timeout(Some(Duration::from_millis(200)))?;
    conn.set_write_timeout(Some(Duration::from_secs(1)))?;
    let mut req = [0u8; 16];
    let n = conn.read(&mut req).unwrap_or(0);
    let snap = stats.snapshot();
    let mut reply = if req[..n].starts_with(b"json") {
        let mut v = snap.to_json();
        v["status_line"] = snap.line().into();
        v.to_string()
    } else {
        snap.line()
    };
    reply.push('\n');
    conn.write_all(reply.as_bytes())
}

/// Asks the instance on `path` for its status; prints it; returns the exit code
/// (0 healthy, [`EXIT_UNHEALTHY`], or [`EXIT_NO_INSTANCE`] with a message).
pub fn query(path: &Path, json: bool) -> Result<u8, Fatal> {
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

/// Spawns the server thread.
pub fn spawn(
    server: Arc<StatusServer>,
    stats: Arc<Stats>,
    quit: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("status".into())
        .spawn(move || server.serve(&stats, &quit))
        .expect("spawn status thread")
}
