//! The writer thread: takes batches off the channel and appends them to the period's
//! files; rotates and closes files at the end of each period; retries failed writes
//! with back-off, holding the batch (and so, through the bounded channel, pausing the
//! reader) until the disk takes it.
//!
//! About once a second it checks that each open file's path still leads to it: a file
//! deleted with output_dir, or moved away, is noticed within a few seconds, and writing
//! goes on in a new file at the path (output_dir is created again if needed). During a
//! shutdown it waits for the disk only until the shutdown's deadline, then counts what
//! it could not write instead of holding the exit.

mod closed;
mod hourfile;

use std::fs;
use std::io;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use crate::batch::{Batch, Dest, POOL_MAX_BUFFER, WriterSide};
use crate::clock::{self, Periods, Timing};
use crate::config::{Config, ConfigError, Output};
use crate::message::route;
use crate::ratelimit::RateLimited;
use crate::shutdown::Shutdown;
use crate::status::{Count, Stats};
use hourfile::{HourFile, PathState};

/// The file of messages that name no configured topic.
const CONTROL: &str = "_control";
/// Files open at once. Every configured topic has a file; past this many, the least
/// recently written is closed (fsynced) and opened again when its next line comes, so
/// that thousands of topics stay within a service's file limit (1024 in deploy/).
const MAX_OPEN_FILES: usize = 256;
/// How often the open files' paths are checked (one `stat` per open file).
const PATH_CHECK: Duration = Duration::from_secs(1);
/// Longest pause between retries of a failing write.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Creates `output_dir` if needed and proves it writable with a probe file; called
/// when recording starts (loading the config touches nothing).
pub(crate) fn prepare_output_dir(cfg: &Config) -> Result<(), ConfigError> {
    let dir = &cfg.output.output_dir;
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
    output: &'a Output,
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
    /// When the open files' paths are checked next.
    next_check: Instant,
    /// The lowest period that may be opened: the newest hour on disk, or the one
    /// after it when that one is compressed (the clock may be behind the files).
    floor: u64,
    /// The clock's period of the last "clock is behind" warning.
    warned_behind: Option<u64>,
    errors: RateLimited,
    /// Files given up on past the shutdown's deadline: nothing more is written to
    /// them, so that a later, smaller batch that the disk still takes cannot leave a
    /// hole before it (each file stays a prefix of what arrived).
    given_up: Vec<Dest>,
}

impl<'a> Writer<'a> {
    /// A writer of `output` for `topics`, fed by `side`.
    pub(crate) fn new(
        output: &'a Output,
        topics: &[String],
        stats: &'a Stats,
        shutdown: &'a Shutdown,
        side: WriterSide,
        timing: Timing,
    ) -> Writer<'a> {
        Writer {
            output,
            stats,
            shutdown,
            side,
            names: topics
                .iter()
                .map(|t| route::file_name(t))
                .chain([CONTROL.to_string()])
                .collect(),
            periods: timing.periods,
            close_grace: timing.close_grace,
            period: None,
            last_closed: None,
            files: Vec::new(),
            next_check: Instant::now() + PATH_CHECK,
            floor: 0,
            warned_behind: None,
            errors: RateLimited::new(Duration::from_secs(30)),
            given_up: Vec::new(),
        }
    }

    /// Runs until the reader hangs up and the channel is empty, then closes the files.
    pub(crate) fn run(mut self) {
        loop {
            let deadline = self.next_deadline();
            match self.side.rx.recv_deadline(deadline) {
                Ok(batch) => {
                    self.stats.queue_out(batch.lines as u64);
                    self.write_batch(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.on_timers();
        }
        self.close_files();
        log::info!("writer: all lines written, files closed");
    }

    fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        let mut deadline = now + Duration::from_secs(3600);
        if let Some(p) = self.period {
            let end = Duration::from_secs(p) + self.periods.len() + self.close_grace;
            deadline = deadline.min(now + end.saturating_sub(clock::now()));
        }
        if !self.files.is_empty() {
            deadline = deadline.min(self.next_check);
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
        if Instant::now() >= self.next_check {
            self.next_check = Instant::now() + PATH_CHECK;
            self.check_paths();
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

    /// Notices open files whose path leads elsewhere now (deleted with output_dir,
    /// moved away by a sync tool or an operator) and continues each in a new file at
    /// its path. A moved file keeps every line written to it; the lines written to a
    /// deleted one since the last check are copied into the new file, since they
    /// exist nowhere else.
    fn check_paths(&mut self) {
        for i in 0..self.files.len() {
            let state = self.files[i].1.check_path();
            if state == PathState::Ours {
                continue;
            }
            let path = self.files[i].1.path().to_path_buf();
            let fresh = self.ensure_dir().and_then(|()| {
                HourFile::open(path.clone())
                    .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))
            });
            let mut fresh = match fresh {
                Ok(f) => f,
                Err(e) => {
                    // Retried by the next check; the old file keeps taking lines meanwhile.
                    self.errors.log(
                        log::Level::Error,
                        &format!("{} is gone and cannot be opened again: {e}", path.display()),
                    );
                    continue;
                }
            };
            let saved = match state {
                PathState::Deleted => match self.files[i].1.copy_unchecked_tail(&mut fresh) {
                    Ok(n) => {
                        format!("; the {n} bytes written since the last check were copied into it")
                    }
                    Err(e) => format!("; the lines written since the last check are lost: {e}"),
                },
                _ => String::new(),
            };
            let old = std::mem::replace(&mut self.files[i].1, fresh);
            let _ = old.close();
            self.stats.add(Count::OutputReopened, 1);
            let what = match state {
                PathState::Deleted => "was deleted",
                _ => "was moved away or replaced (its lines so far stay in the moved file)",
            };
            let msg = format!(
                "{} {what}; continuing in a new file at the path{saved}",
                path.display()
            );
            log::warn!("{msg}");
            self.stats.set_error(msg);
        }
    }

    /// Creates output_dir again when it is gone (an `rm -rf`, a disk that went away).
    fn ensure_dir(&self) -> io::Result<()> {
        let dir = &self.output.output_dir;
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", dir.display())))?;
        log::warn!("output_dir {} was missing; created it again", dir.display());
        Ok(())
    }

    /// The period a batch is written to. A batch from a period already closed (it
    /// waited in a full channel) goes into a newer one: a closed file is never
    /// written again. Nor is a compressed hour: when the clock is behind the newest
    /// hour on disk, lines go to that hour (or the one after it, when it is
    /// compressed) until the clock catches up.
    fn period_for(&mut self, batch_period: u64) -> u64 {
        if self.period.is_none_or(|open| batch_period > open) {
            // A new period is about to be opened: look at the disk once.
            self.floor = self.scan_floor();
        }
        let wanted = batch_period.max(self.floor);
        if wanted > batch_period && self.warned_behind != Some(batch_period) {
            self.warned_behind = Some(batch_period);
            let newest = self.floor_newest();
            let what = if newest > batch_period {
                format!(
                    "the clock ({}) is behind the newest hour file in {} ({})",
                    clock::rfc3339_secs(clock::now().as_secs()),
                    self.output.output_dir.display(),
                    clock::rfc3339_secs(newest)
                )
            } else {
                format!(
                    "the clock's hour ({}) is already compressed in {}",
                    clock::rfc3339_secs(batch_period),
                    self.output.output_dir.display()
                )
            };
            log::warn!(
                "{what}: is the time synchronised yet? Writing to the {} hour until the clock reaches it",
                clock::rfc3339_secs(wanted)
            );
        }
        match (self.period, self.last_closed) {
            (Some(open), _) if wanted > open => {
                self.close_files();
                wanted
            }
            (Some(open), _) => open,
            (None, Some(closed)) if wanted <= closed => {
                log::warn!(
                    "lines received in period {batch_period} arrived after it was closed; writing them to the current period"
                );
                self.periods
                    .now()
                    .max(closed + self.periods.len().as_secs())
                    .max(self.floor)
            }
            (None, _) => wanted,
        }
    }

    /// The lowest period that may be opened, from the files on disk.
    fn scan_floor(&self) -> u64 {
        match closed::newest(&self.output.output_dir, &self.names) {
            Some(n) if n.compressed => n.period + self.periods.len().as_secs(),
            Some(n) => n.period,
            None => 0,
        }
    }

    /// The newest hour on disk, for the warning (the floor, or the hour before it).
    fn floor_newest(&self) -> u64 {
        closed::newest(&self.output.output_dir, &self.names).map_or(self.floor, |n| n.period)
    }

    fn write_batch(&mut self, batch: Batch) {
        let period = self.period_for(batch.period);
        self.period = Some(period);

        for (dest, bytes, lines) in batch.runs() {
            if self.given_up.contains(&dest) || !self.append(dest, bytes) {
                if !self.given_up.contains(&dest) {
                    self.given_up.push(dest);
                }
                // Reported once, with the total, when the process ends.
                self.stats.add(Count::LostAtShutdownLines, lines as u64);
                self.stats
                    .add(Count::LostAtShutdownBytes, bytes.len() as u64);
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
    /// during shutdown, until the shutdown's deadline (after it, one try each).
    fn append(&mut self, dest: Dest, bytes: &[u8]) -> bool {
        let mut delay = Duration::from_millis(100);
        let mut failing = false;
        loop {
            match self.try_append(dest, bytes) {
                Ok(()) => {
                    if failing {
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
                    failing = true;
                    match self.shutdown.deadline() {
                        Some(end) => {
                            let left = end.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                return false;
                            }
                            std::thread::sleep(delay.min(left));
                        }
                        // Cut short by a shutdown, which then has its deadline.
                        None => {
                            self.shutdown.sleep(delay);
                        }
                    }
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
                }
                .clone();
                let mut period = self.period.unwrap_or(0);
                let mut path = hourfile::path_for(&self.output.output_dir, &prefix, period);
                while closed::compressed(&path) {
                    // Compressed by cron: closed for good. Every file of this period
                    // moves on to the next one, so that all stay in one period.
                    let next = period + self.periods.len().as_secs();
                    log::warn!(
                        "{} is compressed, so its hour is closed; writing to the next hour ({}) instead",
                        path.display(),
                        clock::rfc3339_secs(next)
                    );
                    self.close_files();
                    self.period = Some(next);
                    self.floor = self.floor.max(next);
                    period = next;
                    path = hourfile::path_for(&self.output.output_dir, &prefix, period);
                }
                self.ensure_dir()?;
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
