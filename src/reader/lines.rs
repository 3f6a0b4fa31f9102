//! The line sink: owns the batch being filled, checks each message, works out which
//! file it goes to, appends its line, and ships full batches to the writer under the
//! configured back-pressure policy. It reports what shipping did ([`Shipped`]); the
//! session loop decides what that means for it.

use std::collections::HashMap;
use std::io::Write as _;
use std::ops::Range;
use std::time::Duration;

use crossbeam_channel::{SendTimeoutError, TrySendError};

use crate::batch::{Batch, Dest, ReaderSide, shape};
use crate::clock::{self, Periods};
use crate::config::{Config, LineFormat, OnFull, Routing};
use crate::message::Lookups;
use crate::message::decode::{Binary, Decoder, Undecodable};
use crate::message::jsonline::{self, Reject, unquoted};
use crate::message::template::Template;
use crate::ratelimit::RateLimited;
use crate::shutdown::Shutdown;
use crate::status::{Count, Stats};

/// Batches are sent once they reach this many bytes.
const MAX_BATCH_BYTES: usize = 256 * 1024;
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

/// The reader's side of the pipeline to the writer.
pub(crate) struct LineSink<'a> {
    cfg: &'a Config,
    stats: &'a Stats,
    shutdown: &'a Shutdown,
    side: ReaderSide,
    periods: Periods,
    per_batch: usize,
    batch: Batch,
    /// Topic name -> index, for routing by topic.
    topic_index: HashMap<Vec<u8>, u32>,
    /// The pointers the check finds, the route and the heartbeat rules.
    lookups: Lookups,
    /// Where the check put each pointer's value in the current message.
    found: Vec<Option<Range<usize>>>,
    /// Joins the route values.
    separator: Vec<u8>,
    /// The route key of a message with several route pointers (reused).
    key: Vec<u8>,
    /// Ids learnt on this connection (`route_ids`) -> topic index.
    ids: HashMap<Vec<u8>, u32>,
    /// A heartbeat reply waiting to be sent by the session.
    reply: Option<String>,
    /// The last message matched `reconnect_on`.
    notice: bool,
    /// Lines shipped for topic files (not the control file), for `data_timeout`.
    topic_lines: u64,
    /// `{counter}` in templates: one more for every message that uses it.
    counter: u64,
    /// Turns binary frames into text.
    decoder: Decoder,
    warn_reject: RateLimited,
    warn_full: RateLimited,
}

impl<'a> LineSink<'a> {
    /// A sink for `cfg` feeding `side`.
    pub(crate) fn new(
        cfg: &'a Config,
        stats: &'a Stats,
        shutdown: &'a Shutdown,
        side: ReaderSide,
        periods: Periods,
    ) -> LineSink<'a> {
        let (per_batch, _) = shape(cfg.buffer_size);
        let topic_index = cfg
            .topics
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_bytes().to_vec(), i as u32))
            .collect();
        let (route_by, separator, ids): (&[String], &str, _) = match &cfg.routing {
            Routing::Single => (&[], "", None),
            Routing::ByKey {
                route_by,
                separator,
                ids,
            } => (route_by, separator, ids.as_ref()),
        };
        let lookups = Lookups::new(route_by, &cfg.heartbeats, ids, &cfg.continuity.reconnect_on)
            .expect("the pointers were checked when the config was loaded");
        LineSink {
            cfg,
            stats,
            shutdown,
            side,
            periods,
            per_batch,
            batch: Batch::default(),
            topic_index,
            found: vec![None; lookups.ptrs.len()],
            lookups,
            separator: separator.as_bytes().to_vec(),
            key: Vec::new(),
            ids: HashMap::new(),
            reply: None,
            notice: false,
            topic_lines: 0,
            counter: 0,
            decoder: Decoder::new(cfg.binary, cfg.max_message_bytes),
            warn_reject: RateLimited::new(Duration::from_secs(10)),
            warn_full: RateLimited::new(Duration::from_secs(10)),
        }
    }

    /// Whether the batch is big enough to ship.
    #[inline]
    pub(crate) fn full(&self) -> bool {
        self.batch.lines as usize >= self.per_batch || self.batch.data.len() >= MAX_BATCH_BYTES
    }

    /// Counts a refused frame and logs it (rate-limited) with a preview.
    pub(crate) fn reject(&mut self, why: Count, sample: &[u8]) {
        self.stats.add(why, 1);
        let preview = String::from_utf8_lossy(&sample[..sample.len().min(60)]);
        self.warn_reject.log(
            log::Level::Warn,
            &format!("refused a frame ({}): {preview:?}", why.name()),
        );
    }

    /// A template's text now (placeholders filled in).
    pub(crate) fn render(&mut self, t: &Template) -> String {
        t.render(&mut self.counter, |_| None)
    }

    /// The reply to the last message, if it was a heartbeat that wants one.
    #[inline]
    pub(crate) fn take_reply(&mut self) -> Option<String> {
        self.reply.take()
    }

    /// Whether the last message announced a close (`reconnect_on`); clears it.
    #[inline]
    pub(crate) fn take_notice(&mut self) -> bool {
        std::mem::take(&mut self.notice)
    }

    /// Lines shipped so far that went to a topic's file.
    #[inline]
    pub(crate) fn topic_lines(&self) -> u64 {
        self.topic_lines
    }

    /// Decodes a binary frame and accepts the text it holds; false if refused.
    pub(crate) fn accept_binary(&mut self, frame: &[u8]) -> bool {
        // Out of self while its output is borrowed.
        let mut decoder = std::mem::replace(&mut self.decoder, Decoder::new(Binary::Reject, 0));
        let accepted = match decoder.decode(frame) {
            Ok(text) => self.accept(text),
            Err(Undecodable::Binary) => {
                self.reject(Count::RejectBinary, frame);
                false
            }
            Err(Undecodable::TooLarge) => {
                self.reject(Count::RejectTooLarge, &frame[..frame.len().min(16)]);
                false
            }
        };
        self.decoder = decoder;
        accepted
    }

    /// Checks a text message and appends its line to the batch; false if refused.
    #[inline]
    pub(crate) fn accept(&mut self, msg: &[u8]) -> bool {
        let recv = match self.cfg.line_format {
            LineFormat::Timestamped => Some(clock::now()),
            LineFormat::Raw => None,
        };
        self.accept_at(msg, recv)
    }

    /// [`LineSink::accept`] with the receive time given (`None`: untimed lines, whose
    /// batch takes the period of its first line).
    fn accept_at(&mut self, msg: &[u8], recv: Option<Duration>) -> bool {
        let valid = match jsonline::check_with(msg, &self.lookups.ptrs, &mut self.found) {
            Ok(v) => v,
            Err(Reject::Empty) => {
                self.reject(Count::RejectEmpty, msg);
                return false;
            }
            Err(Reject::NotJson) => {
                self.reject(Count::RejectNotJson, msg);
                return false;
            }
        };
        if !self.lookups.heartbeats.is_empty() {
            self.reply = self
                .lookups
                .heartbeats
                .reply(msg, &self.found, &mut self.counter);
        }
        if !self.lookups.reconnect_on.is_empty() {
            self.notice = self.lookups.reconnect_on.matches(msg, &self.found);
        }
        if self.lookups.learns() {
            self.learn(msg);
        }
        let dest = self.dest(msg);
        if self.batch.lines == 0 {
            let now = recv.unwrap_or_else(clock::now);
            self.batch.period = self.periods.start_of(now.as_secs());
        } else if let Some(t) = recv {
            // Each timed line belongs to the period it was received in.
            let p = self.periods.start_of(t.as_secs());
            if p != self.batch.period {
                self.ship();
                self.batch.period = p;
            }
        }
        let data = &mut self.batch.data;
        if let Some(t) = recv {
            data.extend_from_slice(b"{\"recv_ns\":");
            // Formatted straight into the batch: no allocation per line.
            let _ = write!(data, "{}", t.as_nanos());
            data.extend_from_slice(b",\"msg\":");
        }
        if valid.multiline {
            jsonline::compact_into(msg, data);
        } else {
            data.extend_from_slice(msg);
        }
        if recv.is_some() {
            data.push(b'}');
        }
        data.push(b'\n');
        self.batch.end_line(dest);
        true
    }

    /// The file of a checked message: its topic's, when its route key names one.
    #[inline]
    fn dest(&mut self, msg: &[u8]) -> Dest {
        let key = match self.lookups.route {
            0 => return Dest::Topic(0),
            1 => match &self.found[0] {
                Some(r) => unquoted(&msg[r.clone()]),
                None => return Dest::Control,
            },
            n => {
                self.key.clear();
                for (i, r) in self.found[..n].iter().enumerate() {
                    let Some(r) = r else {
                        return Dest::Control;
                    };
                    if i > 0 {
                        self.key.extend_from_slice(&self.separator);
                    }
                    self.key.extend_from_slice(unquoted(&msg[r.clone()]));
                }
                &self.key
            }
        };
        match self.topic_index.get(key).or_else(|| self.ids.get(key)) {
            Some(&i) => Dest::Topic(i),
            None => Dest::Control,
        }
    }

    /// Remembers the id a message announces, if it names a topic (`route_ids`).
    fn learn(&mut self, msg: &[u8]) {
        let mut key = std::mem::take(&mut self.key);
        if let Some(id) = self
            .lookups
            .learned(msg, &self.found, &self.separator, &mut key)
        {
            if let Some(&i) = self.topic_index.get(&key) {
                self.ids.insert(id.to_vec(), i);
            }
        }
        self.key = key;
    }

    /// A new connection: ids learnt on the last one mean nothing now.
    pub(crate) fn new_connection(&mut self) {
        self.ids.clear();
    }

    /// Hands the batch to the writer.
    pub(crate) fn ship(&mut self) -> Shipped {
        if self.batch.lines == 0 {
            return Shipped::Sent;
        }
        let (data, segments) = self.side.pool.try_recv().unwrap_or_default();
        let batch = std::mem::replace(&mut self.batch, Batch::new(0, data, segments));
        let lines = batch.lines as u64;
        self.topic_lines += batch
            .segments
            .iter()
            .filter(|s| matches!(s.dest, Dest::Topic(_)))
            .map(|s| s.lines as u64)
            .sum::<u64>();
        self.stats.add(Count::Messages, lines);
        self.stats
            .queue_depth
            .fetch_add(lines, std::sync::atomic::Ordering::Relaxed);
        let bytes = batch.data.len() as u64;
        let lost = |s: &Self| {
            s.stats
                .queue_depth
                .fetch_sub(lines, std::sync::atomic::Ordering::Relaxed);
        };
        // Given up at shutdown: counted, and reported once when the process ends.
        let given_up = |s: &Self| {
            lost(s);
            s.stats.add(Count::LostAtShutdownLines, lines);
            s.stats.add(Count::LostAtShutdownBytes, bytes);
        };
        match self.cfg.on_full {
            OnFull::Block => {
                let mut batch = batch;
                let mut waited = false;
                loop {
                    // During a shutdown, wait for room only until its deadline.
                    let sent = match self.shutdown.deadline() {
                        Some(end) => self.side.tx.send_deadline(batch, end),
                        None => self.side.tx.send_timeout(batch, SEND_POLL),
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
                            if self.shutdown.past_deadline() {
                                given_up(self);
                                return Shipped::Gone;
                            }
                        }
                        Err(SendTimeoutError::Disconnected(_)) => {
                            given_up(self);
                            return Shipped::Gone;
                        }
                    }
                }
            }
            OnFull::Drop => match self.side.tx.try_send(batch) {
                Ok(()) => Shipped::Sent,
                Err(TrySendError::Full(_)) => {
                    lost(self);
                    self.stats.add(Count::Dropped, lines);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{self, WriterSide};
    use serde_json::{Value, json};

    fn config(v: Value) -> Config {
        let mut v = v;
        v["buffer_size"] = json!(64);
        Config::for_test(v)
    }

    fn drain(w: &WriterSide) -> Vec<Batch> {
        w.rx.try_iter().collect()
    }

    fn lines(b: &Batch) -> Vec<(Dest, String)> {
        b.runs()
            .flat_map(|(d, bytes, _)| {
                String::from_utf8(bytes.to_vec())
                    .unwrap()
                    .lines()
                    .map(|l| (d, l.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn assembles_lines_routes_and_refuses() {
        let cfg = config(json!({"topics": ["a", "b"]}));
        let stats = Stats::new(64, 60.0);
        let shutdown = Shutdown::new().unwrap();
        let (r, w) = batch::channel(64);
        let mut sink = LineSink::new(&cfg, &stats, &shutdown, r, Periods::of_secs(3600));
        assert!(sink.accept(br#"{"topic":"b","x":1}"#));
        assert!(sink.accept(b"{\"topic\":\"a\",\n \"y\": [1, 2]}"));
        assert!(sink.accept(br#"{"op":"pong"}"#));
        assert!(!sink.accept(b"pong"));
        assert!(!sink.accept(b""));
        assert_eq!(sink.ship(), Shipped::Sent);
        let got = drain(&w);
        assert_eq!(got.len(), 1);
        assert_eq!(
            lines(&got[0]),
            [
                (Dest::Topic(1), r#"{"topic":"b","x":1}"#.to_string()),
                (Dest::Topic(0), r#"{"topic":"a","y":[1,2]}"#.to_string()),
                (Dest::Control, r#"{"op":"pong"}"#.to_string()),
            ]
        );
        assert_eq!(stats.get(Count::Messages), 3);
        assert_eq!(stats.get(Count::RejectNotJson), 1);
        assert_eq!(stats.get(Count::RejectEmpty), 1);
    }

    #[test]
    fn learns_per_connection_ids_bitfinex_style() {
        let cfg = config(json!({
            "topics": ["trades.tBTCUSD", "ticker.tBTCUSD"],
            "route_by": ["/0"],
            "route_ids": {"when": {"/event": "subscribed"}, "id": "/chanId", "key": ["/channel", "/symbol"]},
        }));
        let stats = Stats::new(64, 60.0);
        let shutdown = Shutdown::new().unwrap();
        let (r, w) = batch::channel(64);
        let mut sink = LineSink::new(&cfg, &stats, &shutdown, r, Periods::of_secs(3600));
        for m in [
            r#"[17,"hb"]"#,
            r#"{"event":"subscribed","channel":"ticker","chanId":17,"symbol":"tBTCUSD"}"#,
            r#"[17,[102569,12.3]]"#,
            r#"{"event":"subscribed","channel":"trades","chanId":"18","symbol":"tBTCUSD"}"#,
            r#"[18,"te",[1,2,0.1,102570.123456789012345678]]"#,
        ] {
            assert!(sink.accept(m.as_bytes()));
        }
        sink.new_connection();
        assert!(sink.accept(br#"[17,"hb"]"#));
        sink.ship();
        let dests: Vec<Dest> = lines(&drain(&w)[0]).into_iter().map(|(d, _)| d).collect();
        assert_eq!(
            dests,
            [
                Dest::Control,
                Dest::Control,
                Dest::Topic(1),
                Dest::Control,
                Dest::Topic(0),
                Dest::Control
            ]
        );
    }

    #[test]
    fn timed_lines_split_batches_at_the_period_boundary() {
        let cfg = config(json!({"line_format": "timestamped"}));
        let stats = Stats::new(64, 60.0);
        let shutdown = Shutdown::new().unwrap();
        let (r, w) = batch::channel(64);
        let mut sink = LineSink::new(&cfg, &stats, &shutdown, r, Periods::of_secs(10));
        let at = |s: f64| Some(Duration::from_secs_f64(s));
        assert!(sink.accept_at(b"1", at(98.0)));
        assert!(sink.accept_at(b"2", at(99.999)));
        assert!(sink.accept_at(b"3", at(100.0)));
        assert_eq!(sink.ship(), Shipped::Sent);
        let got = drain(&w);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].period, got[0].lines), (90, 2));
        assert_eq!((got[1].period, got[1].lines), (100, 1));
        assert_eq!(lines(&got[1])[0].1, r#"{"recv_ns":100000000000,"msg":3}"#);
    }

    #[test]
    fn shipping_reports_gone_when_the_writer_is_gone() {
        let cfg = config(json!({}));
        let stats = Stats::new(64, 60.0);
        let shutdown = Shutdown::new().unwrap();
        let (r, w) = batch::channel(64);
        let mut sink = LineSink::new(&cfg, &stats, &shutdown, r, Periods::of_secs(3600));
        drop(w);
        assert_eq!(sink.ship(), Shipped::Sent, "nothing to ship");
        assert!(sink.accept(b"{}"));
        assert_eq!(sink.ship(), Shipped::Gone);
    }
}
