//! Wiring: load the config, then either answer `--status`, run a tool, or record:
//! start the writer, reader and status threads and shut them down in order.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::batch;
use crate::cli::{Args, Command};
use crate::clock::Periods;
use crate::config::Config;
use crate::error::Fatal;
use crate::reader::Reader;
use crate::stats::Stats;
use crate::status::{self, StatusServer};
use crate::writer::Writer;
use crate::{gaps, logging};

/// Runs what the flags ask for; returns the exit code.
pub fn run(args: Args) -> Result<u8, Fatal> {
    if args.version {
        println!("wsrec {}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    if args.json && !args.status {
        return Err(Fatal::Usage("--json goes with --status".into()));
    }
    let cfg = Config::load(Path::new(&args.config))?;
    if let Some(Command::Gaps(g)) = &args.command {
        return gaps::run(&cfg.output_dir, g);
    }
    if args.status {
        let path = cfg.status_socket.as_ref().ok_or_else(|| {
            Fatal::Usage(format!(
                "config {}: field \"status_socket\" is empty, so there is nothing to ask",
                args.config
            ))
        })?;
        return status::query(path, args.json);
    }
    record(cfg, args.debug)
}

fn spawn<F: FnOnce() + Send + 'static>(name: &str, f: F) -> Result<thread::JoinHandle<()>, Fatal> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Fatal::Other(format!("cannot start the {name} thread: {e}")))
}

/// Records until SIGINT/SIGTERM.
fn record(cfg: Config, debug: bool) -> Result<u8, Fatal> {
    logging::init(&cfg, debug)?;
    let server = match &cfg.status_socket {
        Some(p) => Some(Arc::new(StatusServer::bind(p)?)),
        None => None,
    };
    let cfg = Arc::new(cfg);
    log::info!(
        "wsrec {} starting: {} -> {} (topics: {})",
        env!("CARGO_PKG_VERSION"),
        cfg.ws_url.url,
        cfg.output_dir.display(),
        cfg.topics.join(", ")
    );

    let quit = Arc::new(AtomicBool::new(false));
    // Dropping the sender wakes every wait on the receiver at once.
    let (quit_tx, quit_rx) = crossbeam_channel::bounded::<()>(0);
    let quit_tx = Mutex::new(Some(quit_tx));
    {
        let quit = quit.clone();
        ctrlc::set_handler(move || {
            if !quit.swap(true, Relaxed) {
                log::info!("signal received: shutting down");
            }
            if let Ok(mut tx) = quit_tx.lock() {
                tx.take();
            }
        })
        .map_err(|e| Fatal::Other(format!("cannot install the signal handler: {e}")))?;
    }

    let stats = Arc::new(Stats::new(cfg.buffer_size, cfg.stale_timeout.as_secs_f64()));
    let periods = Periods::from_env();
    let (reader_side, writer_side) = batch::channel(cfg.buffer_size);

    let writer = Writer::new(
        cfg.clone(),
        stats.clone(),
        writer_side,
        periods,
        quit.clone(),
    );
    let writer = spawn("writer", move || writer.run())?;
    let reader = Reader::new(
        cfg.clone(),
        stats.clone(),
        reader_side,
        periods,
        quit.clone(),
        quit_rx,
    );
    let reader = spawn("reader", move || reader.run())?;
    let status_thread = server
        .clone()
        .map(|s| status::spawn(s, stats.clone(), quit.clone()));

    // Shutdown order: the reader stops and hangs up; the writer drains the channel and
    // closes the files; then the status socket goes.
    let reader_ok = reader.join().is_ok();
    let writer_ok = writer.join().is_ok();
    quit.store(true, Relaxed);
    if let (Some(server), Some(t)) = (server.as_ref(), status_thread) {
        status::wake(server.path());
        let _ = t.join();
    }
    drop(server);
    if !(reader_ok && writer_ok) {
        return Err(Fatal::Other("a thread panicked; see the log".into()));
    }
    log::info!("stopped: {}", stats.snapshot().line());
    Ok(0)
}
