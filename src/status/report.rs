//! The status side's timer: every `status_interval` the Go streamer's status line goes
//! to the log and `metrics_file` is rewritten; once more when the recording has ended
//! (after the writer has closed the files), so that the file's last figures are final.
//! It runs on the status thread, not on the writer's.

use std::io::ErrorKind;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::counters::Stats;
use super::metrics;
use crate::shutdown::Shutdown;

/// The periodic status report.
pub(crate) struct Report {
    every: Option<Duration>,
    next: Option<Instant>,
    metrics_file: Option<PathBuf>,
}

impl Report {
    /// A report every `every` (`None`: never), rewriting `metrics_file` if given.
    pub(crate) fn new(every: Option<Duration>, metrics_file: Option<PathBuf>) -> Report {
        Report {
            every,
            next: every.map(|e| Instant::now() + e),
            metrics_file,
        }
    }

    /// When the next report is due.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.next
    }

    /// Reports if one is due.
    pub(crate) fn tick(&mut self, stats: &Stats) {
        if let (Some(at), Some(every)) = (self.next, self.every) {
            if Instant::now() >= at {
                log::info!("{}", stats.snapshot().line());
                self.write_metrics(stats);
                self.next = Some(Instant::now() + every);
            }
        }
    }

    /// The recording has ended: the metrics file's final figures.
    pub(crate) fn finish(&self, stats: &Stats) {
        self.write_metrics(stats);
    }

    fn write_metrics(&self, stats: &Stats) {
        if let Some(path) = &self.metrics_file {
            if let Err(e) = metrics::write_file(path, &stats.snapshot()) {
                log::warn!("metrics_file {}: {e}", path.display());
            }
        }
    }

    /// Reports on time until the shutdown releases the status thread (when there is no
    /// status socket to serve).
    pub(crate) fn run(&mut self, stats: &Stats, shutdown: &Shutdown) {
        let mut fd = libc::pollfd {
            fd: shutdown.wake_socket().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            let timeout = match self.next {
                Some(at) => at
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(60_000) as i32,
                None => -1,
            };
            // SAFETY: one valid, initialised pollfd.
            let n = unsafe { libc::poll(&mut fd, 1, timeout) };
            if n < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
                std::thread::sleep(Duration::from_millis(100));
            }
            if n > 0 && fd.revents != 0 {
                return;
            }
            self.tick(stats);
        }
    }
}
