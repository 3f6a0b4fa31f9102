//! The line sink: batch assembly. It hands each frame to the message judge
//! ([`Judge`]), appends the line of each kept message to the batch (in its period, with
//! its receive time when lines are timestamped), and ships full batches through the
//! channel's back-pressure policy ([`ReaderSide::ship`]).

use std::io::Write as _;
use std::time::Duration;

use std::time::Instant;

use super::redundant::Feed;

use crate::batch::{Batch, ReaderSide, Shipped, shape};
use crate::clock::{self, Periods};
use crate::config::{Config, LineFormat, Messages, Output, WsUrl, parse_ws_url};
use crate::journal::coverage::Coverage;
use crate::message::cursor::{self, CursorFile, CursorSpec};
use crate::message::decode::Decoder;
use crate::message::jsonline;
use crate::message::template::Template;
use crate::message::{Frame, Judge, Verdict};
use crate::ratelimit::RateLimited;
use crate::reader::welcome::Welcome;
use crate::shutdown::Shutdown;
use crate::status::{Count, Stats};

/// Batches are sent once they reach this many bytes.
pub(super) const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Where a line sink's batches go.
pub(crate) enum Out<'a> {
    /// The channel to the writer: one connection.
    Channel(ReaderSide),
    /// One of two redundant lines: each message's key is kept with its line, and a
    /// shipped batch goes through the arbiter, which writes the first arrivals.
    Line(Box<Feed<'a>>),
}

impl From<ReaderSide> for Out<'_> {
    fn from(side: ReaderSide) -> Self {
        Out::Channel(side)
    }
}

impl Out<'_> {
    fn ship(
        &mut self,
        batch: &mut Batch,
        output: &Output,
        stats: &Stats,
        sd: &Shutdown,
    ) -> Shipped {
        match self {
            Out::Channel(side) => side.ship(batch, output.on_full, stats, sd),
            Out::Line(feed) => feed.ship(batch, output, stats, sd),
        }
    }
}

/// The reader's side of the pipeline to the writer.
pub(crate) struct LineSink<'a> {
    output: &'a Output,
    stats: &'a Stats,
    shutdown: &'a Shutdown,
    out: Out<'a>,
    periods: Periods,
    per_batch: usize,
    batch: Batch,
    /// Decides each frame's fate.
    judge: Judge<'a>,
    warn_reject: RateLimited,
    /// Lines shipped for topic files (not the control file), for `data_timeout`.
    topic_lines: u64,
    /// The topics, by index (for the journal's sequence gaps).
    topics: &'a [String],
    /// `cursor` and its state file, when configured.
    cursor: Option<(&'a CursorSpec, CursorFile)>,
    warn_break: RateLimited,
    /// Whether `sequence` has rules (then the judge needs the time of each burst).
    sequences: bool,
}

impl<'a> LineSink<'a> {
    /// A sink that judges frames by `messages` (refusing text over
    /// `max_message_bytes`), writes lines as `output` says and feeds `side`.
    pub(crate) fn new(
        messages: &'a Messages,
        output: &'a Output,
        max_message_bytes: usize,
        stats: &'a Stats,
        shutdown: &'a Shutdown,
        out: impl Into<Out<'a>>,
        periods: Periods,
    ) -> LineSink<'a> {
        let (per_batch, _) = shape(output.buffer_size);
        LineSink {
            output,
            stats,
            shutdown,
            out: out.into(),
            periods,
            per_batch,
            batch: Batch::default(),
            judge: Judge::new(
                &messages.lookups,
                &messages.topics,
                messages.routing.separator(),
                &messages.pong_text,
                messages.welcome.as_ref().and_then(Welcome::text),
                Decoder::new(messages.binary, max_message_bytes),
            ),
            warn_reject: RateLimited::new(Duration::from_secs(10)),
            topic_lines: 0,
            topics: &messages.topics,
            cursor: None,
            warn_break: RateLimited::new(Duration::from_secs(10)),
            sequences: messages.lookups.has_sequences(),
        }
    }

    /// With `cursor` in `cfg`: resumes from the value saved in output_dir, and writes
    /// each data message once (by its `dedupe_by` key) however often it is replayed.
    pub(crate) fn resume(mut self, cfg: &'a Config) -> Self {
        if let Some(spec) = &cfg.continuity.cursor {
            let (file, saved) = CursorFile::open(&cfg.output.output_dir, spec);
            if let Some(v) = saved {
                log::info!("cursor: resuming from {v} (saved in {})", cursor::FILE_NAME);
            }
            self.judge = self.judge.with_cursor(saved);
            // What the files hold last is what a resume must not write again.
            let prefixes: Vec<String> = self
                .topics
                .iter()
                .map(|t| crate::message::route::file_name(t))
                .collect();
            let tail = cursor::recorded_tail(&cfg.output.output_dir, &prefixes);
            for msg in &tail {
                self.judge.remember(msg);
            }
            self.cursor = Some((spec, file));
        }
        self
    }

    /// What `{cursor}` is now.
    fn cursor_text(&self) -> Option<String> {
        let (spec, _) = self.cursor.as_ref()?;
        spec.fill(self.judge.newest())
    }

    /// The URL to connect to now, when `ws_url` has `{cursor}`.
    pub(crate) fn url(&self, configured: &WsUrl) -> Option<WsUrl> {
        self.cursor.as_ref()?;
        let url = cursor::fill_url(&configured.url, self.cursor_text().as_deref());
        parse_ws_url(&url).ok()
    }

    /// Saves the cursor when a save is due (a few seconds apart).
    #[inline]
    pub(crate) fn tick(&mut self, now: Instant) {
        if let Some((_, file)) = self.cursor.as_mut() {
            file.tick(self.judge.newest(), now);
        }
    }

    /// Saves the cursor now (the recorder stops).
    pub(crate) fn save_cursor(&mut self) {
        if let Some((_, file)) = self.cursor.as_mut() {
            file.save(self.judge.newest());
        }
    }

    /// Counts the sequence breaks found since the last call and writes them to the
    /// journal (by the reader thread, as every journal line, so that they are as safe
    /// at a crash as the session lines).
    /// Once per read burst; the messages judged next are given the time now.
    #[inline]
    pub(crate) fn flush_breaks(&mut self, coverage: Option<&mut Coverage>) {
        if !self.sequences {
            return;
        }
        if let Some(breaks) = self.judge.take_breaks(clock::unix_ms()) {
            self.record_breaks(breaks, coverage);
        }
    }

    #[cold]
    fn record_breaks(
        &mut self,
        breaks: Vec<crate::message::sequence::Break>,
        mut coverage: Option<&mut Coverage>,
    ) {
        self.stats.add(Count::SequenceBreaks, breaks.len() as u64);
        for b in &breaks {
            let topic = self.topics.get(b.topic).map_or("", String::as_str);
            self.warn_break.log(
                log::Level::Warn,
                &format!(
                    "sequence gap in {topic}: last {}, next {}{}",
                    b.last,
                    b.next,
                    b.prev
                        .map(|p| format!(" (its previous: {p})"))
                        .unwrap_or_default()
                ),
            );
            if let Some(c) = coverage.as_deref_mut() {
                c.sequence_break(b, topic);
            }
        }
    }

    /// Whether the batch is big enough to ship.
    #[inline]
    pub(crate) fn full(&self) -> bool {
        self.batch.lines as usize >= self.per_batch || self.batch.data.len() >= MAX_BATCH_BYTES
    }

    /// Counts a refused frame and logs it (rate-limited) with a preview.
    pub(crate) fn reject(&mut self, why: Count, sample: &[u8]) {
        refuse(self.stats, &mut self.warn_reject, why, sample);
    }

    /// A template's text now (placeholders filled in).
    pub(crate) fn render(&mut self, t: &Template) -> String {
        let cursor = self.cursor_text();
        self.judge.render(t, cursor.as_deref())
    }

    /// The reply to the last message, if it was a heartbeat that wants one.
    #[inline]
    pub(crate) fn take_reply(&mut self) -> Option<String> {
        self.judge.take_reply()
    }

    /// Whether the last message announced a close (`reconnect_on`); clears it.
    #[inline]
    pub(crate) fn take_notice(&mut self) -> bool {
        self.judge.take_notice()
    }

    /// Lines shipped so far that went to a topic's file.
    #[inline]
    pub(crate) fn topic_lines(&self) -> u64 {
        self.topic_lines
    }

    /// Judges a frame and appends its line to the batch; false if it was not a message
    /// to record.
    #[inline]
    pub(crate) fn accept(&mut self, frame: Frame<'_>) -> bool {
        let recv = match self.output.line_format {
            LineFormat::Timestamped => Some(clock::now()),
            LineFormat::Raw => None,
        };
        self.accept_at(frame, recv)
    }

    /// [`LineSink::accept`] with the receive time given (`None`: untimed lines, whose
    /// batch takes the period of its first line).
    fn accept_at(&mut self, frame: Frame<'_>, recv: Option<Duration>) -> bool {
        let (msg, multiline, dest) = match self.judge.judge(frame) {
            // A reply it calls for waits in the judge until the session takes it.
            Verdict::Keep {
                text,
                multiline,
                dest,
            } => (text, multiline, dest),
            Verdict::Pong | Verdict::Greeting => return false,
            Verdict::Duplicate => {
                self.stats.add(Count::ResumeDuplicates, 1);
                return false;
            }
            Verdict::Refused { why, sample } => {
                refuse(self.stats, &mut self.warn_reject, why, sample);
                return false;
            }
        };
        let batch = &mut self.batch;
        if batch.lines == 0 {
            let now = recv.unwrap_or_else(clock::now);
            batch.period = self.periods.start_of(now.as_secs());
        } else if let Some(t) = recv {
            // Each timed line belongs to the period it was received in.
            let p = self.periods.start_of(t.as_secs());
            if p != batch.period {
                self.topic_lines += topic_lines(batch);
                self.out.ship(batch, self.output, self.stats, self.shutdown);
                batch.period = p;
            }
        }
        let data = &mut batch.data;
        if let Some(t) = recv {
            data.extend_from_slice(b"{\"recv_ns\":");
            // Formatted straight into the batch: no allocation per line.
            let _ = write!(data, "{}", t.as_nanos());
            data.extend_from_slice(b",\"msg\":");
        }
        if multiline {
            jsonline::compact_into(msg, data);
        } else {
            jsonline::copy_into(msg, data);
        }
        if recv.is_some() {
            data.push(b'}');
        }
        data.push(b'\n');
        batch.end_line(dest);
        if let Out::Line(feed) = &mut self.out {
            feed.keep(self.judge.last_key(), batch.data.len());
        }
        true
    }

    /// The channel to the writer, if this sink feeds it (not a redundant line's).
    pub(crate) fn into_side(self) -> Option<ReaderSide> {
        match self.out {
            Out::Channel(side) => Some(side),
            Out::Line(_) => None,
        }
    }

    /// A new connection: ids learnt on the last one mean nothing now.
    pub(crate) fn new_connection(&mut self) {
        self.judge.new_connection();
    }

    /// Hands the batch to the writer.
    pub(crate) fn ship(&mut self) -> Shipped {
        self.topic_lines += topic_lines(&self.batch);
        self.out
            .ship(&mut self.batch, self.output, self.stats, self.shutdown)
    }
}

/// The lines of a batch that go to topic files (per run of lines, not per line).
fn topic_lines(b: &Batch) -> u64 {
    b.segments
        .iter()
        .filter(|s| matches!(s.dest, crate::batch::Dest::Topic(_)))
        .map(|s| s.lines as u64)
        .sum()
}

/// Counts a refused frame and logs it (rate-limited) with a preview.
fn refuse(stats: &Stats, warn: &mut RateLimited, why: Count, sample: &[u8]) {
    stats.add(why, 1);
    let preview = String::from_utf8_lossy(&sample[..sample.len().min(60)]);
    warn.log(
        log::Level::Warn,
        &format!("refused a frame ({}): {preview:?}", why.name()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Dest;
    use crate::batch::{self, WriterSide};
    use crate::config::Config;
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
        let mut sink = LineSink::new(
            &cfg.messages,
            &cfg.output,
            cfg.connection.max_message_bytes,
            &stats,
            &shutdown,
            r,
            Periods::of_secs(3600),
        );
        assert!(sink.accept(Frame::Text(br#"{"topic":"b","x":1}"#)));
        assert!(sink.accept(Frame::Text(b"{\"topic\":\"a\",\n \"y\": [1, 2]}")));
        assert!(sink.accept(Frame::Text(br#"{"op":"pong"}"#)));
        assert!(!sink.accept(Frame::Text(b"pong")));
        assert!(!sink.accept(Frame::Text(b"")));
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

    /// Issue 19 item 5: a route value or key written with escapes (PHP's encoder
    /// writes `\/`) is the string serde_json reads; the line stays verbatim.
    #[test]
    fn routes_by_the_strings_values_are_not_their_escapes() {
        let cfg = config(json!({
            "topics": ["/market/match:BTC-USDT", "a/b.é"],
            "route_by": ["/topic"],
        }));
        let stats = Stats::new(64, 60.0);
        let shutdown = Shutdown::new().unwrap();
        let (r, w) = batch::channel(64);
        let mut sink = LineSink::new(
            &cfg.messages,
            &cfg.output,
            cfg.connection.max_message_bytes,
            &stats,
            &shutdown,
            r,
            Periods::of_secs(3600),
        );
        let msgs = [
            r#"{"topic":"\/market\/match:BTC-USDT","data":1}"#,
            r#"{"\u0074opic":"/market/match:BTC-USDT","data":2}"#,
            r#"{"t\u006fpic":"a\/b.\u00e9"}"#,
            r#"{"topic":"/market/match:BTC-USDT"}"#,
            r#"{"topic":"\/market\/match:BTC-USDTx"}"#,
            r#"{"topic":"\ud800"}"#,
        ];
        for m in msgs {
            assert!(sink.accept(Frame::Text(m.as_bytes())), "{m}");
        }
        sink.ship();
        assert_eq!(
            lines(&drain(&w)[0]),
            [
                (Dest::Topic(0), msgs[0].to_string()),
                (Dest::Topic(0), msgs[1].to_string()),
                (Dest::Topic(1), msgs[2].to_string()),
                (Dest::Topic(0), msgs[3].to_string()),
                (Dest::Control, msgs[4].to_string()),
                (Dest::Control, msgs[5].to_string()),
            ]
        );
    }

    #[test]
    fn control_rules_and_the_greeting_keep_data_files_data_only() {
        let cfg = config(json!({
            "topics": ["trades.BTC-USDT"],
            "route_by": ["/arg/channel", "/arg/instId"],
            "control_messages": [{"has": ["/event"]}],
            "welcome": {"text": "Websocket connection established."},
        }));
        let stats = Stats::new(64, 60.0);
        let shutdown = Shutdown::new().unwrap();
        let (r, w) = batch::channel(64);
        let mut sink = LineSink::new(
            &cfg.messages,
            &cfg.output,
            cfg.connection.max_message_bytes,
            &stats,
            &shutdown,
            r,
            Periods::of_secs(3600),
        );
        // The greeting: neither written nor refused.
        assert!(!sink.accept(Frame::Text(b"Websocket connection established.")));
        for m in [
            r#"{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#,
            r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"78808.8"}]}"#,
        ] {
            assert!(sink.accept(Frame::Text(m.as_bytes())));
        }
        sink.ship();
        let dests: Vec<Dest> = lines(&drain(&w)[0]).into_iter().map(|(d, _)| d).collect();
        assert_eq!(dests, [Dest::Control, Dest::Topic(0)]);
        assert_eq!(stats.get(Count::RejectNotJson), 0);
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
        let mut sink = LineSink::new(
            &cfg.messages,
            &cfg.output,
            cfg.connection.max_message_bytes,
            &stats,
            &shutdown,
            r,
            Periods::of_secs(3600),
        );
        for m in [
            r#"[17,"hb"]"#,
            r#"{"event":"subscribed","channel":"ticker","chanId":17,"symbol":"tBTCUSD"}"#,
            r#"[17,[102569,12.3]]"#,
            r#"{"event":"subscribed","channel":"trades","chanId":"18","symbol":"tBTCUSD"}"#,
            r#"[18,"te",[1,2,0.1,102570.123456789012345678]]"#,
            // Escaped values: the event, the id and the key are the strings they are.
            r#"{"event":"su\u0062scribed","channel":"t\u0072ades","chanId":"\u00319","symbol":"tBTCUSD"}"#,
            r#"["19","te",[1,2,0.1,3]]"#,
        ] {
            assert!(sink.accept(Frame::Text(m.as_bytes())));
        }
        sink.new_connection();
        assert!(sink.accept(Frame::Text(br#"[17,"hb"]"#)));
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
        let mut sink = LineSink::new(
            &cfg.messages,
            &cfg.output,
            cfg.connection.max_message_bytes,
            &stats,
            &shutdown,
            r,
            Periods::of_secs(10),
        );
        let at = |s: f64| Some(Duration::from_secs_f64(s));
        assert!(sink.accept_at(Frame::Text(b"1"), at(98.0)));
        assert!(sink.accept_at(Frame::Text(b"2"), at(99.999)));
        assert!(sink.accept_at(Frame::Text(b"3"), at(100.0)));
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
        let mut sink = LineSink::new(
            &cfg.messages,
            &cfg.output,
            cfg.connection.max_message_bytes,
            &stats,
            &shutdown,
            r,
            Periods::of_secs(3600),
        );
        drop(w);
        assert_eq!(sink.ship(), Shipped::Sent, "nothing to ship");
        assert!(sink.accept(Frame::Text(b"{}")));
        assert_eq!(sink.ship(), Shipped::Gone);
    }
}
