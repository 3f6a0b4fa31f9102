//! The one shutdown signal of a recording process.
//!
//! Every thread learns of a shutdown from this one value: a flag to look at between
//! steps, a channel whose disconnection wakes every blocking wait on it at once (the
//! back-off sleep), and a socket that wakes the status thread's `poll` without
//! depending on the status socket's path still existing. The status thread is released
//! last, after the writer has closed the files, so `--status` answers until then.
//!
//! A shutdown has one deadline, [`SHUTDOWN_BUDGET`] after it was triggered, shared by
//! the reader and the writer: whatever the disk does, neither waits for it past that
//! moment, so the process ends within 3 s of the signal (lines not written by then are
//! counted and reported, not waited for batch by batch).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

/// How long after the trigger the reader and writer may still wait for the writer and
/// the disk. The reader's close handshake (300 ms) and the files' fsync come on top;
/// 2 s leaves most of a second of the 3 s promise for them on a slow machine.
pub(crate) const SHUTDOWN_BUDGET: Duration = Duration::from_secs(2);

/// Set once, by a signal (or a fatal error); read by every thread.
pub(crate) struct Shutdown {
    flag: AtomicBool,
    /// When waiting for the disk stops: set by the first trigger.
    deadline: OnceLock<Instant>,
    /// Dropped on shutdown: every `recv` on [`Shutdown::waker`] returns at once.
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
    /// Written when the status thread may stop; it polls the other end.
    wake_tx: Mutex<Option<UnixStream>>,
    wake_rx: UnixStream,
}

impl Shutdown {
    /// A shutdown not yet requested.
    pub(crate) fn new() -> std::io::Result<Shutdown> {
        let (tx, rx) = crossbeam_channel::bounded(0);
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        Ok(Shutdown {
            flag: AtomicBool::new(false),
            deadline: OnceLock::new(),
            tx: Mutex::new(Some(tx)),
            rx,
            wake_tx: Mutex::new(Some(wake_tx)),
            wake_rx,
        })
    }

    /// Requests the shutdown and wakes every waiter; true the first time.
    pub(crate) fn trigger(&self) -> bool {
        let _ = self.deadline.set(Instant::now() + SHUTDOWN_BUDGET);
        let first = !self.flag.swap(true, Relaxed);
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        first
    }

    /// Lets the status thread stop (after the reader and writer have finished).
    pub(crate) fn release_status(&self) {
        self.trigger();
        if let Ok(mut w) = self.wake_tx.lock() {
            if let Some(mut s) = w.take() {
                let _ = s.write_all(b"q");
            }
        }
    }

    /// Whether a shutdown was requested.
    #[inline]
    pub(crate) fn requested(&self) -> bool {
        self.flag.load(Relaxed)
    }

    /// The moment the shutdown stops waiting for the disk (none before a trigger).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline.get().copied()
    }

    /// Whether a shutdown was requested and its deadline has passed.
    pub(crate) fn past_deadline(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Blocks until a shutdown is requested.
    pub(crate) fn wait(&self) {
        while self.sleep(Duration::from_secs(3600)) {}
    }

    /// Sleeps for `d` unless a shutdown comes first; true if the whole sleep passed.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        matches!(self.rx.recv_timeout(d), Err(RecvTimeoutError::Timeout))
    }

    /// The socket that becomes readable when the status thread may stop (for `poll`).
    pub(crate) fn wake_socket(&self) -> &UnixStream {
        &self.wake_rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn trigger_wakes_sleepers_and_the_socket() {
        let s = Shutdown::new().unwrap();
        assert!(s.sleep(Duration::from_millis(1)));
        std::thread::scope(|scope| {
            let t = scope.spawn(|| {
                let start = Instant::now();
                assert!(!s.sleep(Duration::from_secs(30)));
                start.elapsed()
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(s.trigger());
            assert!(t.join().unwrap() < Duration::from_secs(5));
        });
        assert!(!s.trigger());
        assert!(s.requested());
        let d = s.deadline().expect("a deadline once triggered");
        assert!(d <= Instant::now() + SHUTDOWN_BUDGET);
        s.wait();
        s.release_status();
        let mut b = [0u8; 1];
        use std::io::Read;
        assert_eq!((&s.wake_rx).read(&mut b).unwrap(), 1);
    }
}
