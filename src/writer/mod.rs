//! The writer thread: takes batches off the channel and appends them to the period's
//! files; rotates and closes files at the end of each period; retries failed writes
//! with back-off, holding the batch (and so, through the bounded channel, pausing the
//! reader) until the disk takes it; logs the status line on its interval.

mod hourfile;

use std::fs;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use crate::batch::{Batch, Dest, POOL_MAX_BUFFER, WriterSide};
use crate::clock::{self, Periods, Timing};
use crate::config::{Config, ConfigError};
use crate::message::route;
use crate::ratelimit::RateLimited;
use crate::shutdown::Shutdown;
use crate::status::metrics;
use crate::status::{Count, Stats};
use hourfile::HourFile;

/// The file of messages that name no configured topic.
const CONTROL: &str = "_control";
/// Files open at once. Every configured topic has a file; past this many, the least
/// recently written is closed (fsynced) and opened again when its next line comes, so
/// that thousands of topics stay within a service's file limit (1024 in deploy/).
const MAX_OPEN_FILES: usize = 256;
/// After this long of failing writes during shutdown, the writer gives up.
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(2);
/// Longest pause between retries of a failing write.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Creates `output_dir` if needed and proves it writable with a probe file; called
/// when recording starts (loading the config touches nothing).
pub(crate) fn prepare_output_dir(cfg: &Config) -> Result<(), ConfigError> {
    let dir = &cfg.output_dir;
    fs::create_dir_all(dir).map_err(|e| {
        cfg.error(
            "output_dir",
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    let probe = dir.join(format!(".wsrec-probe-{}", std::process::id()));
    fs::write(&probe, b"").map_err(|e| {
        cfg.error(
            "output_dir",
            format!("{} is not writable: {e}", dir.display()),
        )
    })?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// The writer thread's state.
pub(crate) struct Writer<'a> {
    cfg: &'a Config,
    stats: &'a Stats,
    shutdown: &'a Shutdown,
    side: WriterSide,
    periods: Periods,
    close_grace: Duration,
    /// File name prefixes: each topic's, encoded, then the control file's.
    names: Vec<String>,
    /// The period whose files are open.
    period: Option<u64>,
    /// The last period whose files were closed.
    last_closed: Option<u64>,
    /// Open files of that period (usually one; one per topic in multi-topic mode).
    files: Vec<(Dest, HourFile)>,
    next_status: Option<Instant>,
    errors: RateLimited,
}

impl<'a> Writer<'a> {
    /// A writer for `cfg` fed by `side`.
    pub(crate) fn new(
        cfg: &'a Config,
        stats: &'a Stats,
        shutdown: &'a Shutdown,
        side: WriterSide,
        timing: Timing,
    ) -> Writer<'a> {
        let next_status = cfg.status_interval.map(|i| Instant::now() + i);
        Writer {
            cfg,
            stats,
            shutdown,
            side,
            names: cfg
                .topics
                .iter()
                .map(|t| route::file_name(t))
                .chain([CONTROL.to_string()])
                .collect(),
            periods: timing.periods,
            close_grace: timing.close_grace,
            period: None,
            last_closed: None,
            files: Vec::new(),
            next_status,
            errors: RateLimited::new(Duration::from_secs(30)),
        }
    }

    /// Runs until the reader hangs up and the channel is empty, then closes the files.
    pub(crate) fn run(mut self) {
        loop {
            let deadline = self.next_deadline();
            match self.side.rx.recv_deadline(deadline) {
                Ok(batch) => {
                    self.stats
                        .queue_depth
                        .fetch_sub(batch.lines as u64, Relaxed);
                    self.write_batch(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.on_timers();
        }
        self.close_files();
        self.write_metrics();
        log::info!("writer: all lines written, files closed");
    }

    fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        let mut deadline = now + Duration::from_secs(3600);
        if let Some(p) = self.period {
            let end = Duration::from_secs(p) + self.periods.len() + self.close_grace;
            deadline = deadline.min(now + end.saturating_sub(clock::now()));
        }
        if let Some(s) = self.next_status {
            deadline = deadline.min(s);
        }
        deadline
    }

    fn on_timers(&mut self) {
        if let Some(p) = self.period {
            let end = Duration::from_secs(p) + self.periods.len() + self.close_grace;
            if clock::now() >= end {
                self.close_files();
            }
        }
        if let (Some(at), Some(every)) = (self.next_status, self.cfg.status_interval) {
            if Instant::now() >= at {
                log::info!("{}", self.stats.snapshot().line());
                self.write_metrics();
                self.next_status = Some(Instant::now() + every);
            }
        }
    }

    fn write_metrics(&self) {
        if let Some(path) = &self.cfg.metrics_file {
            if let Err(e) = metrics::write_file(path, &self.stats.snapshot()) {
                log::warn!("metrics_file {}: {e}", path.display());
            }
        }
    }

    /// Flushes, fsyncs and closes the open period's files: from now on they are closed.
    fn close_files(&mut self) {
        for (_, f) in self.files.drain(..) {
            let path = f.path().display().to_string();
            match f.close() {
                Ok(()) => log::info!("closed {path}"),
                Err(e) => log::error!("fsync {path}: {e}"),
            }
        }
        self.last_closed = self.period.take().or(self.last_closed);
    }

    /// The period a batch is written to. A batch from a period already closed (it
    /// waited in a full channel) goes into a newer one: a closed file is never
    /// written again.
    fn period_for(&mut self, batch_period: u64) -> u64 {
        match (self.period, self.last_closed) {
            (Some(open), _) if batch_period > open => {
                self.close_files();
                batch_period
            }
            (Some(open), _) => open,
            (None, Some(closed)) if batch_period <= closed => {
                log::warn!(
                    "lines received in period {batch_period} arrived after it was closed; writing them to the current period"
                );
                self.periods
                    .now()
                    .max(closed + self.periods.len().as_secs())
            }
            (None, _) => batch_period,
        }
    }

    fn write_batch(&mut self, batch: Batch) {
        let period = self.period_for(batch.period);
        self.period = Some(period);

        for (dest, bytes, lines) in batch.runs() {
            if !self.append(dest, bytes) {
                log::error!(
                    "gave up writing {lines} lines at shutdown: the disk did not take them"
                );
                continue;
            }
            self.stats.add(Count::LinesWritten, lines as u64);
            self.stats.add(Count::BytesWritten, bytes.len() as u64);
        }
        if batch.data.capacity() <= POOL_MAX_BUFFER {
            let _ = self.side.pool.try_send((batch.data, batch.segments));
        }
    }

    /// Appends `bytes` to `dest`'s file, retrying with back-off until it succeeds or,
    /// during shutdown, until [`SHUTDOWN_WRITE_GRACE`] has passed.
    fn append(&mut self, dest: Dest, bytes: &[u8]) -> bool {
        let mut delay = Duration::from_millis(100);
        let mut failing_since: Option<Instant> = None;
        loop {
            match self.try_append(dest, bytes) {
                Ok(()) => {
                    if failing_since.is_some() {
                        log::info!("writing works again");
                    }
                    return true;
                }
                Err(e) => {
                    self.stats.add(Count::WriteErrors, 1);
                    let msg = format!(
                        "write failed, holding {} bytes and retrying: {e}",
                        bytes.len()
                    );
                    self.stats.set_error(msg.clone());
                    self.errors.log(log::Level::Error, &msg);
                    if self.shutdown.requested()
                        && failing_since.get_or_insert_with(Instant::now).elapsed()
                            > SHUTDOWN_WRITE_GRACE
                    {
                        return false;
                    }
                    failing_since.get_or_insert_with(Instant::now);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }

    fn try_append(&mut self, dest: Dest, bytes: &[u8]) -> io::Result<()> {
        let idx = match self.files.iter().position(|(d, _)| *d == dest) {
            // Most recently used last, so that the least recently used goes first.
            Some(i) if i + 1 == self.files.len() => i,
            Some(i) => {
                let f = self.files.remove(i);
                self.files.push(f);
                self.files.len() - 1
            }
            None => {
                if self.files.len() >= MAX_OPEN_FILES {
                    let (_, f) = self.files.remove(0);
                    let path = f.path().display().to_string();
                    if let Err(e) = f.close() {
                        log::error!("fsync {path}: {e}");
                    }
                }
                let prefix = match dest {
                    Dest::Topic(i) => &self.names[i as usize],
                    Dest::Control => &self.names[self.names.len() - 1],
                };
                let path =
                    hourfile::path_for(&self.cfg.output_dir, prefix, self.period.unwrap_or(0));
                let f = HourFile::open(path.clone()).map_err(|e| {
                    io::Error::new(e.kind(), format!("open {}: {e}", path.display()))
                })?;
                log::info!("writing {}", path.display());
                self.stats.set_current_file(&path);
                self.files.push((dest, f));
                self.files.len() - 1
            }
        };
        let f = &mut self.files[idx].1;
        f.append(bytes)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", f.path().display())))
    }
}
