#!/usr/bin/env python3
"""A reference client for tests/venues/sim.py: does what wsrec does with a preset
(as SCHEMA-DRAFT.md describes it) in Python, so that the simulator and the presets
can be checked without the recorder.

    python3 tests/venues/refclient.py VENUE [--seconds N] [--scale S]

Starts the simulator, connects with examples/venues/VENUE.json (ws_url pointed at
it, durations scaled), routes what arrives into per-file lists, then checks the
simulator's record the way tests/presets.rs does. Exit 0 when all holds.
"""
import argparse
import asyncio
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zlib

import websockets
from websockets.asyncio.client import connect

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

ARGS = None


def pointer(doc, ptr):
    for tok in ptr.split("/")[1:]:
        tok = tok.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict) and tok in doc:
            doc = doc[tok]
        elif isinstance(doc, list) and tok.isdigit() and int(tok) < len(doc):
            doc = doc[int(tok)]
        else:
            raise KeyError(ptr)
    return doc


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


class Lit(str):
    pass


def route(cfg, text):
    try:
        doc = json.loads(text, parse_int=Lit, parse_float=Lit)
    except ValueError:
        return "_control"
    # control_messages: about the subscription, whatever the route key says.
    if any(matches(rule, json.loads(text)) for rule in cfg.get("control_messages", [])):
        return "_control"
    if "topics" not in cfg:
        return cfg.get("topic", "publicTrade.BTCUSDT")
    parts = []
    for p in cfg.get("route_by", ["/topic"]):
        try:
            v = pointer(doc, p)
        except KeyError:
            return "_control"
        if isinstance(v, (dict, list)):
            return "_control"
        parts.append({True: "true", False: "false", None: "null"}.get(v, v) if not isinstance(v, str) else v)
    key = cfg.get("route_separator", ".").join(str(x) for x in parts)
    return key if key in cfg["topics"] else "_control"


COUNTER = [0]


def expand(cfg, template, topic=None, matched=None):
    def sub(m):
        name = m.group(1)
        if name == "topic":
            return json.dumps(topic)[1:-1]
        if name.startswith("topic."):
            n = len(cfg.get("route_by", ["/topic"]))
            parts = topic.split(cfg.get("route_separator", "."), n - 1)
            return json.dumps(parts[int(name[6:])])[1:-1]
        if name == "time_ms":
            return str(int(time.time() * 1000))
        if name == "time_s":
            return str(int(time.time()))
        if name == "counter":
            COUNTER[0] += 1
            return str(COUNTER[0])
        if name.startswith("/") and matched is not None:
            return compact(pointer(matched, name))
        return m.group(0)
    return re.sub(r"\{(topic(?:\.\d+)?|time_ms|time_s|counter|/[^{}]*)\}", sub, template)


def subscribes(cfg):
    t = cfg.get("subscribe_message", '{"op":"subscribe","args":["{topic}"]}')
    if isinstance(t, list):
        return [m for x in t for m in subscribes(dict(cfg, subscribe_message=x))]
    if not t:
        return []
    topics = cfg.get("topics") or [cfg.get("topic")]
    if "{topics}" in t:
        k = cfg.get("max_topics_per_subscribe", 0) or len(topics)
        return [t.replace("{topics}", ",".join(json.dumps(x) for x in topics[i:i + k])) for i in range(0, len(topics), k)]
    if re.search(r"\{topic(\.\d+)?\}", t):
        return [(t, x) for x in topics]
    return [t]


def scalar(doc, p):
    """Like wsrec's one-pass check: a pointer finds a scalar only."""
    v = pointer(doc, p)
    if isinstance(v, (dict, list)):
        raise KeyError(p)
    return v


def matches(rule, doc):
    for p in rule.get("has", []):
        try:
            scalar(doc, p)
        except KeyError:
            return False
    for p, want in rule.get("equals", {}).items():
        try:
            if compact(scalar(doc, p)) != compact(want):
                return False
        except KeyError:
            return False
    return True


async def run(cfg, url, env):
    files = {}
    S = ARGS.scale
    async with connect(url, additional_headers=cfg.get("handshake_headers", {}), compression=None,
                       ping_interval=None, max_size=None) as ws:
        welcome = cfg.get("welcome")
        if welcome:
            # Read (and keep) until the welcome, then subscribe; subscribe anyway at
            # its timeout.
            end = time.monotonic() + welcome.get("timeout", 10)
            while time.monotonic() < end:
                try:
                    msg = await asyncio.wait_for(ws.recv(), end - time.monotonic())
                except asyncio.TimeoutError:
                    break
                if welcome.get("text") == msg:
                    break
                files.setdefault(route(cfg, msg), []).append(msg)
                if "text" not in welcome and matches(welcome, json.loads(msg)):
                    break
        for i, m in enumerate(subscribes(cfg)):
            if i and cfg.get("subscribe_interval"):
                await asyncio.sleep(cfg["subscribe_interval"])
            await ws.send(expand(cfg, m[0], m[1]) if isinstance(m, tuple) else expand(cfg, m))

        async def pinger():
            while True:
                await asyncio.sleep(cfg.get("ping_interval", 20) * S)
                pm = cfg.get("ping_message", '{"op":"ping"}')
                if pm == "":
                    await ws.ping()
                else:
                    await ws.send(expand(cfg, pm))
        task = asyncio.ensure_future(pinger())
        end = time.monotonic() + ARGS.seconds
        try:
            while time.monotonic() < end:
                try:
                    msg = await asyncio.wait_for(ws.recv(), end - time.monotonic())
                except asyncio.TimeoutError:
                    break
                if isinstance(msg, bytes):
                    if msg[:2] == b"\x1f\x8b":
                        msg = gzip.decompress(msg).decode()
                    elif msg.lstrip()[:1] in (b"{", b"[", b'"'):
                        msg = msg.decode()
                    else:
                        msg = zlib.decompress(msg).decode()
                if cfg.get("pong_text") and msg == cfg["pong_text"]:
                    continue
                if (cfg.get("welcome") or {}).get("text") == msg:
                    continue
                try:
                    doc = json.loads(msg)
                except ValueError:
                    print("REJECTED (not JSON):", msg[:80])
                    continue
                for rule in cfg.get("heartbeat_replies", []):
                    if matches(rule, doc):
                        await ws.send(expand(cfg, rule["reply"], matched=doc))
                        break
                files.setdefault(route(cfg, msg), []).append(msg)
        finally:
            task.cancel()
    return files


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("venue")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--scale", type=float, default=0.05)
    ap.add_argument("--config", help="use this config instead of the preset")
    ARGS = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="refclient-")
    port_file, record = os.path.join(tmp, "port"), os.path.join(tmp, "record.jsonl")
    sim = subprocess.Popen([sys.executable, os.path.join(HERE, "sim.py"), ARGS.venue, "--port-file", port_file,
                            "--record", record, "--scale", str(ARGS.scale)])
    try:
        for _ in range(200):
            if os.path.exists(port_file):
                break
            time.sleep(0.02)
        port = int(open(port_file).read())
        cfg = json.load(open(ARGS.config or os.path.join(ROOT, "examples/venues/%s.json" % ARGS.venue)))
        u = urllib.parse.urlsplit(cfg["ws_url"])
        url = "ws://127.0.0.1:%d%s%s" % (port, u.path or "/", "?" + u.query if u.query else "")
        env = dict(os.environ, KUCOIN_REST="http://127.0.0.1:%d" % port)
        if cfg.get("ws_url_command"):
            out = subprocess.run(["sh", "-c", cfg["ws_url_command"]], env=env, capture_output=True, text=True, timeout=10)
            url = out.stdout.splitlines()[0]
            print("ws_url_command ->", url)
        files = asyncio.run(run(cfg, url, env))
    finally:
        sim.terminate()
        sim.wait()
    events = [json.loads(line) for line in open(record, encoding="utf-8")]
    ok = True
    connects = [e for e in events if e["event"] == "connect"]
    drops = [e for e in events if e["event"] == "drop"]
    if len(connects) != 1 or drops:
        print("FAIL: connects %d, drops %s" % (len(connects), drops))
        ok = False
    sent = {}
    for e in events:
        if e["event"] == "sent":
            sent.setdefault(e["file"], []).append(e["text"])
    for f in set(sent) | set(files):
        if f is None:
            continue
        got, want = files.get(f, []), sent.get(f, [])
        if got != want[:len(got)] or len(got) < len(want) - 3:
            print("FAIL: file %r: got %d lines, sim sent %d; first difference:" % (f, len(got), len(want)))
            for a, b in zip(got, want):
                if a != b:
                    print("  got ", a[:200])
                    print("  sent", b[:200])
                    break
            ok = False
        else:
            print("ok  %-32s %4d lines" % (f, len(got)))
    for f in sent:
        if f not in (None, "_control") and not sent[f]:
            ok = False
    missing = [t for t in cfg.get("topics", []) if not sent.get(t)] if ARGS.config is None and ARGS.venue != "bitfinex" else []
    if missing:
        print("FAIL: no data for topics", missing)
        ok = False
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
