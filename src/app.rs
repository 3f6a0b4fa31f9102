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
use crate::exit_codes::Exit;
use crate::journal::gaps;
use crate::logging;
use crate::presets;
use crate::reader::Reader;
use crate::shutdown::Shutdown;
use crate::status::{self, Count, Report, Stats, StatusServer};
use crate::writer::{self, Writer};

/// How long past the shutdown's deadline the reader and writer may take to finish (the
/// close handshake, the files' fsync) before the process exits without them: a write
/// or fsync stuck in the kernel (a dead NFS server, a failing SD card) must not hold
/// the exit. Deadline (2 s) + this = the 3 s promise.
const FINISH_GRACE: Duration = Duration::from_millis(900);

/// Runs what the flags ask for; returns the exit code.
pub(crate) fn run(args: Args) -> Result<u8, Fatal> {
    if args.version {
        println!("wsrec {}", env!("CARGO_PKG_VERSION"));
        return Ok(Exit::Success.into());
    }
    if args.json && !args.status {
        return Err(Fatal::Usage(
            "--json goes with --status (see `wsrec --help`)".into(),
        ));
    }
    if let Some(Command::Init(i)) = &args.command {
        return presets::run(i.name.as_deref(), i.systemd);
    }
    let path = Path::new(&args.config);
    if path.try_exists().ok() == Some(false) {
        return Err(Fatal::Usage(format!(
            "config {}: cannot read: no such file; name the config with --config PATH, or write one with `wsrec init NAME > {}` (`wsrec init` lists the venue presets)",
            path.display(),
            path.display()
        )));
    }
    let cfg = Config::load(path)?;
    if let Some(Command::Gaps(g)) = &args.command {
        return gaps::run(&cfg.output.output_dir, g);
    }
    if args.status {
        let path =
            cfg.operations.status_socket.as_ref().ok_or_else(|| {
                cfg.error("status_socket", "is empty, so there is nothing to ask")
            })?;
        return status::query(path, args.json);
    }
    record(cfg, args.debug, &args.config)
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
fn record(cfg: Config, debug: bool, config_arg: &str) -> Result<u8, Fatal> {
    logging::init(&cfg.operations, &cfg.path, debug)?;
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
    let mut server = match &cfg.operations.status_socket {
        Some(p) => Some(StatusServer::bind(p)?),
        None => None,
    };
    log::info!(
        "wsrec {} starting: {} -> {} (topics: {})",
        env!("CARGO_PKG_VERSION"),
        cfg.connection.ws_url.url,
        cfg.output.output_dir.display(),
        cfg.messages.topics.join(", ")
    );
    // One line on stderr whatever it is (a terminal, the journal): where things go.
    let log = match &cfg.operations.log_file {
        Some(p) => format!("log in {}", p.display()),
        None if cfg.operations.log_to_stdout || debug => "log on stdout".to_string(),
        None => "no log (log_file is empty)".to_string(),
    };
    let status = match &cfg.operations.status_socket {
        Some(_) => format!("; `wsrec --config {config_arg} --status` tells how it goes"),
        None => String::new(),
    };
    eprintln!(
        "wsrec: recording {} into {}; {log}{status}",
        cfg.connection.ws_url.url,
        cfg.output.output_dir.display()
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
    let stats = &status::Stats::new(
        cfg.output.buffer_size,
        cfg.keep_alive.stale_timeout.as_secs_f64(),
    )
    .with_data_timeout(cfg.continuity.data_timeout.map(|d| d.as_secs_f64()));
    let cfg = &cfg;
    let timing = Timing::from_env();
    let (reader_side, writer_side) = batch::channel(cfg.output.buffer_size);

    thread::scope(|scope| -> Result<(), Fatal> {
        let mut report = Report::new(
            cfg.operations.status_interval,
            cfg.operations.metrics_file.clone(),
        );
        let server = server.as_mut();
        let status_thread = spawn(scope, "status", move || {
            match server {
                Some(server) => server.serve(stats, shutdown, &mut report),
                None => report.run(stats, shutdown),
            }
            report.finish(stats);
        })?;
        let writer = Writer::new(
            &cfg.output,
            &cfg.messages.topics,
            stats,
            shutdown,
            writer_side,
            timing,
        );
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
        let _ = status_thread.join();
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
        return Exit::Success.into();
    }
    log::error!(
        "shutdown: {lines} lines ({} bytes) could not be written: the disk did not take them before the shutdown deadline; exit code {}",
        stats.get(Count::LostAtShutdownBytes),
        u8::from(Exit::LostAtShutdown)
    );
    Exit::LostAtShutdown.into()
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
