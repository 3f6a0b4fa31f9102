//! Wiring: load the config, then either answer `--status`, run a tool, or record:
//! start the writer, reader and status threads and shut them down in order.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::batch;
use crate::cli::{Args, Command};
use crate::clock::Timing;
use crate::config::Config;
use crate::error::Fatal;
use crate::journal::gaps;
use crate::logging;
use crate::presets;
use crate::reader::Reader;
use crate::shutdown::Shutdown;
use crate::status::{self, Count, Stats, StatusServer};
use crate::writer::{self, Writer};

/// Exit code of a recording that ended with lines the disk did not take before the
/// shutdown's deadline (the log says how many).
const EXIT_LOST_AT_SHUTDOWN: u8 = 4;
/// How long past the shutdown's deadline the reader and writer may take to finish (the
/// close handshake, the files' fsync) before the process exits without them: a write
/// or fsync stuck in the kernel (a dead NFS server, a failing SD card) must not hold
/// the exit. Deadline (2 s) + this = the 3 s promise.
const FINISH_GRACE: Duration = Duration::from_millis(900);

/// Runs what the flags ask for; returns the exit code.
pub(crate) fn run(args: Args) -> Result<u8, Fatal> {
    if args.version {
        println!("wsrec {}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    if args.json && !args.status {
        return Err(Fatal::Usage("--json goes with --status".into()));
    }
    if let Some(Command::Init(i)) = &args.command {
        return presets::run(i.name.as_deref());
    }
    let cfg = Config::load(Path::new(&args.config))?;
    if let Some(Command::Gaps(g)) = &args.command {
        return gaps::run(&cfg.output_dir, g);
    }
    if args.status {
        let path = cfg
            .status_socket
            .as_ref()
            .ok_or_else(|| cfg.error("status_socket", "is empty, so there is nothing to ask"))?;
        return status::query(path, args.json);
    }
    record(cfg, args.debug)
}

/// Starts a named thread in `scope`.
fn spawn<'scope, 'env>(
    scope: &'scope thread::Scope<'scope, 'env>,
    name: &str,
    f: impl FnOnce() + Send + 'scope,
) -> Result<thread::ScopedJoinHandle<'scope, ()>, Fatal> {
    thread::Builder::new()
        .name(name.into())
        .spawn_scoped(scope, f)
        .map_err(|e| Fatal::Other(format!("cannot start the {name} thread: {e}")))
}

/// Records until SIGINT/SIGTERM.
fn record(cfg: Config, debug: bool) -> Result<u8, Fatal> {
    logging::init(&cfg, debug)?;
    let shutdown = Arc::new(
        Shutdown::new()
            .map_err(|e| Fatal::Other(format!("cannot create the shutdown wake: {e}")))?,
    );
    // A panic aborts the process (panic = "abort"): put it in the log first, where the
    // operator looks, not only on stderr. Builds that unwind (tests) stop the others.
    let default_hook = std::panic::take_hook();
    let on_panic = shutdown.clone();
    std::panic::set_hook(Box::new(move |info| {
        let thread = thread::current();
        log::error!("thread {} panicked: {info}", thread.name().unwrap_or("?"));
        on_panic.trigger();
        default_hook(info);
    }));
    writer::prepare_output_dir(&cfg)?;
    let mut server = match &cfg.status_socket {
        Some(p) => Some(StatusServer::bind(p)?),
        None => None,
    };
    log::info!(
        "wsrec {} starting: {} -> {} (topics: {})",
        env!("CARGO_PKG_VERSION"),
        cfg.ws_url.url,
        cfg.output_dir.display(),
        cfg.topics.join(", ")
    );

    {
        let shutdown = shutdown.clone();
        ctrlc::set_handler(move || {
            if shutdown.trigger() {
                log::info!("signal received: shutting down");
            }
        })
        .map_err(|e| Fatal::Other(format!("cannot install the signal handler: {e}")))?;
    }
    let shutdown = &*shutdown;
    let stats = &status::Stats::new(cfg.buffer_size, cfg.stale_timeout.as_secs_f64())
        .with_data_timeout(cfg.continuity.data_timeout.map(|d| d.as_secs_f64()));
    let cfg = &cfg;
    let timing = Timing::from_env();
    let (reader_side, writer_side) = batch::channel(cfg.buffer_size);

    thread::scope(|scope| -> Result<(), Fatal> {
        let status_thread = match server.as_mut() {
            Some(server) => Some(spawn(scope, "status", move || {
                server.serve(stats, shutdown)
            })?),
            None => None,
        };
        let writer = Writer::new(cfg, stats, shutdown, writer_side, timing);
        let writer = spawn(scope, "writer", move || writer.run());
        let reader = Reader::new(cfg, stats, shutdown, reader_side, timing);
        let reader = writer.and_then(|w| Ok((w, spawn(scope, "reader", move || reader.run())?)));
        // Shutdown order: the reader stops and hangs up; the writer drains the channel
        // and closes the files; then the status thread goes, and its socket with it.
        let started = match reader {
            Ok((writer, reader)) => {
                shutdown.wait();
                let hard = shutdown.deadline().unwrap_or_else(Instant::now) + FINISH_GRACE;
                while !(reader.is_finished() && writer.is_finished()) {
                    if Instant::now() >= hard {
                        abandon(stats);
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                // Only in builds that unwind (tests); release builds abort in the hook.
                let panicked = [("reader", reader.join()), ("writer", writer.join())]
                    .into_iter()
                    .find_map(|(name, r)| r.is_err().then_some(name));
                match panicked {
                    Some(name) => Err(Fatal::Other(format!(
                        "the {name} thread panicked; see the log"
                    ))),
                    None => Ok(()),
                }
            }
            // A thread that did not start: stop the ones that did.
            Err(e) => {
                shutdown.trigger();
                Err(e)
            }
        };
        shutdown.release_status();
        if let Some(t) = status_thread {
            let _ = t.join();
        }
        started
    })?;
    drop(server);
    let code = report_lost(stats);
    log::info!("stopped: {}", stats.snapshot().line());
    Ok(code)
}

/// Logs, once, the lines given up at shutdown; the exit code that goes with them.
fn report_lost(stats: &Stats) -> u8 {
    let lines = stats.get(Count::LostAtShutdownLines);
    if lines == 0 {
        return 0;
    }
    log::error!(
        "shutdown: {lines} lines ({} bytes) could not be written: the disk did not take them before the shutdown deadline; exit code {EXIT_LOST_AT_SHUTDOWN}",
        stats.get(Count::LostAtShutdownBytes)
    );
    EXIT_LOST_AT_SHUTDOWN
}

/// Ends the process when the reader or writer is stuck past the shutdown's deadline
/// (in a write or fsync the kernel does not finish): what was written stays in the
/// page cache; the lines not yet written are counted as lost. The status socket file
/// stays behind; the next start replaces it.
fn abandon(stats: &Stats) -> ! {
    let handled = [
        Count::LinesWritten,
        Count::Dropped,
        Count::LostAtShutdownLines,
    ]
    .map(|c| stats.get(c))
    .iter()
    .sum::<u64>();
    let unwritten = stats.get(Count::Messages).saturating_sub(handled);
    stats.add(Count::LostAtShutdownLines, unwritten);
    log::error!(
        "shutdown: the writer (or reader) is still busy {:.1}s past the deadline, stuck in a write or fsync; exiting without it",
        FINISH_GRACE.as_secs_f64()
    );
    let code = report_lost(stats);
    log::info!("stopped: {}", stats.snapshot().line());
    std::process::exit(code.into())
}
