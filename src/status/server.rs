//! The status socket server: answers each connection with the status (the Go streamer's line,
//! or JSON when asked with `json\n`).
//!
//! One thread serves every client with `poll`, so a client that connects and sends
//! nothing, or one that streams megabytes, cannot delay anyone else's answer: each
//! client gets [`REQUEST_WAIT`] to send its request, only the first
//! [`REQUEST_MAX`] bytes are read, and at most [`MAX_CLIENTS`] are held at once (the
//! oldest is dropped for a new one). The same `poll` watches the shutdown's wake socket,
//! so stopping never depends on the socket's path; and every [`PATH_CHECK`] the thread
//! checks that the path still leads to its socket, and binds it again if not.

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::counters::Stats;
use crate::error::Fatal;
use crate::shutdown::Shutdown;
use crate::status::Report;

/// How long a client has to send its request before it gets the plain line.
const REQUEST_WAIT: Duration = Duration::from_millis(200);
/// Bytes of a request that are read; the rest is ignored.
const REQUEST_MAX: usize = 16;
/// Clients held at once.
const MAX_CLIENTS: usize = 32;
/// How often the socket's path is checked.
const PATH_CHECK: Duration = Duration::from_secs(2);
/// The socket's mode: the service user and its group may connect, nobody else.
const SOCKET_MODE: u32 = 0o660;

/// A bound status socket; the file is removed when this is dropped (if it is still ours).
pub(crate) struct StatusServer {
    path: PathBuf,
    listener: UnixListener,
    /// Device and inode of the socket file, to tell it from a replacement.
    id: (u64, u64),
}

struct Client {
    stream: UnixStream,
    deadline: Instant,
    req: [u8; REQUEST_MAX],
    len: usize,
}

impl StatusServer {
    /// Binds `path`, replacing a leftover socket file whose process is gone and refusing
    /// (exit 2) when a live instance answers on it.
    pub(crate) fn bind(path: &Path) -> Result<StatusServer, Fatal> {
        let name = path.display();
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
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
        Self::listen(path)
            .map_err(|e| Fatal::Usage(format!("status_socket {name}: cannot listen: {e}")))
    }

    /// Binds under a temporary name, sets the mode, then renames into place, so that
    /// the socket is never reachable with a wider mode.
    fn listen(path: &Path) -> io::Result<StatusServer> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(SOCKET_MODE))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        listener.set_nonblocking(true)?;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(StatusServer {
            path: path.to_path_buf(),
            listener,
            id: (meta.dev(), meta.ino()),
        })
    }

    /// Whether the path still leads to this socket.
    fn path_is_ours(&self) -> bool {
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }

    /// Serves until the shutdown releases the status thread.
    pub(crate) fn serve(&mut self, stats: &Stats, shutdown: &Shutdown, report: &mut Report) {
        let mut clients: Vec<Client> = Vec::new();
        let mut next_check = Instant::now() + PATH_CHECK;
        loop {
            let now = Instant::now();
            let until = clients
                .iter()
                .map(|c| c.deadline)
                .chain(report.due())
                .fold(next_check, Instant::min);
            let mut fds = Vec::with_capacity(2 + clients.len());
            fds.push(pollfd(shutdown.wake_socket().as_raw_fd()));
            fds.push(pollfd(self.listener.as_raw_fd()));
            fds.extend(clients.iter().map(|c| pollfd(c.stream.as_raw_fd())));
            let timeout = until.saturating_duration_since(now).as_millis().min(60_000) as i32;
            // SAFETY: `fds` is a valid, initialised array of `fds.len()` pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != ErrorKind::Interrupted {
                    log::error!("status socket: poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            if fds[0].revents != 0 {
                break;
            }
            // Clients first (their indices match `fds[2..]`), then new ones.
            let now = Instant::now();
            let mut i = 0;
            clients.retain_mut(|c| {
                let ready = fds[2 + i].revents != 0;
                i += 1;
                let done = (ready && c.read_request()) || now >= c.deadline;
                if done {
                    c.answer(stats);
                }
                !done
            });
            if fds[1].revents != 0 {
                self.accept(&mut clients, stats);
            }
            if Instant::now() >= next_check {
                next_check = Instant::now() + PATH_CHECK;
                self.rebind_if_gone();
            }
            report.tick(stats);
        }
    }

    fn accept(&self, clients: &mut Vec<Client>, stats: &Stats) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let mut c = Client {
                        stream,
                        deadline: Instant::now() + REQUEST_WAIT,
                        req: [0; REQUEST_MAX],
                        len: 0,
                    };
                    // `--status` sends its request as soon as it connects: answered
                    // here, it is never held, so a crowd of idle clients cannot push
                    // it out of the list.
                    if c.read_request() {
                        c.answer(stats);
                        continue;
                    }
                    if clients.len() >= MAX_CLIENTS {
                        log::debug!("status socket: too many clients; dropping the oldest");
                        clients.remove(0);
                    }
                    clients.push(c);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("status socket: accept: {e}");
                    return;
                }
            }
        }
    }

    /// Binds the path again when it was removed (tmp cleaners, a tidy operator) or
    /// replaced, so that `--status` keeps working.
    fn rebind_if_gone(&mut self) {
        if self.path_is_ours() {
            return;
        }
        if std::fs::symlink_metadata(&self.path).is_ok() {
            // Something else is there now; leave it alone and say so once.
            if self.id != (0, 0) {
                log::warn!(
                    "status socket {}: the path now holds another file; not replacing it",
                    self.path.display()
                );
                self.id = (0, 0);
            }
            return;
        }
        match Self::listen(&self.path) {
            Ok(new) => {
                log::warn!(
                    "status socket {} was removed; listening on it again",
                    self.path.display()
                );
                *self = new;
            }
            Err(e) => log::warn!(
                "status socket {} was removed and cannot be bound again: {e}",
                self.path.display()
            ),
        }
    }
}

impl Client {
    /// Reads what the client sent; true when the request is complete.
    fn read_request(&mut self) -> bool {
        loop {
            if self.len == REQUEST_MAX {
                return true;
            }
            match self.stream.read(&mut self.req[self.len..]) {
                Ok(0) => return true,
                Ok(n) => {
                    self.len += n;
                    if self.req[..self.len].contains(&b'\n') {
                        return true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    /// The request is optional: a client that sends nothing (or closes its side, as
    /// `socat` does) gets the Go streamer's line. The answer fits in the socket buffer, so a
    /// non-blocking write either takes it whole or the client is not reading anyway.
    fn answer(&mut self, stats: &Stats) {
        let snap = stats.snapshot();
        let mut reply = if self.req[..self.len].starts_with(b"json") {
            snap.to_json().to_string()
        } else {
            snap.line()
        };
        reply.push('\n');
        if let Err(e) = self.stream.write_all(reply.as_bytes()) {
            log::debug!("status client: {e}");
        }
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        if self.path_is_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
