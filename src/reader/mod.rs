//! The reader thread: owns the WebSocket. It connects ([`connect`]), subscribes, runs
//! the connection's read loop ([`session`]) that feeds the line sink ([`lines`]), and on
//! any failure logs why, backs off ([`backoff`]) and reconnects, until told to stop.

mod backoff;
mod connect;
mod handover;
mod lines;
pub(crate) mod plan;
mod redundant;
mod session;
mod stall;
pub(crate) mod welcome;

use tungstenite::Message;

use crate::batch::ReaderSide;
use crate::clock::Timing;
use crate::config::Config;
use crate::journal::coverage::{Coverage, Span};
use crate::shutdown::Shutdown;
use crate::status::{Count, Stats};
use backoff::Backoff;
use connect::Ws;
use lines::LineSink;
use session::{Cause, End, Session};

/// The reader thread's state, across connections.
pub(crate) struct Reader<'a> {
    cfg: &'a Config,
    stats: &'a Stats,
    shutdown: &'a Shutdown,
    lines: LineSink<'a>,
    coverage: Option<Coverage>,
    timing: Timing,
    /// With `redundant`: which line this reader is.
    line: Option<redundant::LineOf<'a>>,
}

impl<'a> Reader<'a> {
    /// A reader for `cfg` feeding `side`.
    pub(crate) fn new(
        cfg: &'a Config,
        stats: &'a Stats,
        shutdown: &'a Shutdown,
        side: ReaderSide,
        timing: Timing,
    ) -> Reader<'a> {
        Reader::with(cfg, stats, shutdown, side.into(), timing, None)
    }

    /// A reader whose batches go to `out`: the channel, or with `redundant` the
    /// arbiter of `line`. Either way it resumes by cursor when one is configured.
    fn with(
        cfg: &'a Config,
        stats: &'a Stats,
        shutdown: &'a Shutdown,
        out: lines::Out<'a>,
        timing: Timing,
        line: Option<redundant::LineOf<'a>>,
    ) -> Reader<'a> {
        let coverage = cfg.output.coverage_journal.then(|| {
            let c = Coverage::new(&cfg.output.output_dir, timing.checkpoint);
            match &line {
                Some(l) => c.for_line(l.name()),
                None => c,
            }
        });
        Reader {
            cfg,
            stats,
            shutdown,
            lines: LineSink::new(
                &cfg.messages,
                &cfg.output,
                cfg.connection.max_message_bytes,
                stats,
                shutdown,
                out,
                timing.periods,
            )
            .resume(cfg),
            coverage,
            timing,
            line,
        }
    }

    /// The URL this reader connects to, for the log (with `redundant`, after its
    /// line's name).
    fn url(&self) -> String {
        let url = match self.line.as_ref().and_then(|l| l.url) {
            Some(u) => &u.url,
            None => &self.cfg.connection.ws_url.url,
        };
        match &self.line {
            Some(l) => format!("line {} ({url})", l.name()),
            None => url.clone(),
        }
    }

    /// Connected and subscribed, or not: the status's `connected` (and, with
    /// `redundant`, the line's).
    fn set_up(&self, up: bool) {
        match &self.line {
            Some(l) => l.set_up(up, self.stats),
            None => self.stats.set_connected(up),
        }
    }

    /// Connects, reads and reconnects until told to stop; then hangs up the channel
    /// (by being dropped).
    pub(crate) fn run(mut self) {
        if let (None, Some(r)) = (&self.line, &self.cfg.continuity.redundant) {
            // Reader::new made this sink for the channel; the lines get their own.
            let side = self
                .lines
                .into_side()
                .expect("the reader's sink feeds the channel");
            return redundant::run(self.cfg, self.stats, self.shutdown, side, self.timing, r);
        }
        let mut backoff = Backoff::new(
            self.cfg.connection.reconnect_initial_delay,
            self.cfg.connection.reconnect_max_delay,
        );
        while !self.shutdown.requested() {
            self.stats.add(Count::Attempts, 1);
            // Line B's own URL or ws_url, with {cursor} filled in; a URL command's
            // URL comes first (each line runs it: KuCoin gives each its own token).
            let line_url = self.line.as_ref().and_then(|l| l.url);
            let base = line_url.unwrap_or(&self.cfg.connection.ws_url);
            let filled = self.lines.url(base);
            if let Some(u) = &filled {
                log::info!("connecting to {} (cursor filled in)", u.url);
            }
            let url = filled.or_else(|| line_url.cloned());
            let (end, retry_after, span) =
                match connect::connect(&self.cfg.connection, url.as_ref()) {
                    Ok(ws) => {
                        let (end, span) = self.connection(ws);
                        (end, None, Some(span))
                    }
                    Err(e) => (End::failed(e.reason), e.retry_after, None),
                };
            let delivered = span.as_ref().is_some_and(|s| s.messages > 0);
            let (reason, cause) = match end {
                End::Quit => {
                    self.journal(span, "shutdown");
                    break;
                }
                End::Lost { reason, cause } => (reason, cause),
                // The server is going away and says so: reconnect at once.
                End::GoingAway(reason) => {
                    self.journal(span, &reason);
                    self.stats.add(Count::PlannedReconnects, 1);
                    log::info!("{}: {reason}; reconnecting at once", self.url());
                    backoff.reset();
                    continue;
                }
                // Only inside a connection (see `sessions`).
                End::Planned(reason) => (reason, Cause::ServerClosed),
                End::HandedOver | End::HandoverFailed => ("handover".into(), Cause::ServerClosed),
            };
            self.journal(span, &reason);
            let url = self.url();
            if cause == Cause::ServerClosed {
                log::info!("{url}: {reason}");
            } else {
                log::warn!("{url}: {reason}");
                self.stats.set_error(format!("{url}: {reason}"));
            }
            if delivered && cause != Cause::Oversize {
                backoff.reset();
            }
            let delay = backoff.next_delay().max(retry_after.unwrap_or_default());
            log::info!("reconnecting in {:.1}s", delay.as_secs_f64());
            if !self.shutdown.sleep(delay) {
                break;
            }
        }
        // Whatever is still in the batch goes out.
        self.lines.ship();
        self.lines.save_cursor();
        log::info!("reader: stopped");
    }

    /// Closes the connection's span in the coverage journal.
    fn journal(&mut self, span: Option<Span>, why: &str) {
        self.lines.flush_breaks(self.coverage.as_mut());
        if let (Some(c), Some(mut s)) = (self.coverage.as_mut(), span) {
            s.close(why);
            c.record(&s);
        }
    }

    /// One connection, from subscribing to its end.
    fn connection(&mut self, mut ws: Ws) -> (End, Span) {
        let mut span = Span::start();
        self.lines.new_connection();
        // With two lines, each line's first connect is not a reconnect.
        let line_first = self.line.as_ref().is_some_and(|l| l.first_connect());
        if self.stats.add(Count::Connects, 1) > 0 && !line_first {
            self.stats.add(Count::Reconnects, 1);
        }
        self.set_up(true);
        log::info!("connected to {}", self.url());
        let welcomed = match &self.cfg.messages.welcome {
            Some(w) => welcome::wait(w, &mut ws, &mut self.lines, &mut span, self.shutdown),
            None => Ok(()),
        };
        let end = match welcomed.and_then(|()| self.subscribe(&mut ws, &mut span)) {
            Ok(()) => self.sessions(ws, &mut span),
            Err(end) => end,
        };
        self.set_up(false);
        (end, span)
    }

    /// Reads `ws` until it ends; a planned reconnect hands over to a new connection
    /// ([`handover`]), whose session then replaces `span`.
    fn sessions(&mut self, mut ws: Ws, span: &mut Span) -> End {
        let mut tail = None;
        loop {
            // Rendered before the session borrows the line sink; only when plans
            // can need them.
            let (subs, url): (Vec<String>, _) = if self.cfg.continuity.plans() {
                let lines = &mut self.lines;
                let subs = self
                    .cfg
                    .connection
                    .subscribe_messages
                    .iter()
                    .map(|t| lines.render(t))
                    .collect();
                (subs, lines.url(&self.cfg.connection.ws_url))
            } else {
                (Vec::new(), None)
            };
            let mut session = match Session::new(
                self.cfg,
                self.stats,
                self.shutdown,
                ws,
                &mut self.lines,
                span,
                self.coverage.as_mut(),
            ) {
                Ok(s) => s,
                Err(end) => return end,
            };
            session.set_gate(tail.take());
            let handed = loop {
                let end = session.run();
                session.end_gate();
                let End::Planned(why) = end else {
                    return end;
                };
                if let Some(line) = &self.line {
                    // Two lines: the other covers while this one reconnects.
                    match redundant::planned(
                        line,
                        &mut session,
                        self.stats,
                        self.cfg.continuity.handover_overlap,
                        why,
                    ) {
                        Some(end) => return end,
                        None => continue,
                    }
                }
                self.stats.add(Count::PlannedReconnects, 1);
                log::info!(
                    "planned reconnect ({why}): opening a new connection before closing this one"
                );
                let old = session.span().clone();
                match handover::overlap(
                    self.cfg,
                    self.stats,
                    self.shutdown,
                    &mut session,
                    &old,
                    &subs,
                    url.as_ref(),
                ) {
                    handover::Outcome::Handed(h) => break h,
                    handover::Outcome::Failed => continue,
                    handover::Outcome::End(end) => return end,
                }
            };
            if handed.old_open {
                session.close_handed_over();
            }
            drop(session);
            self.stats.add(Count::Handovers, 1);
            self.stats.add(Count::Connects, 1);
            self.stats.add(Count::Reconnects, 1);
            span.close(&handed.old_why);
            // Not when the new connection was ready: the old one ended before.
            span.closed_ms = Some(handed.old_closed_ms);
            if let Some(c) = self.coverage.as_mut() {
                c.record(span);
            }
            self.lines.new_connection();
            let lines = &mut self.lines;
            let (new_ws, new_span, gate) = handed.take_over(self.cfg, self.stats, |text, ws| {
                let ok = lines.accept(crate::message::Frame::Text(text));
                // A notice among them is the old connection's business, now done.
                let _ = lines.take_notice();
                if let Some(reply) = lines.take_reply() {
                    let _ = ws.send(Message::text(reply));
                }
                ok
            });
            *span = new_span;
            if let Some(c) = self.coverage.as_mut() {
                c.opened(span);
            }
            tail = Some(gate);
            ws = new_ws;
        }
    }

    fn subscribe(&mut self, ws: &mut Ws, span: &mut Span) -> Result<(), End> {
        for (i, sub) in self.cfg.connection.subscribe_messages.iter().enumerate() {
            if i > 0 && !self.cfg.connection.subscribe_interval.is_zero() {
                // Venues that limit subscribe messages (Bitget: 5 per 100 ms).
                if !self.shutdown.sleep(self.cfg.connection.subscribe_interval) {
                    return Err(End::Quit);
                }
            }
            ws.send(Message::text(self.lines.render(sub)))
                .map_err(|e| End::failed(format!("sending the subscribe message: {e}")))?;
        }
        if !self.cfg.connection.subscribe_messages.is_empty() {
            span.subscribed();
            if let Some(c) = self.coverage.as_mut() {
                c.opened(span);
            }
            log::info!("subscribed: {}", self.cfg.messages.topics.join(", "));
        }
        Ok(())
    }
}
