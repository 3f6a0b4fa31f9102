//! What crosses the channel from the reader to the writer: batches of finished lines,
//! and the back-pressure policy (`on_full`) applied when the channel is full.
//!
//! The reader copies each accepted message straight into a batch buffer, already
//! terminated by `\n`, so the writer hands a whole batch to one `write` call. Buffers
//! come back through a pool channel, so steady state allocates nothing per message
//! or per batch.

use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError, TrySendError,
};

use crate::config::OnFull;
use crate::ratelimit::RateLimited;
use crate::shutdown::Shutdown;
use crate::status::{Count, Stats};

/// How long one wait for room lasts before the shutdown flag is looked at again.
const SEND_POLL: Duration = Duration::from_millis(100);

/// What shipping a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shipped {
    /// Handed over at once (or there was nothing to hand over; or, with `on_full:
    /// drop`, dropped and counted).
    Sent,
    /// Handed over after waiting for room: reading was paused meanwhile.
    Paused,
    /// The writer is gone, or a shutdown could wait no longer: stop reading.
    Gone,
}

/// Where a run of lines goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dest {
    /// The file of configured topic number N.
    Topic(u32),
    /// The control file (multi-topic mode: messages that name no configured topic).
    Control,
}

/// A run of consecutive lines in a batch with the same destination.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    /// Where the lines go.
    pub(crate) dest: Dest,
    /// End offset of the run in [`Batch::data`] (the start is the previous end).
    pub(crate) end: usize,
    /// How many lines the run holds.
    pub(crate) lines: u32,
}

/// Lines received within one period (UTC hour), ready to write.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Start of the period (Unix seconds) in which every line here was received.
    pub(crate) period: u64,
    /// The lines, each terminated by `\n`.
    pub(crate) data: Vec<u8>,
    /// Runs of lines by destination, in order, covering `data`.
    pub(crate) segments: Vec<Segment>,
    /// Total lines.
    pub(crate) lines: u32,
}

impl Batch {
    /// Starts a batch for `period` on a recycled buffer.
    pub(crate) fn new(period: u64, mut data: Vec<u8>, mut segments: Vec<Segment>) -> Batch {
        data.clear();
        segments.clear();
        Batch {
            period,
            data,
            segments,
            lines: 0,
        }
    }

    /// Records that the bytes appended since the last call form one line for `dest`.
    #[inline]
    pub(crate) fn end_line(&mut self, dest: Dest) {
        self.lines += 1;
        let end = self.data.len();
        match self.segments.last_mut() {
            Some(s) if s.dest == dest => {
                s.end = end;
                s.lines += 1;
            }
            _ => self.segments.push(Segment {
                dest,
                end,
                lines: 1,
            }),
        }
    }

    /// Iterates over `(dest, bytes, lines)` runs.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (Dest, &[u8], u32)> {
        let mut start = 0;
        self.segments.iter().map(move |s| {
            let r = (s.dest, &self.data[start..s.end], s.lines);
            start = s.end;
            r
        })
    }
}

/// Buffers larger than this are freed rather than pooled, so that one huge message
/// does not pin its memory for the life of the process.
pub(crate) const POOL_MAX_BUFFER: usize = 1 << 20;

/// Where the writer waits: its thread, once it has waited.
///
/// crossbeam-channel's blocking `recv` spins and then calls `sched_yield` several
/// times before it sleeps; with a batch every few milliseconds, those yields made the
/// writer switch out 3-4 times per batch (344 context switches a second at 5,000
/// msg/s, against 111 for the reader). The writer instead polls the channel and
/// parks, and the reader unparks it after each batch: one wake-up per batch.
#[derive(Default)]
struct Bell {
    writer: OnceLock<Thread>,
}

impl Bell {
    fn ring(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }
}

/// The reader's end of the batch channel: crossbeam's sender, ringing the bell.
pub(crate) struct BatchTx {
    tx: Sender<Batch>,
    bell: Arc<Bell>,
}

impl BatchTx {
    /// `Sender::send_timeout`, waking the writer.
    pub(crate) fn send_timeout(
        &self,
        batch: Batch,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<Batch>> {
        self.tx.send_timeout(batch, timeout)?;
        self.bell.ring();
        Ok(())
    }

    /// `Sender::send_deadline`, waking the writer.
    pub(crate) fn send_deadline(
        &self,
        batch: Batch,
        deadline: Instant,
    ) -> Result<(), SendTimeoutError<Batch>> {
        self.tx.send_deadline(batch, deadline)?;
        self.bell.ring();
        Ok(())
    }

    /// `Sender::try_send`, waking the writer.
    pub(crate) fn try_send(&self, batch: Batch) -> Result<(), TrySendError<Batch>> {
        self.tx.try_send(batch)?;
        self.bell.ring();
        Ok(())
    }
}

impl Drop for BatchTx {
    /// The writer must see the hang-up.
    fn drop(&mut self) {
        // Disconnect first (a clone keeps nothing open: this is the only sender).
        let (tx, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.tx, tx));
        self.bell.ring();
    }
}

/// The writer's end of the batch channel.
pub(crate) struct BatchRx {
    rx: Receiver<Batch>,
    bell: Arc<Bell>,
}

impl BatchRx {
    /// `Receiver::recv_deadline`, sleeping in `park` (no spinning, no yields).
    pub(crate) fn recv_deadline(&self, deadline: Instant) -> Result<Batch, RecvTimeoutError> {
        self.bell.writer.get_or_init(thread::current);
        loop {
            match self.rx.try_recv() {
                Ok(b) => return Ok(b),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            // A ring between try_recv and here leaves the park token set: no lost
            // wake-up.
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvTimeoutError::Timeout);
            }
            thread::park_timeout(deadline - now);
        }
    }

    /// `Receiver::try_iter`.
    #[cfg(test)]
    pub(crate) fn try_iter(&self) -> crossbeam_channel::TryIter<'_, Batch> {
        self.rx.try_iter()
    }
}

/// The reader's ends of the two channels.
pub(crate) struct ReaderSide {
    /// Full batches to the writer.
    tx: BatchTx,
    /// Empty buffers back from the writer.
    pool: Receiver<(Vec<u8>, Vec<Segment>)>,
    warn_full: RateLimited,
}

impl ReaderSide {
    /// Hands `batch` to the writer under the `on_full` policy and leaves a fresh one (on
    /// a recycled buffer) in its place; counts the lines as messages, and what a full
    /// channel or a shutdown that can wait no longer costs.
    pub(crate) fn ship(
        &mut self,
        batch: &mut Batch,
        on_full: OnFull,
        stats: &Stats,
        shutdown: &Shutdown,
    ) -> Shipped {
        if batch.lines == 0 {
            return Shipped::Sent;
        }
        let (data, segments) = self.pool.try_recv().unwrap_or_default();
        let batch = std::mem::replace(batch, Batch::new(0, data, segments));
        let lines = batch.lines as u64;
        stats.add(Count::Messages, lines);
        stats.queue_in(lines);
        let bytes = batch.data.len() as u64;
        // Given up at shutdown: counted, and reported once when the process ends.
        let given_up = || {
            stats.queue_out(lines);
            stats.add(Count::LostAtShutdownLines, lines);
            stats.add(Count::LostAtShutdownBytes, bytes);
        };
        match on_full {
            OnFull::Block => {
                let mut batch = batch;
                let mut waited = false;
                loop {
                    // During a shutdown, wait for room only until its deadline.
                    let sent = match shutdown.deadline() {
                        Some(end) => self.tx.send_deadline(batch, end),
                        None => self.tx.send_timeout(batch, SEND_POLL),
                    };
                    match sent {
                        Ok(()) if waited => return Shipped::Paused,
                        Ok(()) => return Shipped::Sent,
                        Err(SendTimeoutError::Timeout(b)) => {
                            batch = b;
                            waited = true;
                            self.warn_full.log(
                                log::Level::Warn,
                                "channel to the writer is full: pausing reads (on_full = block)",
                            );
                            if shutdown.past_deadline() {
                                given_up();
                                return Shipped::Gone;
                            }
                        }
                        Err(SendTimeoutError::Disconnected(_)) => {
                            given_up();
                            return Shipped::Gone;
                        }
                    }
                }
            }
            OnFull::Drop => match self.tx.try_send(batch) {
                Ok(()) => Shipped::Sent,
                Err(TrySendError::Full(_)) => {
                    stats.queue_out(lines);
                    stats.add(Count::Dropped, lines);
                    self.warn_full.log(
                        log::Level::Warn,
                        &format!(
                            "channel to the writer is full: dropped {lines} messages (on_full = drop)"
                        ),
                    );
                    Shipped::Sent
                }
                Err(TrySendError::Disconnected(_)) => Shipped::Gone,
            },
        }
    }
}

/// The writer's ends of the two channels.
pub(crate) struct WriterSide {
    /// Full batches from the reader.
    pub(crate) rx: BatchRx,
    /// Empty buffers back to the reader.
    pub(crate) pool: Sender<(Vec<u8>, Vec<Segment>)>,
}

/// How many messages one batch may hold, and how many batches the channel holds, so
/// that the channel never holds more than about `buffer_size` messages.
pub(crate) fn shape(buffer_size: usize) -> (usize, usize) {
    let per_batch = (buffer_size / 8).clamp(1, 1024);
    let batches = (buffer_size / per_batch).max(1);
    (per_batch, batches)
}

/// The two channels between reader and writer for a channel of `buffer_size` messages.
pub(crate) fn channel(buffer_size: usize) -> (ReaderSide, WriterSide) {
    let (_, batches) = shape(buffer_size);
    let (tx, rx) = crossbeam_channel::bounded(batches);
    let (pool_tx, pool_rx) = crossbeam_channel::bounded(batches + 2);
    let bell = Arc::new(Bell::default());
    (
        ReaderSide {
            tx: BatchTx {
                tx,
                bell: bell.clone(),
            },
            pool: pool_rx,
            warn_full: RateLimited::new(Duration::from_secs(10)),
        },
        WriterSide {
            rx: BatchRx { rx, bell },
            pool: pool_tx,
        },
    )
}
