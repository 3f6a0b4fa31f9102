#!/usr/bin/env python3
"""Local imitations of the 17 venues that have presets (examples/venues/*.json).

    python3 tests/venues/sim.py VENUE --port-file P --record R [--scale S] [--quirk Q]

Listens on 127.0.0.1:0, writes the port to P (P.tmp, then renamed) and serves one
venue's WebSocket protocol as its documentation and FEEDS.md describe it: the URL or
subscribe message is checked as the venue would (a wrong one gets the venue's error
reply and no data), data goes out in the venue's message shapes (numbers beyond f64
precision, unicode, top-level arrays where the venue has them, its acks, heartbeats
and notices; HTX gzip-compressed in binary frames), and the venue's keep-alive rule
is enforced on a clock scaled by S: a client that breaks it is dropped, and why is
printed on stderr.

Every event is appended to R as one JSON line, flushed:
  {"event":"connect","path":...}              a WebSocket connection was accepted
  {"event":"sent","file":F,"text":T}          T went out; F is the config topic whose
                                              file must hold it, "_control", or null
                                              for what wsrec must not write (pongs,
                                              a plain-text greeting)
  {"event":"recv","text":T}                   a text message from the client
  {"event":"drop","why":...}                  the sim dropped the client
  {"event":"bullet"}                          KuCoin: a token was handed out
  {"event":"cut"}                             the network "failed" (--quirk cut-once)
Each line also has "t", the Unix time in seconds.

F says what the message IS, as the venue means it, not how wsrec routes: a venue's
ack, error, welcome, notice or heartbeat is "_control" whatever fields it carries
(OKX and Bitget acks carry the data's "arg", Gate's acks and errors its "channel"),
so a preset that lets one into a topic file fails the test. Only data messages get a
topic file, found from their route key (the values at the preset's route_by
pointers joined by its separator, or the chanId the venue assigned); single-topic
presets write everything to the topic's file.

Where public sources hold real messages of a venue (its docs' examples, live
captures in open-source connectors), the sim sends those first, verbatim (REAL).
"""
import argparse
import asyncio
import gzip
import hashlib
import json
import os
import random
import re
import sys
import time
import urllib.parse

import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

ap = argparse.ArgumentParser()
ap.add_argument("venue")
ap.add_argument("--port-file", required=True)
ap.add_argument("--record", required=True)
ap.add_argument("--scale", type=float, default=1.0)
# A departure from the venue's documented behaviour, to test how wsrec copes:
# "no-welcome" (KuCoin: never greets, serves at once); "book-gap" (Bybit: the book
# update u = 21 is never sent); "cut-once" (Jetstream, Nostr:
# the first connection is cut, TCP only, after 30 data messages of a stream, as a
# network fault).
ap.add_argument("--quirk", default="")
ARGS = ap.parse_args()
SCALE = ARGS.scale
REC = open(ARGS.record, "a", encoding="utf-8")
N_DATA = 1500  # data messages per connection at most (about a minute at 20-50 ms)
BIG = 9007199254740993  # 2^53 + 1: not representable as an f64


def S(seconds):
    """A venue's duration on the scaled clock."""
    return seconds * SCALE


def log(ev):
    ev["t"] = time.time()
    REC.write(json.dumps(ev, ensure_ascii=False) + "\n")
    REC.flush()


def say(msg):
    print(f"sim {ARGS.venue}: {msg}", file=sys.stderr, flush=True)


def ms():
    return int(time.time() * 1000)


def iso(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def hexid(*parts, n=64):
    h = hashlib.sha256(repr(parts).encode()).hexdigest()
    while len(h) < n:
        h += hashlib.sha256(h.encode()).hexdigest()
    return h[:n]


def fill(template, **kw):
    """Replaces @name@ in a JSON template (JSON never contains '@' here)."""
    for k, v in kw.items():
        template = template.replace("@%s@" % k, str(v))
    assert "@" not in template or "@" in "".join(str(v) for v in kw.values()), template
    return template


# ---------------------------------------------------------------- routing (schema)


class Lit(str):
    """A JSON number or literal kept as its text."""


MISSING = object()


def _pointer(doc, ptr):
    if ptr == "":
        return doc
    for tok in ptr.split("/")[1:]:
        tok = tok.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict):
            if tok not in doc:
                return MISSING
            doc = doc[tok]
        elif isinstance(doc, list):
            if not tok.isdigit() or int(tok) >= len(doc):
                return MISSING
            doc = doc[int(tok)]
        else:
            return MISSING
    return doc


def route_key(text, pointers, sep):
    try:
        doc = json.loads(text, parse_int=Lit, parse_float=Lit,
                         parse_constant=Lit)
    except ValueError:
        return None
    parts = []
    for p in pointers:
        v = _pointer(doc, p)
        if v is MISSING or isinstance(v, (dict, list)):
            return None
        if v is True:
            v = "true"
        elif v is False:
            v = "false"
        elif v is None:
            v = "null"
        parts.append(str(v))
    return sep.join(parts)


# ---------------------------------------------------------------- connection


class SimConnection(ServerConnection):
    """Notes when the client last sent any frame (protocol pings included)."""

    last_frame = 0.0

    def process_event(self, event):
        if isinstance(event, Frame):
            self.last_frame = time.monotonic()
        super().process_event(event)


AUTO = object()  # a data message: its topic's file, from its route key
CONTROL = "_control"


class Conn:
    def __init__(self, ws, venue):
        self.ws = ws
        self.v = venue
        self.lock = asyncio.Lock()
        self.closed = False
        self.tasks = []
        self.subs = []  # data streams granted, in order
        self.data_started = False
        self.t0 = time.monotonic()
        self.last = {}  # what -> monotonic time the client last did it
        self.state = {}

    def label(self, text):
        v = self.v
        if v.single:
            return v.single
        key = route_key(text, v.route_by, v.sep)
        key = self.state.get("alias", {}).get(key, key)
        return key if key in v.topics else "_control"

    async def send(self, text, file=CONTROL):
        """Sends `text`; by default a control message (see the module docstring)."""
        if self.v.single and file is not None:
            file = self.v.single
        elif file is AUTO:
            file = self.label(text)
        async with self.lock:
            if self.closed:
                return
            log({"event": "sent", "file": file, "text": text})
            data = gzip.compress(text.encode()) if self.v.gzip else text
            try:
                await self.ws.send(data)
            except websockets.ConnectionClosed:
                self.closed = True

    async def drop(self, why, code=1008, reason="policy violation"):
        if self.closed:
            return
        async with self.lock:
            self.closed = True
            log({"event": "drop", "why": why})
            say("drop: " + why)
        try:
            await self.ws.close(code, reason[:120])
        except Exception:
            pass

    def cut(self):
        """Ends the connection as a network fault: no close frame, whatever was still
        in flight is lost (not a drop: the client did nothing wrong)."""
        if self.closed:
            return
        self.closed = True
        log({"event": "cut"})
        self.ws.transport.abort()

    def spawn(self, coro):
        self.tasks.append(asyncio.ensure_future(coro))

    def touch(self, what):
        self.last[what] = time.monotonic()

    def every(self, seconds, fn):
        async def loop():
            while not self.closed:
                await asyncio.sleep(seconds)
                if self.closed:
                    return
                await fn()
        self.spawn(loop())

    def require(self, what, timeout, why, code=1008, reason="policy violation"):
        """Drops the client when `what` did not happen for `timeout` scaled seconds."""
        self.last.setdefault(what, time.monotonic())

        async def check():
            if time.monotonic() - self.last[what] > timeout:
                await self.drop(why, code, reason)
        self.every(min(timeout / 10, 0.05), check)

    def require_frames(self, timeout, why):
        """Drops the client when it sent no frame at all (pings included) for `timeout`."""
        self.ws.last_frame = time.monotonic()

        async def check():
            if time.monotonic() - self.ws.last_frame > timeout:
                await self.drop(why, 1001, "idle")
        self.every(min(timeout / 10, 0.05), check)

    def grant(self, stream):
        """Starts data for `stream` (a key into the venue's data makers)."""
        if stream not in self.subs:
            self.subs.append(stream)
        if not self.data_started:
            self.data_started = True
            self.spawn(self.data_loop())

    async def data_loop(self):
        counts = {}
        for text in self.v.real:
            await self.send(text, file=AUTO)
        for i in range(N_DATA):
            await asyncio.sleep(random.uniform(0.02, 0.05))
            if self.closed:
                return
            stream = self.subs[i % len(self.subs)]
            n = counts.get(stream, 0)
            counts[stream] = n + 1
            for text in self.v.data(self, stream, n):
                await self.send(text, file=AUTO)


# ---------------------------------------------------------------- venues


class Venue:
    route_by = ["/topic"]
    sep = "."
    topics = []
    single = None
    gzip = False
    # Real messages (REAL in the module docstring), sent verbatim before the data.
    real = []

    def http(self, conn, request, path, query):
        """Returns an HTTP response to refuse the handshake, or None."""
        return None

    async def start(self, c):
        pass

    async def on_text(self, c, text):
        pass

    def data(self, c, stream, n):
        return []


def parse(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


class Bybit(Venue):
    topics = ["publicTrade.BTCUSDT", "orderbook.1.BTCUSDT"]
    known = re.compile(r"^(publicTrade|orderbook\.(1|50|200|1000)|tickers)\.(BTCUSDT|ETHUSDT)$")
    conn_id = "3cd84cb1-7f2c-4a1f-9b1a-7d8b0d8c2f11"
    # A live capture quoted in public connector code (FEEDS.md S28).
    real = ['{"topic":"publicTrade.BTCUSDT","ts":1788335009483,"type":"snapshot","data":[{"i":"2290000001202469355","T":1788335009482,"p":"77606.8","v":"0.000712","S":"Buy","seq":113508069853,"s":"BTCUSDT","BT":false,"RPI":false}]}']

    async def start(self, c):
        # Bybit: with no ping and no data the connection is cut after 10 min; the sim
        # is stricter and wants the advised {"op":"ping"} at least every 45 s.
        c.require("ping", S(45), 'no {"op":"ping"} for 45 s')

    async def on_text(self, c, text):
        m = parse(text)
        if not isinstance(m, dict) or "op" not in m:
            await c.send('{"success":false,"ret_msg":"error:request not supported","conn_id":"%s","op":""}' % self.conn_id)
            return
        req_id = json.dumps(m.get("req_id", ""))
        if m["op"] == "ping":
            c.touch("ping")
            await c.send('{"success":true,"ret_msg":"pong","conn_id":"%s","req_id":%s,"op":"ping"}' % (self.conn_id, req_id))
        elif m["op"] == "subscribe":
            args = m.get("args")
            bad = [a for a in args if not (isinstance(a, str) and self.known.match(a))] if isinstance(args, list) and args else ["(no args)"]
            if bad:
                await c.send('{"success":false,"ret_msg":"Invalid topic: %s","conn_id":"%s","req_id":%s,"op":"subscribe"}' % (bad[0], self.conn_id, req_id))
                return
            await c.send('{"success":true,"ret_msg":"","conn_id":"%s","req_id":%s,"op":"subscribe"}' % (self.conn_id, req_id))
            for a in args:
                c.grant(a)
        else:
            await c.send('{"success":false,"ret_msg":"error:request op not supported: %s","conn_id":"%s","op":"%s"}' % (m["op"], self.conn_id, m["op"]))

    def data(self, c, stream, n):
        ts = ms()
        sym = stream.rsplit(".", 1)[1]
        if stream.startswith("publicTrade"):
            return [fill('{"topic":"@s@","type":"snapshot","ts":@ts@,"data":[{"T":@ts@,"s":"@sym@","S":"Buy","v":"0.000712","p":"77606.8","L":"PlusTick","i":"22900000012024@n@","BT":false,"RPI":false,"seq":@seq@}]}',
                         s=stream, ts=ts, sym=sym, n=n, seq=BIG + n)]
        # u counts the book's updates by one: a snapshot first, deltas after; the
        # level-1 snapshot re-sent (same u) when the book did not change; at n = 80 a
        # "service restart": a snapshot with u = 1, and the count goes on from there.
        u = n + 1 if n < 80 else n - 79
        if ARGS.quirk == "book-gap" and 20 <= n < 80:
            u += 1  # the update with u = 21 is lost
        kind = "snapshot" if n in (0, 80) else "delta"
        book = '{"topic":"@s@","type":"@k@","ts":@ts@,"data":{"s":"@sym@","b":[["77606.70","1.028"]],"a":[["77606.80","0.35@n@"]],"u":@u@,"seq":@seq@},"cts":@ts@}'
        out = [fill(book, s=stream, k=kind, ts=ts, sym=sym, n=n, u=u, seq=BIG + 2 * n)]
        if n == 40:
            out.append(fill(book, s=stream, k="snapshot", ts=ts, sym=sym, n=n, u=u, seq=BIG + 2 * n))
        return out


class Binance(Venue):
    route_by = ["/stream"]
    topics = ["btcusdt@trade", "btcusdt@bookTicker"]
    paths = {"/stream": None}
    ping_every, pong_within = 20, 60

    def stream_ok(self, path, s):
        return re.match(r"^(btcusdt|ethusdt)@(trade|aggTrade|bookTicker|depth(@100ms)?|depth5)$", s) is not None

    def http(self, conn, request, path, query):
        if path not in self.paths:
            return conn.respond(404, "Not Found")
        if not query.get("streams"):
            return conn.respond(400, '{"code":-1100,"msg":"Illegal characters found in parameter \'streams\'."}')
        return None

    async def start(self, c):
        path, query = c.state["path"], c.state["query"]
        for s in query["streams"][0].split("/"):
            if self.stream_ok(path, s):
                c.grant(s)
            else:
                # Binance accepts an unknown or misplaced stream and never sends it.
                say("stream %r is not served on %s: no data for it" % (s, path))

        async def ping():
            payload = str(ms()).encode()
            try:
                waiter = await c.ws.ping(payload)
            except websockets.ConnectionClosed:
                return
            try:
                await asyncio.wait_for(asyncio.shield(waiter), S(self.pong_within))
            except asyncio.TimeoutError:
                await c.drop("no pong to the ping %s within %d s" % (payload.decode(), self.pong_within))
            except websockets.ConnectionClosed:
                pass

        async def tick():
            c.spawn(ping())
        self.pong_within_s = S(self.pong_within)
        c.every(S(self.ping_every), tick)

    async def on_text(self, c, text):
        m = parse(text)
        if not isinstance(m, dict) or "method" not in m:
            await c.send('{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1","id":null}')
            return
        if m["method"] in ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS"):
            await c.send('{"result":null,"id":%s}' % json.dumps(m.get("id")))
        else:
            await c.send('{"code":2,"msg":"Invalid request: unknown variant `%s`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`","id":%s}' % (m["method"], json.dumps(m.get("id"))))

    def data(self, c, stream, n):
        ts = ms()
        sym = stream.split("@")[0].upper()
        kind = stream.split("@", 1)[1]
        if kind == "trade":
            d = fill('{"e":"trade","E":@ts@,"s":"@sym@","t":@t@,"p":"67012.12000000","q":"0.00120000","T":@ts@,"m":true,"M":true}', ts=ts, sym=sym, t=BIG + n)
        elif kind == "bookTicker":
            d = fill('{"u":@u@,"s":"@sym@","b":"67012.10000000","B":"31.21000000","a":"67012.11000000","A":"40.66000000"}', u=BIG + n, sym=sym)
        elif kind == "aggTrade":
            d = fill('{"e":"aggTrade","E":@ts@,"s":"@sym@","a":@a@,"p":"67012.10","q":"0.003","f":@f@,"l":@f@,"T":@ts@,"m":true}', ts=ts, sym=sym, a=BIG + n, f=6500000000 + n)
        elif kind.startswith("markPrice"):
            d = fill('{"e":"markPriceUpdate","E":@ts@,"s":"@sym@","p":"67010.12345678","P":"67011.50000000","i":"67005.10000000","r":"0.00010000","T":@nt@}', ts=ts, sym=sym, nt=ts + 28800000)
        else:
            d = fill('{"e":"depthUpdate","E":@ts@,"s":"@sym@","U":@u@,"u":@u@,"b":[["67012.10","10"]],"a":[["67012.11","100"]]}', ts=ts, sym=sym, u=BIG + n)
        return ['{"stream":"%s","data":%s}' % (stream, d)]


class BinanceFutures(Binance):
    topics = ["btcusdt@aggTrade", "btcusdt@markPrice@1s"]
    paths = {"/market/stream": None, "/public/stream": None, "/stream": None}
    # USD-M: ping every 3 min, pong within 10 min. The sim uses spot's tighter
    # 20 s / 60 s so that a test of a few seconds covers several pings.
    ping_every, pong_within = 20, 60

    def stream_ok(self, path, s):
        m = re.match(r"^(btcusdt|ethusdt)@(.+)$", s)
        if not m:
            return False
        kind = m.group(2)
        if re.match(r"^(aggTrade|markPrice(@1s)?|kline_\w+|ticker|miniTicker|forceOrder)$", kind):
            return path == "/market/stream"
        if re.match(r"^(depth\d*(@\d+ms)?|bookTicker)$", kind):
            return path == "/public/stream"
        return False  # legacy /stream: retired 2026-04-23, accepts and never delivers


class Okx(Venue):
    route_by = ["/arg/channel", "/arg/instId"]
    topics = ["trades.BTC-USDT", "bbo-tbt.BTC-USDT"]
    channels = {"trades", "bbo-tbt", "books5", "tickers", "books"}
    inst = {"BTC-USDT", "ETH-USDT", "BTC-USDT-SWAP"}
    conn_id = "c7f0ba8e"
    # A trade "confirmed live, 2026-08-31" in public connector code (FEEDS.md S29).
    real = ['{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1051102132","px":"78808.8","sz":"0.00504905","side":"sell","ts":"1788118931677","count":"1","source":"0","seqId":80559459948}]}']

    async def start(self, c):
        # OKX breaks a connection after 30 s without traffic from the client side's
        # point of view; the sim wants the text ping at least every 30 s.
        c.require("ping", S(30), "no text ping for 30 s", 4004, "No data received in 30s.")

    async def on_text(self, c, text):
        if text == "ping":
            c.touch("ping")
            await c.send("pong", file=None)
            return
        m = parse(text)
        if not isinstance(m, dict) or m.get("op") != "subscribe" or not isinstance(m.get("args"), list):
            await c.send('{"event":"error","msg":"Illegal request: %s","code":"60012","connId":"%s"}' % (json.dumps(text)[1:-1], self.conn_id))
            return
        for a in m["args"]:
            ch, inst = a.get("channel"), a.get("instId")
            if ch in self.channels and inst in self.inst:
                await c.send('{"event":"subscribe","arg":{"channel":"%s","instId":"%s"},"connId":"%s"}' % (ch, inst, self.conn_id))
                await c.send('{"event":"channel-conn-count","channel":"%s","connCount":"1","connId":"%s"}' % (ch, self.conn_id))
                c.grant(ch + "." + inst)
            else:
                await c.send('{"event":"error","msg":"Wrong URL or channel:%s,instId:%s doesn\'t exist. Please use the correct URL, channel and parameters referring to API document.","code":"60018","connId":"%s"}' % (ch, inst, self.conn_id))

    def data(self, c, stream, n):
        ch, inst = stream.split(".", 1)
        ts = ms()
        out = []
        if n == 100:
            out.append('{"event":"notice","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","code":"64008","connId":"%s"}' % self.conn_id)
        if ch == "trades":
            out.append(fill('{"arg":{"channel":"trades","instId":"@i@"},"data":[{"instId":"@i@","tradeId":"10511021@n@","px":"78808.8","sz":"0.00504905","side":"sell","ts":"@ts@","count":"1","source":"0","seqId":@seq@}]}', i=inst, n=n, ts=ts, seq=BIG + n))
        else:
            out.append(fill('{"arg":{"channel":"@c@","instId":"@i@"},"data":[{"asks":[["78808.9","0.5","0","2"]],"bids":[["78808.8","1.2","0","3"]],"ts":"@ts@","seqId":@seq@}]}', c=ch, i=inst, ts=ts, seq=BIG + n))
        return out


class Coinbase(Venue):
    route_by = ["/type", "/product_id"]
    topics = ["match.BTC-USD", "ticker.BTC-USD"]
    products = {"BTC-USD", "ETH-USD"}
    channels = {"matches", "ticker", "heartbeat", "level2_batch", "status", "ticker_batch"}

    async def start(self, c):
        async def deadline():
            await asyncio.sleep(S(5))
            if not c.state.get("subscribed"):
                await c.send('{"type":"error","message":"Failed to subscribe","reason":"You must send a subscribe message within 5 seconds of connecting"}')
                await c.drop("no subscribe within 5 s")
        c.spawn(deadline())

    async def on_text(self, c, text):
        m = parse(text)
        if not isinstance(m, dict) or m.get("type") != "subscribe":
            await c.send('{"type":"error","message":"Failed to subscribe","reason":"Type has to be either subscribe or unsubscribe"}')
            return
        prods = m.get("product_ids") or []
        chans = [x if isinstance(x, str) else x.get("name") for x in (m.get("channels") or [])]
        if any(ch in ("level2", "level3", "full") for ch in chans):
            await c.send('{"type":"error","message":"Failed to subscribe","reason":"level2, level3, and full channels now require authentication. https://docs.cloud.coinbase.com/exchange/docs/websocket-auth"}')
            return
        bad = [p for p in prods if p not in self.products] + [ch for ch in chans if ch not in self.channels]
        if not prods or not chans or bad:
            await c.send('{"type":"error","message":"Failed to subscribe","reason":"%s is not a valid product or channel"}' % (bad[0] if bad else "(none)"))
            return
        c.state["subscribed"] = True
        await c.send('{"type":"subscriptions","channels":[%s]}' % ",".join(
            '{"name":"%s","product_ids":%s,"account_ids":null}' % (ch, json.dumps(prods, separators=(",", ":"))) for ch in chans))
        for p in prods:
            if "matches" in chans:
                await c.send(fill('{"type":"last_match","trade_id":1081862674,"maker_order_id":"f07e510f-0c5b-4dd8-9f0e-3a8bbc2a6d11","taker_order_id":"e6f50944-4f1c-41b5-a1d5-08d7b4b3c2a7","side":"buy","size":"0.00100000","price":"80691.52","product_id":"@p@","sequence":134905860110,"time":"@t@"}', p=p, t=iso()))
                c.grant("match." + p)
            if "ticker" in chans:
                c.grant("ticker." + p)
            if "heartbeat" in chans:
                seq = {"n": 0}

                async def hb(p=p, seq=seq):
                    seq["n"] += 1
                    await c.send('{"type":"heartbeat","last_trade_id":1081862675,"product_id":"%s","sequence":%d,"time":"%s"}' % (p, 134905860111 + seq["n"], iso()))
                c.every(S(1), hb)

    def data(self, c, stream, n):
        kind, p = stream.split(".", 1)
        if kind == "match":
            return [fill('{"type":"match","trade_id":@id@,"maker_order_id":"f07e510f-0c5b-4dd8-9f0e-3a8bbc2a6d11","taker_order_id":"e6f50944-4f1c-41b5-a1d5-08d7b4b3c2a7","side":"sell","size":"0.00000001","price":"80691.53","product_id":"@p@","sequence":@seq@,"time":"@t@"}', id=1081862675 + n, p=p, seq=134905860111 + n, t=iso())]
        return [fill('{"type":"ticker","sequence":@seq@,"product_id":"@p@","price":"80691.53","open_24h":"79801.01","volume_24h":"8412.90217348","low_24h":"79200.00","high_24h":"81020.00","volume_30d":"301276.56893541","best_bid":"80691.52","best_bid_size":"0.14390000","best_ask":"80691.53","best_ask_size":"0.01200000","side":"sell","time":"@t@","trade_id":@id@,"last_size":"0.00000001"}', seq=134905860111 + n, p=p, t=iso(), id=1081862675 + n)]


class Kraken(Venue):
    route_by = ["/channel", "/data/0/symbol"]
    topics = ["trade.BTC/USD", "ticker.BTC/USD"]
    channels = {"trade", "ticker", "book", "ohlc"}
    symbols = {"BTC/USD", "ETH/USD"}
    # A trade from public connector test data (FEEDS.md S14).
    real = ['{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":105944.2,"qty":0.00027625,"ord_type":"limit","trade_id":10218208,"timestamp":"2023-10-06T17:35:55.440295Z"}]}']

    async def start(self, c):
        await c.send('{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online","api_version":"v2","connection_id":18125794168470749634,"upcoming_maintenance":[],"emergency":[]}]}')
        c.every(S(1), lambda: c.send('{"channel":"heartbeat"}'))
        # Kraken needs no client ping; the sim wants the preset's ping at least every
        # 60 s, to prove it is well formed and answered.
        c.require("ping", S(60), 'no {"method":"ping"} for 60 s')

    async def on_text(self, c, text):
        m = parse(text)
        t_in = iso()
        if not isinstance(m, dict) or "method" not in m:
            await c.send('{"error":"Malformed request","success":false,"time_in":"%s","time_out":"%s"}' % (t_in, iso()))
            return
        req = ',"req_id":%s' % json.dumps(m["req_id"]) if "req_id" in m else ""
        if m["method"] == "ping":
            c.touch("ping")
            await c.send('{"method":"pong"%s,"time_in":"%s","time_out":"%s"}' % (req, t_in, iso()))
            return
        if m["method"] != "subscribe":
            await c.send('{"error":"Method not found","method":"%s","success":false%s,"time_in":"%s","time_out":"%s"}' % (m["method"], req, t_in, iso()))
            return
        p = m.get("params") or {}
        ch = p.get("channel")
        if ch not in self.channels:
            await c.send('{"error":"Channel %s not found","method":"subscribe","success":false%s,"time_in":"%s","time_out":"%s"}' % (ch, req, t_in, iso()))
            return
        trigger = p.get("event_trigger", "trades")
        if ch == "ticker" and trigger not in ("bbo", "trades"):
            await c.send('{"error":"event_trigger must be one of bbo, trades","method":"subscribe","success":false%s,"time_in":"%s","time_out":"%s"}' % (req, t_in, iso()))
            return
        for s in p.get("symbol") or []:
            if s in self.symbols:
                await c.send('{"method":"subscribe","result":{"channel":"%s","snapshot":true,"symbol":"%s"},"success":true%s,"time_in":"%s","time_out":"%s"}' % (ch, s, req, t_in, iso()))
                if ch == "ticker" and trigger == "trades":
                    # Kraken's default: the ticker is published on trades only, so
                    # best-bid/offer changes between trades never come.
                    c.state.setdefault("ticker_on_trades", set()).add(s)
                    say("ticker for %s without event_trigger bbo: updates on trades only" % s)
                else:
                    c.grant(ch + "." + s)
            else:
                await c.send('{"error":"Currency pair not supported %s","method":"subscribe","success":false,"symbol":"%s"%s,"time_in":"%s","time_out":"%s"}' % (s, s, req, t_in, iso()))

    def ticker(self, ch, sym):
        return fill('{"channel":"@c@","type":"update","data":[{"symbol":"@s@","bid":67012.1,"bid_qty":0.50000000,"ask":67012.2,"ask_qty":1.25000000,"last":67012.1,"volume":1234.56789012345678901,"vwap":66950.3,"low":66001.0,"high":68010.5,"change":120.4,"change_pct":0.18}]}', c=ch, s=sym)

    def data(self, c, stream, n):
        ch, sym = stream.split(".", 1)
        if ch == "trade":
            out = [fill('{"channel":"trade","type":"update","data":[{"symbol":"@s@","side":"buy","price":67012.123456789012345678,"qty":0.00027625,"ord_type":"limit","trade_id":@id@,"timestamp":"@t@"}]}', s=sym, id=10218208 + n, t=iso())]
            if sym in c.state.get("ticker_on_trades", ()):
                out.append(self.ticker("ticker", sym))
            return out
        if ch == "ticker":
            # event_trigger bbo: the best bid/offer moves more often than trades happen.
            return [self.ticker(ch, sym), self.ticker(ch, sym)]
        return [self.ticker(ch, sym)]


class Deribit(Venue):
    route_by = ["/params/channel"]
    topics = ["trades.BTC-PERPETUAL.100ms", "quote.BTC-PERPETUAL"]
    chan = re.compile(r"^((trades|ticker|book)\.(BTC-PERPETUAL|ETH-PERPETUAL)\.(100ms|agg2|raw)|quote\.(BTC-PERPETUAL|ETH-PERPETUAL))$")
    # The docs' quote.* example (docs.deribit.com/subscriptions/market-data/quoteinstrument_name),
    # in the notification envelope of docs.deribit.com/articles/notifications.
    real = ['{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":{"best_ask_amount":50,"best_ask_price":3996.61,"best_bid_amount":40,"best_bid_price":3914.97,"instrument_name":"BTC-PERPETUAL","timestamp":1550658624149}}}']

    def usx(self):
        u = int(time.time() * 1e6)
        return '"usIn":%d,"usOut":%d,"usDiff":%d,"testnet":false' % (u - 40, u, 40)

    async def on_text(self, c, text):
        m = parse(text)
        if not isinstance(m, dict) or m.get("jsonrpc") != "2.0" or "method" not in m:
            await c.send('{"jsonrpc":"2.0","error":{"message":"Invalid Request","code":-32600},%s}' % self.usx())
            return
        rid = json.dumps(m.get("id"))
        meth = m["method"]
        params = m.get("params") or {}
        if meth == "public/subscribe":
            chans = params.get("channels") or []
            bad = [x for x in chans if not (isinstance(x, str) and self.chan.match(x))]
            if bad or not chans:
                await c.send('{"jsonrpc":"2.0","id":%s,"error":{"message":"Invalid params","data":{"reason":"invalid channel","param":"channels"},"code":-32602},%s}' % (rid, self.usx()))
                return
            if any(x.endswith(".raw") for x in chans):
                await c.send('{"jsonrpc":"2.0","id":%s,"error":{"message":"raw_subscriptions_not_available_for_unauthorized","code":13778},%s}' % (rid, self.usx()))
                return
            await c.send('{"jsonrpc":"2.0","id":%s,"result":%s,%s}' % (rid, json.dumps(chans, separators=(",", ":")), self.usx()))
            for x in chans:
                c.grant(x)

            async def want_heartbeat():
                # Not a Deribit rule: the preset promises set_heartbeat after the
                # subscribe response, and the test must see test_request answered.
                await asyncio.sleep(S(10))
                if "interval" not in c.state:
                    await c.drop("no public/set_heartbeat within 10 s of the subscribe response")
            c.spawn(want_heartbeat())
        elif meth == "public/set_heartbeat":
            iv = params.get("interval")
            if not isinstance(iv, (int, float)) or iv < 10:
                await c.send('{"jsonrpc":"2.0","id":%s,"error":{"message":"Invalid params","data":{"reason":"must be greater or equal to 10","param":"interval"},"code":-32602},%s}' % (rid, self.usx()))
                return
            await c.send('{"jsonrpc":"2.0","id":%s,"result":"ok",%s}' % (rid, self.usx()))
            first = "interval" not in c.state
            c.state["interval"] = iv
            c.state["pending"] = False
            if first:
                async def heartbeat():
                    # Deribit: a test_request must be answered with public/test, or
                    # the connection is closed. The sim allows one interval for it.
                    if c.state["pending"]:
                        await c.drop("test_request not answered with public/test within %s s" % c.state["interval"])
                        return
                    c.state["pending"] = True
                    await c.send('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}')

                async def loop():
                    while not c.closed:
                        await asyncio.sleep(S(c.state["interval"]))
                        if not c.closed:
                            await heartbeat()
                c.spawn(loop())
        elif meth == "public/test":
            c.state["pending"] = False
            c.state["tests"] = c.state.get("tests", 0) + 1
            await c.send('{"jsonrpc":"2.0","id":%s,"result":{"version":"1.2.26"},%s}' % (rid, self.usx()))
        else:
            await c.send('{"jsonrpc":"2.0","id":%s,"error":{"message":"Method not found","code":-32601},%s}' % (rid, self.usx()))

    def data(self, c, stream, n):
        ts = ms()
        inst = stream.split(".")[1]
        if stream.startswith("quote."):
            return [fill('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"@c@","data":{"best_ask_amount":20.0,"best_ask_price":84295.5,"best_bid_amount":@a@,"best_bid_price":84295.0,"instrument_name":"@i@","timestamp":@ts@}}}', c=stream, a=1230 + n, i=inst, ts=ts)]
        if stream.startswith("trades"):
            return [fill('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"@c@","data":[{"timestamp":@ts@,"price":84295.123456789012345678,"direction":"buy","index_price":84319.98,"instrument_name":"@i@","trade_seq":@seq@,"amount":8430.0,"mark_price":84292.11,"tick_direction":2,"contracts":843.0,"trade_id":"3561309@n@"}]}}', c=stream, ts=ts, i=inst, seq=BIG + n, n=n)]
        return [fill('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"@c@","data":{"timestamp":@ts@,"state":"open","instrument_name":"@i@","best_bid_price":84295.0,"best_bid_amount":1230.0,"best_ask_price":84295.5,"best_ask_amount":20.0,"mark_price":84292.11,"index_price":84319.98,"open_interest":9007199254740993,"current_funding":0.0,"funding_8h":0.00001234}}}', c=stream, ts=ts, i=inst)]


class Bitmex(Venue):
    route_by = ["/table", "/data/0/symbol"]
    sep = ":"
    topics = ["trade:XBTUSD", "quote:XBTUSD"]
    tables = {"trade", "quote", "orderBookL2_25", "instrument"}
    symbols = {"XBTUSD", "ETHUSD"}

    async def start(self, c):
        await c.send('{"info":"Welcome to the BitMEX Realtime API.","version":"2.0.0","timestamp":"%s","docs":"https://www.bitmex.com/app/wsAPI","heartbeatEnabled":false,"limit":{"remaining":39}}' % iso())
        # BitMEX answers plain-text pings; the sim wants one at least every 60 s.
        c.require("ping", S(60), "no text ping for 60 s")

    async def on_text(self, c, text):
        if text == "ping":
            c.touch("ping")
            await c.send("pong", file=None)
            return
        m = parse(text)
        req = json.dumps(m, separators=(",", ":")) if m is not None else json.dumps(text)
        if not isinstance(m, dict) or m.get("op") != "subscribe" or not isinstance(m.get("args"), list):
            await c.send('{"status":400,"error":"Unknown or malformed request","meta":{},"request":%s}' % req)
            return
        if len(m["args"]) > 20:
            await c.send('{"status":400,"error":"Too many args sent. Max length is 20","meta":{},"request":%s}' % req)
            return
        for a in m["args"]:
            table, _, sym = str(a).partition(":")
            if table not in self.tables:
                await c.send('{"status":400,"error":"Unknown table: %s","meta":{},"request":%s}' % (table, req))
            elif sym not in self.symbols:
                await c.send('{"status":400,"error":"Unknown or expired symbol: %s","meta":{},"request":%s}' % (sym, req))
            else:
                await c.send('{"success":true,"subscribe":"%s","request":%s}' % (a, req))
                if table == "trade":
                    await c.send(file=AUTO, text=fill('{"table":"trade","action":"partial","keys":[],"types":{"timestamp":"timestamp","symbol":"symbol","side":"symbol","size":"long","price":"float","tickDirection":"symbol","trdMatchID":"guid","grossValue":"long","homeNotional":"float","foreignNotional":"float","trdType":"symbol"},"filter":{"symbol":"@s@"},"data":[{"timestamp":"@t@","symbol":"@s@","side":"Buy","size":200,"price":98570.5,"tickDirection":"PlusTick","trdMatchID":"00000000-006d-1000-0000-000e8737d535","grossValue":202900,"homeNotional":0.002029,"foreignNotional":200.0,"trdType":"Regular"}]}', s=sym, t=iso()))
                c.grant(a)

    def data(self, c, stream, n):
        table, sym = stream.split(":")
        t = iso()
        if table == "trade":
            if n % 50 == 49:
                return ['{"table":"trade","action":"insert","data":[]}']
            return [fill('{"table":"trade","action":"insert","data":[{"timestamp":"@t@","symbol":"@s@","side":"Sell","size":100,"price":98570.9,"tickDirection":"ZeroPlusTick","trdMatchID":"00000000-006d-1000-0000-000e8737@n@","grossValue":101450,"homeNotional":0.0010145,"foreignNotional":100.0,"trdType":"Regular"}]}', t=t, s=sym, n="%04d" % (n % 10000))]
        return [fill('{"table":"@tb@","action":"insert","data":[{"timestamp":"@t@","symbol":"@s@","bidSize":1000,"bidPrice":98570.5,"askPrice":98571.123456789012345678,"askSize":@n@}]}', tb=table, t=t, s=sym, n=200 + n)]


class Htx(Venue):
    route_by = ["/ch"]
    topics = ["market.btcusdt.trade.detail", "market.btcusdt.bbo"]
    gzip = True
    sub = re.compile(r"^market\.(btcusdt|ethusdt)\.(trade\.detail|bbo|depth\.step0|detail)$")
    # gocryptotrader's test data (FEEDS.md S8).
    real = ['{"ch":"market.btcusdt.trade.detail","ts":1630994963175,"tick":{"id":137005445109,"ts":1630994963173,"data":[{"id":137005445109359290000000000,"ts":1630994963173,"tradeId":102523573486,"amount":0.006754,"price":52648.62,"direction":"buy"}]}}']

    async def start(self, c):
        c.state["pings"] = []

        async def ping():
            # HTX: {"ping":N} every 5 s; after 2 unanswered the client is dropped.
            if len(c.state["pings"]) >= 2:
                await c.drop("2 pings unanswered: %s" % c.state["pings"])
                return
            n = ms()
            c.state["pings"].append(n)
            await c.send('{"ping":%d}' % n)
        c.every(S(5), ping)

    async def on_text(self, c, text):
        m = parse(text)
        if not isinstance(m, dict):
            await c.send('{"status":"error","ts":%d,"err-code":"bad-request","err-msg":"invalid request"}' % ms())
            return
        if "pong" in m:
            if m["pong"] in c.state["pings"]:
                c.state["pings"].remove(m["pong"])
            else:
                await c.send('{"ts":%d,"status":"error","err-code":"bad-request","err-msg":"invalid pong"}' % ms())
            return
        if "sub" in m:
            rid = json.dumps(m.get("id", ""))
            if isinstance(m["sub"], str) and self.sub.match(m["sub"]):
                await c.send('{"id":%s,"status":"ok","subbed":"%s","ts":%d}' % (rid, m["sub"], ms()))
                c.grant(m["sub"])
            else:
                await c.send('{"id":%s,"status":"error","err-code":"bad-request","err-msg":"invalid topic %s","ts":%d}' % (rid, m["sub"], ms()))
            return
        await c.send('{"status":"error","ts":%d,"err-code":"bad-request","err-msg":"unsupported request"}' % ms())

    def data(self, c, stream, n):
        ts = ms()
        if stream.endswith("trade.detail"):
            return [fill('{"ch":"@c@","ts":@ts@,"tick":{"id":@tid@,"ts":@ts@,"data":[{"id":1370054451093592900000@n@,"ts":@ts@,"tradeId":@tr@,"amount":0.006754,"price":52648.62,"direction":"buy"}]}}', c=stream, ts=ts, tid=137005445109 + n, n="%05d" % n, tr=102523573486 + n)]
        return [fill('{"ch":"@c@","ts":@ts@,"tick":{"seqId":@seq@,"ask":52648.63,"askSize":0.372591,"bid":52648.62,"bidSize":0.36281,"quoteTime":@ts@,"symbol":"btcusdt"}}', c=stream, ts=ts, seq=BIG + n)]


class Bitget(Venue):
    route_by = ["/arg/channel", "/arg/instId"]
    topics = ["trade.BTCUSDT", "books1.BTCUSDT"]
    channels = {"trade", "books1", "books5", "ticker"}
    inst = {"BTCUSDT", "ETHUSDT"}

    # From ccxt's Bitget doc comment (FEEDS.md S17b).
    real = ['{"action":"snapshot","arg":{"instType":"SPOT","channel":"trade","instId":"BTCUSDT"},"data":[{"ts":"1701910980366","price":"43854.01","size":"0.0535","side":"buy","tradeId":"1116461060594286593"}],"ts":1701910980730}']

    async def start(self, c):
        # Bitget: one version of its page disconnects after 30 s without a text ping
        # (another says 2 min): the sim holds the stricter one. At most 10 messages a
        # second, pings included.
        c.require("ping", S(30), "no text ping for 30 s")
        c.state["sent_at"] = []

    async def on_text(self, c, text):
        now = time.monotonic()
        recent = [t for t in c.state["sent_at"] if now - t < 1.0] + [now]
        c.state["sent_at"] = recent
        if len(recent) > 10:
            await c.send('{"event":"error","code":30007,"msg":"request over limit,connection close"}')
            await c.drop("more than 10 messages in 1 s")
            return
        if text == "ping":
            c.touch("ping")
            await c.send("pong", file=None)
            return
        m = parse(text)
        if not isinstance(m, dict) or m.get("op") != "subscribe" or not isinstance(m.get("args"), list):
            await c.send('{"event":"error","code":30001,"msg":"Illegal request","op":""}')
            return
        for a in m["args"]:
            it, ch, inst = a.get("instType"), a.get("channel"), a.get("instId")
            arg = '{"instType":"%s","channel":"%s","instId":"%s"}' % (it, ch, inst)
            if it == "SPOT" and ch in self.channels and inst in self.inst:
                await c.send('{"event":"subscribe","arg":%s}' % arg)
                c.grant(ch + "." + inst)
            else:
                await c.send('{"event":"error","arg":%s,"code":30001,"msg":"instType:%s,channel:%s,instId:%s doesn\'t exist","op":"subscribe"}' % (arg, it, ch, inst))

    def data(self, c, stream, n):
        ch, inst = stream.split(".", 1)
        ts = ms()
        action = "snapshot" if n == 0 else "update"
        if ch == "trade":
            return [fill('{"action":"@a@","arg":{"instType":"SPOT","channel":"trade","instId":"@i@"},"data":[{"ts":"@ts@","price":"43854.01","size":"0.0535","side":"buy","tradeId":"11164610605942@n@"}],"ts":@ts@}', a=action, i=inst, ts=ts, n="%05d" % n)]
        return [fill('{"action":"snapshot","arg":{"instType":"SPOT","channel":"@c@","instId":"@i@"},"data":[{"asks":[["43854.02","0.5"]],"bids":[["43854.01","1.2"]],"checksum":0,"seq":@seq@,"ts":"@ts@"}],"ts":@ts@}', c=ch, i=inst, ts=ts, seq=BIG + n)]


class Gate(Venue):
    route_by = ["/channel"]
    topics = ["futures.trades", "futures.book_ticker"]
    channels = {"futures.trades", "futures.book_ticker", "futures.tickers", "futures.order_book"}
    contracts = {"BTC_USDT", "ETH_USDT"}
    # gocryptotrader's test data (FEEDS.md S8).
    real = ['{"channel":"futures.trades","event":"update","time":1541503698,"result":[{"size":-108,"id":27753479,"create_time":1545136464,"create_time_ms":1545136464123,"price":"96.4","contract":"BTC_USD"}]}']

    async def start(self, c):
        c.state["decimal"] = c.ws.request.headers.get("X-Gate-Size-Decimal") == "1"
        # Not documented by Gate; the sim wants the preset's ping at least every 60 s.
        c.require("ping", S(60), "no futures.ping for 60 s")

    def time_ok(self, t):
        return isinstance(t, int) and abs(t - time.time()) <= 10

    async def on_text(self, c, text):
        m = parse(text)
        now = int(time.time())
        if not isinstance(m, dict) or "channel" not in m:
            await c.send('{"time":%d,"time_ms":%d,"channel":"","event":"","error":{"code":1,"message":"invalid request"},"result":null}' % (now, ms()))
            return
        if not self.time_ok(m.get("time")):
            await c.send('{"time":%d,"time_ms":%d,"channel":"%s","event":"","error":{"code":2,"message":"invalid argument: time"},"result":null}' % (now, ms(), m["channel"]))
            await c.drop("time %r is not the current Unix time in seconds" % (m.get("time"),))
            return
        if m["channel"] == "futures.ping":
            c.touch("ping")
            await c.send('{"time":%d,"time_ms":%d,"conn_id":"5e74253e9c793974","trace_id":"1bde5aaa0acf2f5f48edfd4392e1fa68","channel":"futures.pong","event":"","result":null}' % (now, ms()))
            return
        ch = m["channel"]
        if m.get("event") != "subscribe" or ch not in self.channels:
            await c.send('{"time":%d,"time_ms":%d,"channel":"%s","event":"%s","error":{"code":2,"message":"unknown channel %s"},"result":{"status":"failed"}}' % (now, ms(), ch, m.get("event"), ch))
            return
        pl = m.get("payload") or []
        bad = [p for p in pl if p not in self.contracts]
        if bad or not pl:
            await c.send('{"time":%d,"time_ms":%d,"channel":"%s","event":"subscribe","error":{"code":2,"message":"unknown contract %s"},"result":{"status":"failed"}}' % (now, ms(), ch, bad[0] if bad else ""))
            return
        # The docs' shape: {"time","time_ms","channel","event","result":{"status"}}.
        await c.send('{"time":%d,"time_ms":%d,"channel":"%s","event":"subscribe","result":{"status":"success"}}' % (now, ms(), ch))
        for p in pl:
            c.grant(ch + "|" + p)

    def data(self, c, stream, n):
        ch, contract = stream.split("|")
        now, t = int(time.time()), ms()
        dec = c.state["decimal"]
        if ch == "futures.trades":
            size = '"-0.0108"' if dec else "-108"
            return [fill('{"time":@now@,"time_ms":@t@,"channel":"futures.trades","event":"update","result":[{"size":@sz@,"id":@id@,"create_time":@now@,"create_time_ms":@t@,"price":"67012.1","contract":"@c@","is_internal":false}]}', now=now, t=t, sz=size, id=27753479 + n, c=contract)]
        b, a = ('"1.25"', '"0.5"') if dec else ("125", "50")
        return [fill('{"time":@now@,"time_ms":@t@,"channel":"@ch@","event":"update","result":{"t":@t@,"u":@u@,"s":"@c@","b":"67012.1","B":@b@,"a":"67012.2","A":@a@}}', now=now, t=t, ch=ch, u=BIG + n, c=contract, b=b, a=a)]


class Kucoin(Venue):
    topics = ["/market/match:BTC-USDT", "/spotMarket/level1:BTC-USDT"]
    # The docs' level1 example (kucoin.com/docs-new/3470067w0).
    real = ['{"topic":"/spotMarket/level1:BTC-USDT","type":"message","subject":"level1","data":{"asks":["68145.8","0.51987471"],"bids":["68145.7","1.29267802"],"timestamp":1729816058766}}']
    tokens = set()
    ping_interval, ping_timeout = 18000, 10000

    def http(self, conn, request, path, query):
        if request.method == "POST" and path == "/api/v1/bullet-public":
            token = "2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64mdzUOPusi34M_wGoSf7iNyEWJ" + hexid(time.time(), random.random(), n=16)
            self.tokens.add(token)
            port = conn.transport.get_extra_info("sockname")[1]
            log({"event": "bullet"})
            body = json.dumps({"code": "200000", "data": {"token": token, "instanceServers": [{
                "endpoint": "ws://127.0.0.1:%d/endpoint" % port, "encrypt": False, "protocol": "websocket",
                "pingInterval": self.ping_interval, "pingTimeout": self.ping_timeout}]}}, separators=(",", ":"))
            r = conn.respond(200, body)
            r.headers["Content-Type"] = "application/json"
            return r
        if request.method != "GET":
            return conn.respond(404, '{"code":"404000","msg":"Not Found"}')
        if path != "/endpoint":
            return conn.respond(404, "Not Found")
        return None

    async def start(self, c):
        q = c.state["query"]
        token, cid = q.get("token", [""])[0], q.get("connectId", [""])[0]
        if token not in self.tokens:
            await c.send('{"id":"%s","type":"error","code":401,"data":"token is invalid"}' % cid)
            await c.drop("token %r was not handed out by bullet-public" % token[:20], 1000, "token is invalid")
            return
        # KuCoin: "the connection will only be available once the welcome message has
        # been received". The sim sends it a little late and loses whatever arrives
        # before it, so a client that subscribes at once gets nothing.
        if ARGS.quirk == "no-welcome":
            c.state["welcomed"] = True
            say("quirk: no welcome")
        async def welcome():
            if ARGS.quirk == "no-welcome":
                return
            await asyncio.sleep(0.3)
            c.state["welcomed"] = True
            await c.send('{"id":"%s","type":"welcome"}' % cid)
        c.spawn(welcome())
        # KuCoin: ping every pingInterval, dropped after pingInterval + pingTimeout.
        c.require("ping", S((self.ping_interval + self.ping_timeout) / 1000), "no ping for pingInterval + pingTimeout (28 s)")

    async def on_text(self, c, text):
        m = parse(text)
        if not isinstance(m, dict) or "type" not in m:
            await c.send('{"type":"error","code":400,"data":"invalid request"}')
            return
        rid = json.dumps(str(m.get("id", "")))
        if not c.state.get("welcomed"):
            say("a %s before the welcome: lost" % m["type"])
            log({"event": "lost", "text": text})
            return
        if m["type"] == "ping":
            c.touch("ping")
            await c.send('{"id":%s,"type":"pong","timestamp":%d}' % (rid, ms() * 1000))
            return
        if m["type"] != "subscribe":
            await c.send('{"id":%s,"type":"error","code":400,"data":"type %s not supported"}' % (rid, m["type"]))
            return
        topic = str(m.get("topic", ""))
        mt = re.match(r"^/(market/match|market/ticker|spotMarket/level1):(.+)$", topic)
        syms = mt.group(2).split(",") if mt else []
        if not mt or any(s not in ("BTC-USDT", "ETH-USDT") for s in syms):
            await c.send('{"id":%s,"type":"error","code":404,"data":"topic %s is not found"}' % (rid, topic))
            return
        if m.get("response"):
            await c.send('{"id":%s,"type":"ack"}' % rid)
        for s in syms:
            c.grant("/%s:%s" % (mt.group(1), s))

    def data(self, c, stream, n):
        kind, sym = stream.rsplit("/", 1)[1].split(":")
        t = ms()
        if kind == "level1":
            return [fill('{"topic":"@tp@","type":"message","subject":"level1","data":{"asks":["68145.8","0.5198747@n@"],"bids":["68145.7","1.29267802"],"timestamp":@t@}}', tp=stream, n=n, t=t)]
        if kind == "match":
            return [fill('{"type":"message","topic":"@tp@","subject":"trade.l3match","data":{"makerOrderId":"6720da6d2c3e5a0007d2b7b1","price":"67012.1","sequence":"109760280035@n@","side":"buy","size":"0.00112","symbol":"@s@","takerOrderId":"6720da6e2c3e5a0007d2b7c4","time":"@ns@","tradeId":"109760280035@n@","type":"match"}}', tp=stream, s=sym, n="%05d" % n, ns=t * 1000000)]
        return [fill('{"type":"message","topic":"@tp@","subject":"trade.ticker","data":{"bestAsk":"67012.2","bestAskSize":"0.5","bestBid":"67012.1","bestBidSize":"1.2","price":"67012.1","sequence":"15458966@n@","size":"0.0011","time":@t@}}', tp=stream, n="%05d" % n, t=t)]


class Bitfinex(Venue):
    route_by = ["/0"]
    topics = ["trades.tBTCUSD", "book.tBTCUSD"]
    # The book's docs example (docs.bitfinex.com/reference/ws-public-books) uses
    # chanId 17082: the sim assigns it to the first book and sends the docs'
    # snapshot and update verbatim.
    book_real = ['[17082,[[7254.7,3,3.3]]]', '[17082,[7254.5,0,1]]']

    async def start(self, c):
        await c.send('{"event":"info","version":2,"serverId":"1c2ac1e5-7f3e-4e5e-9c87-0a4c0fe2b7e4","platform":{"status":1}}')
        c.state["chan"] = {}
        # Bitfinex needs no client ping; the sim wants the preset's ping at least
        # every 60 s, to prove it is well formed and answered.
        c.require("ping", S(60), 'no {"event":"ping"} for 60 s')

    async def on_text(self, c, text):
        m = parse(text)
        if not isinstance(m, dict) or "event" not in m:
            await c.send('{"event":"error","msg":"unknown event","code":10000}')
            return
        if m["event"] == "ping":
            c.touch("ping")
            await c.send('{"event":"pong","ts":%d,"cid":%s}' % (ms(), json.dumps(m.get("cid"))))
            return
        if m["event"] != "subscribe":
            await c.send('{"event":"error","msg":"unknown event","code":10000}')
            return
        ch, sym = m.get("channel"), m.get("symbol")
        if ch not in ("trades", "ticker", "book"):
            await c.send('{"event":"error","msg":"channel: unknown","code":10302,"channel":%s,"symbol":%s}' % (json.dumps(ch), json.dumps(sym)))
            return
        if sym not in ("tBTCUSD", "tETHUSD"):
            await c.send('{"event":"error","msg":"symbol: invalid","code":10300,"channel":"%s","symbol":%s}' % (ch, json.dumps(sym)))
            return
        if ch == "book":
            if m.get("prec", "P0") not in ("P0", "P1", "P2", "P3", "P4", "R0") or m.get("freq", "F0") not in ("F0", "F1"):
                await c.send('{"event":"error","msg":"book: prec/freq invalid","code":10011,"channel":"book","symbol":%s}' % json.dumps(sym))
                return
            if str(m.get("len", "25")) not in ("1", "25", "100", "250"):
                await c.send('{"event":"error","msg":"book: len invalid","code":10012,"channel":"book","symbol":%s}' % json.dumps(sym))
                return
        cid = 17082 if ch == "book" and not any(v == 17082 for v in c.state["chan"].values()) else 17470 + len(c.state["chan"]) * 13 + random.randint(0, 9)
        c.state["chan"][ch + sym] = cid
        # What the recorder learns from the subscribed event (route_ids): this chanId
        # stands for <channel>.<symbol>, a topic's file when it is one.
        c.state.setdefault("alias", {})[str(cid)] = ch + "." + sym
        if ch == "book":
            book = ',"prec":"%s","freq":"%s","len":"%s"' % (m.get("prec", "P0"), m.get("freq", "F0"), m.get("len", "25"))
        else:
            book = ""
        await c.send('{"event":"subscribed","channel":"%s","chanId":%d,"symbol":"%s"%s,"pair":"%s"}' % (ch, cid, sym, book, sym[1:]))
        if ch == "trades":
            await c.send('[%d,[[1637440000,%d,0.00991467,102570],[1637439999,%d,-0.0151,102569.123456789012345678]]]' % (cid, ms(), ms() - 500), file=AUTO)
        if cid == 17082:
            for text in self.book_real:
                await c.send(text, file=AUTO)
        # The heartbeat names the channel: route_ids puts it in the topic's file.
        c.every(S(15), lambda cid=cid: c.send('[%d,"hb"]' % cid, file=AUTO))
        c.grant((ch, cid))

    def data(self, c, stream, n):
        ch, cid = stream
        t = ms()
        if ch == "trades":
            return ['[%d,"te",[%d,%d,0.00991467,102570.123456789012345678]]' % (cid, 1637440001 + n, t),
                    '[%d,"tu",[%d,%d,0.00991467,102570.123456789012345678]]' % (cid, 1637440001 + n, t)]
        if ch == "book":
            return ['[%d,[102570.%d,%d,%s]]' % (cid, n % 10, 1 + n % 3, "-0.25" if n % 2 else "1.5")]
        return ['[%d,[102569,12.3,102570,10.5,-120.5,-0.0018,102570,1234.56789012,103000,101000]]' % cid]


class Hyperliquid(Venue):
    route_by = ["/channel"]
    topics = ["trades", "bbo"]

    async def start(self, c):
        # On every connect, before anything else (the official SDK skips it): plain
        # text, not JSON, so wsrec must not write it; and it must not count it as
        # rejected either.
        await c.send("Websocket connection established.", file=None)
        # Hyperliquid closes a connection after 60 s with no message from the client.
        c.require("msg", S(60), "no message from the client for 60 s")

    async def on_text(self, c, text):
        c.touch("msg")
        m = parse(text)
        if not isinstance(m, dict) or "method" not in m:
            await c.send('{"channel":"error","data":"Error parsing JSON into valid websocket request: %s"}' % json.dumps(text)[1:-1])
            return
        if m["method"] == "ping":
            await c.send('{"channel":"pong"}')
            return
        sub = m.get("subscription") or {}
        sub_text = json.dumps(sub, separators=(",", ":"))
        if m["method"] != "subscribe" or sub.get("type") not in ("trades", "bbo", "l2Book") or sub.get("coin") not in ("BTC", "ETH"):
            await c.send('{"channel":"error","data":"Invalid subscription %s"}' % json.dumps(sub_text)[1:-1])
            return
        await c.send('{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":%s}}' % sub_text)
        c.grant((sub["type"], sub["coin"]))

    def data(self, c, stream, n):
        typ, coin = stream
        t = ms()
        if typ == "trades":
            return [fill('{"channel":"trades","data":[{"coin":"@c@","side":"B","px":"98450.5","sz":"0.00123","time":@t@,"hash":"0x@h@","tid":@tid@,"users":["0x31ca8395cf837de08b24da3f660e77761dfb974b","0x010461c14e146ac35fe42271bdc1134ee31c703a"]}]}', c=coin, t=t, h=hexid(n), tid=BIG + n)]
        return [fill('{"channel":"@ty@","data":{"coin":"@c@","time":@t@,"bbo":[{"px":"98450.5","sz":"2.5","n":3},{"px":"98451.0","sz":"0.01","n":1}]}}', ty=typ, c=coin, t=t)]


class Jetstream(Venue):
    route_by = ["/kind", "/commit/collection"]
    topics = ["commit.app.bsky.feed.post", "commit.app.bsky.feed.like"]
    nsid = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*(\.[a-zA-Z][a-zA-Z0-9-]*)+(\.\*)?$")
    # Every event sent, (time_us, text), for the replay a cursor asks for: Jetstream
    # keeps a window of events and plays back from the cursor (a time_us) on.
    history = []
    connections = 0
    texts = ["gm 🌅 おはようございます、今日もよろしく", "比特币又创新高了吗？📈 #bitcoin", "Ünïcödé \"quoted\" and a\nnewline 👩🏽‍💻", "한국어 트윗 테스트 🇰🇷", "emoji only 🐈‍⬛🦋✨"]

    def http(self, conn, request, path, query):
        if path != "/subscribe":
            return conn.respond(404, "404 page not found")
        wanted = query.get("wantedCollections", [])
        if len(wanted) > 100 or any(not self.nsid.match(w) for w in wanted):
            return conn.respond(400, '{"error":"invalid wantedCollections"}')
        if query.get("compress", [""])[0] == "true":
            return conn.respond(400, "the sim does not do zstd")
        cursor = query.get("cursor", [None])[0]
        if cursor is not None and not re.fullmatch(r"[0-9]+", cursor):
            return conn.respond(400, '{"error":"invalid cursor"}')
        return None

    async def start(self, c):
        Jetstream.connections += 1
        c.state["first"] = Jetstream.connections == 1
        cursor = c.state["query"].get("cursor", [None])[0]
        if cursor is not None:
            # Played back from the cursor; a cursor in the future tails live.
            for t, text in list(self.history):
                if t >= int(cursor):
                    await c.send(text, file=AUTO)
        wanted = c.state["query"].get("wantedCollections", [])
        for coll in ("app.bsky.feed.post", "app.bsky.feed.like"):
            if not wanted or any(w == coll or (w.endswith(".*") and coll.startswith(w[:-1])) for w in wanted):
                c.grant(coll)
        c.grant("identity")

        async def ping():
            # Jetstream pings every 30 s; the sim wants the pong before the next one.
            try:
                waiter = await c.ws.ping(str(ms()).encode())
                await asyncio.wait_for(asyncio.shield(waiter), S(30))
            except asyncio.TimeoutError:
                await c.drop("no pong within 30 s")
            except websockets.ConnectionClosed:
                pass
        c.every(S(30), lambda: c.spawn(ping()) or asyncio.sleep(0))

    def data(self, c, stream, n):
        if ARGS.quirk == "cut-once" and c.state.get("first") and n == 30:
            c.cut()
            return []
        out = self.event(stream, len(self.history))
        self.history.extend(out)
        return [text for _, text in out]

    def event(self, stream, n):
        # time_us: Jetstream's own clock, increasing.
        t_us = max(int(time.time() * 1e6), self.history[-1][0] + 1 if self.history else 0)
        out = [(t_us, text) for text in self.texts_of(stream, n, t_us)]
        return out

    def texts_of(self, stream, n, t_us):
        did = "did:plc:" + hexid("did", n, n=24)
        if stream == "identity":
            if n % 2:
                return ['{"did":"%s","time_us":%d,"kind":"account","account":{"active":true,"did":"%s","seq":%d,"time":"%s"}}' % (did, t_us, did, 1409752997 + n, iso())]
            return ['{"did":"%s","time_us":%d,"kind":"identity","identity":{"did":"%s","handle":"user%d.bsky.social","seq":%d,"time":"%s"}}' % (did, t_us, did, n, 1409752997 + n, iso())]
        rkey = "3l3qo2vu%05d" % n
        if stream == "app.bsky.feed.post":
            text = json.dumps(self.texts[n % len(self.texts)], ensure_ascii=False)
            return ['{"did":"%s","time_us":%d,"kind":"commit","commit":{"rev":"3l3qo2vutsw2b","operation":"create","collection":"app.bsky.feed.post","rkey":"%s","record":{"$type":"app.bsky.feed.post","createdAt":"%s","langs":["ja","zh"],"text":%s},"cid":"bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"}}' % (did, t_us, rkey, iso(), text)]
        return ['{"did":"%s","time_us":%d,"kind":"commit","commit":{"rev":"3l3qo2vutsw2b","operation":"create","collection":"app.bsky.feed.like","rkey":"%s","record":{"$type":"app.bsky.feed.like","createdAt":"%s","subject":{"cid":"bafyreidc6sydkkbchcyg62v77wbhzvb2mvytlmsychqgwf2xojjtirmzj4","uri":"at://did:plc:wa7b35aakoll7hugkrjtf3xf/app.bsky.feed.post/3l3pte3p2e325"}},"cid":"bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"}}' % (did, t_us, rkey, iso())]


class Mempool(Venue):
    single = "mempool"
    wants = {"blocks", "stats", "mempool-blocks", "live-2h-chart", "transactions"}

    async def start(self, c):
        # mempool.space documents no keep-alive; like a proxy's idle timeout the sim
        # drops a client that sent nothing for 60 s.
        c.require("msg", S(60), "no message from the client for 60 s", 1001, "idle")

    def block(self, h):
        return '{"id":"%s","height":%d,"version":536870912,"timestamp":%d,"bits":386089497,"nonce":2431570436,"difficulty":92671576265161.06,"merkle_root":"%s","tx_count":3721,"size":1604275,"weight":3993184,"previousblockhash":"%s","mediantime":%d,"extras":{"totalFees":12345678,"medianFee":3.0123456789012345678,"feeRange":[1,2.1,3.5,8,21,120.7,1002.3],"reward":324845678,"pool":{"id":111,"name":"Foundry USA","slug":"foundryusa"}}}' % (
            "00000000000000000001" + hexid("b", h, n=44), h, int(time.time()), hexid("m", h), "00000000000000000001" + hexid("b", h - 1, n=44), int(time.time()) - 3600)

    def stats(self, n):
        return '"mempoolInfo":{"loaded":true,"size":%d,"bytes":%d,"usage":%d,"total_fee":0.12345678901234567890,"maxmempool":300000000,"mempoolminfee":0.00001,"minrelaytxfee":0.00001},"vBytesPerSecond":%d,"fees":{"fastestFee":12,"halfHourFee":9,"hourFee":7,"economyFee":3,"minimumFee":1}' % (
            41230 + n, 21339284 + n, 123456789, 1500 + n % 300)

    def mblocks(self, n):
        return '"mempool-blocks":[{"blockSize":1582938,"blockVSize":997423.5,"nTx":3012,"totalFees":8421337,"medianFee":4.0123456789012345678,"feeRange":[3.01,3.5,4,6,9.8,15,140.2]},{"blockSize":1713230,"blockVSize":999987,"nTx":%d,"totalFees":2931101,"medianFee":2.1,"feeRange":[2,2,2.1,2.5,3,3,3]}]' % (2800 + n)

    async def on_text(self, c, text):
        c.touch("msg")
        m = parse(text)
        if not isinstance(m, dict):
            return  # mempool.space ignores what it cannot parse
        if m.get("action") == "ping":
            await c.send('{"pong":true}')
        elif m.get("action") == "want" and isinstance(m.get("data"), list):
            want = [w for w in m["data"] if w in self.wants]
            c.state["want"] = want
            if "blocks" in want:
                await c.send('{"blocks":[%s],"conversions":{"time":%d,"USD":67012,"EUR":61823,"JPY":10412345},"backendInfo":{"hostname":"node201.fmt.mempool.space","version":"3.1.0","gitCommit":"a1b2c3d4","lightning":false},"loadingIndicators":{},"da":{"progressPercent":42.13,"difficultyChange":1.2345678901234567,"estimatedRetargetDate":1765000000000,"remainingBlocks":1167,"remainingTime":700200000}}' % (
                    ",".join(self.block(872000 + k) for k in range(3)), int(time.time())))
            if "stats" in want:
                c.grant("stats")
            if "mempool-blocks" in want:
                c.grant("mempool-blocks")
            if "blocks" in want:
                c.grant("blocks")

    def data(self, c, stream, n):
        if stream == "stats":
            return ["{%s}" % self.stats(n)]
        if stream == "mempool-blocks":
            return ["{%s}" % self.mblocks(n)]
        if n % 20:
            return []
        return ['{"block":%s,%s}' % (self.block(872003 + n // 20), self.stats(n))]


class Nostr(Venue):
    route_by = ["/0"]
    topics = ["EVENT"]
    # Every event sent, (created_at, event JSON), for the stored events a REQ's
    # `since` asks for.
    history = []
    connections = 0
    texts = ["GM nostr 🌞 ビットコイン 比特币", "zap me ⚡ \"quotes\" and \\ backslashes", "line one\nline two\ttabbed", "Привет, ностр! 👋", "🤙🏻 pura vida · 𝕏 · عربى"]

    async def start(self, c):
        Nostr.connections += 1
        c.state["first"] = Nostr.connections == 1
        # NIP-01 has no keep-alive; relays drop idle sockets. The sim drops a client
        # that sent no frame at all (protocol pings count) for 60 s.
        c.require_frames(S(60), "no frame from the client for 60 s")

    async def on_text(self, c, text):
        m = parse(text)
        if not isinstance(m, list) or not m or not isinstance(m[0], str):
            await c.send('["NOTICE","ERROR: bad msg: message is not an array"]')
            return
        if m[0] == "CLOSE":
            return
        if m[0] != "REQ":
            await c.send('["NOTICE","ERROR: bad msg: unknown cmd"]')
            return
        if len(m) < 3 or not isinstance(m[1], str) or not 0 < len(m[1]) <= 64:
            await c.send('["NOTICE","ERROR: bad req: subscription id must be a string of 1..64 chars"]')
            return
        sub = m[1]
        filters = m[2:]
        if not all(isinstance(f, dict) for f in filters) or any(
                not all(isinstance(k, int) for k in f.get("kinds", [])) for f in filters):
            await c.send('["CLOSED",%s,"invalid: bad filter"]' % json.dumps(sub))
            return
        # Stored events first (those matching since/limit), then EOSE, then live.
        for f in filters:
            since, limit = f.get("since"), f.get("limit")
            if since is not None and not isinstance(since, int):
                await c.send('["CLOSED",%s,"invalid: since must be an integer"]' % json.dumps(sub))
                return
            stored = [ev for t, ev in self.history if since is None or t >= since]
            if limit is not None:
                stored = stored[len(stored) - limit:] if limit > 0 else []
            for ev in stored:
                await c.send('["EVENT",%s,%s]' % (json.dumps(sub), ev), file=AUTO)
        await c.send('["EOSE",%s]' % json.dumps(sub))
        c.state["sub"] = sub
        c.grant(sub)

    def data(self, c, stream, n):
        if ARGS.quirk == "cut-once" and c.state.get("first") and n == 30:
            c.cut()
            return []
        out = []
        if n == 50:
            out.append('["NOTICE","rate-limited: slow down, please 🙏"]')
        content = json.dumps(self.texts[n % len(self.texts)], ensure_ascii=False)
        k = len(self.history)
        created = int(time.time())
        ev = '{"id":"%s","pubkey":"%s","created_at":%d,"kind":1,"tags":[["t","bitcoin"],["client","日本語クライアント"]],"content":%s,"sig":"%s"}' % (
            hexid("id", k), hexid("pk", k % 7), created, content, hexid("sig", k, n=128))
        self.history.append((created, ev))
        out.append('["EVENT",%s,%s]' % (json.dumps(stream), ev))
        return out


VENUES = {
    "bybit": Bybit, "binance": Binance, "binance-futures": BinanceFutures, "okx": Okx,
    "coinbase": Coinbase, "kraken": Kraken, "deribit": Deribit, "bitmex": Bitmex,
    "htx": Htx, "bitget": Bitget, "gate": Gate, "kucoin": Kucoin, "bitfinex": Bitfinex,
    "hyperliquid": Hyperliquid, "jetstream": Jetstream, "mempool": Mempool, "nostr": Nostr,
}


# ---------------------------------------------------------------- server

async def main():
    if ARGS.venue not in VENUES:
        say("unknown venue; known: " + " ".join(sorted(VENUES)))
        sys.exit(2)
    venue = VENUES[ARGS.venue]()

    def process_request(conn, request):
        u = urllib.parse.urlsplit(request.path)
        query = urllib.parse.parse_qs(u.query)
        return venue.http(conn, request, u.path, query)

    async def handler(ws):
        u = urllib.parse.urlsplit(ws.request.path)
        c = Conn(ws, venue)
        c.state["path"] = u.path
        c.state["query"] = urllib.parse.parse_qs(u.query)
        ev = {"event": "connect", "path": ws.request.path}
        if ws.request.headers.get("X-Gate-Size-Decimal") is not None:
            ev["x_gate_size_decimal"] = ws.request.headers["X-Gate-Size-Decimal"]
        log(ev)
        try:
            await venue.start(c)
            async for msg in ws:
                if c.closed:
                    break
                if isinstance(msg, bytes):
                    log({"event": "recv", "binary": len(msg)})
                    continue
                log({"event": "recv", "text": msg})
                await venue.on_text(c, msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            c.closed = True
            for t in c.tasks:
                t.cancel()
            log({"event": "closed"})

    async with serve(handler, "127.0.0.1", 0, process_request=process_request,
                     create_connection=SimConnection, ping_interval=None,
                     max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        tmp = ARGS.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, ARGS.port_file)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
