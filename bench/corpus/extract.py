#!/usr/bin/env python3
"""Rebuilds bench/corpus/*.jsonl from cryptofeed's sample_data captures.

    git clone https://github.com/bmoscon/cryptofeed && git -C cryptofeed checkout ce58c2a0
    python3 bench/corpus/extract.py path/to/cryptofeed bench/corpus

A capture line is `URL <- TIME: sent`, `URL <-> TIME` (a connect) or `TIME: received`;
only received messages are kept, as they arrived (HTX's gzip frames, stored as Python
bytes literals, are inflated: wsrec records the text). Per venue: the messages in order from the start for a third of the byte budget (acks, snapshots), the last messages of
the capture for the rest (the steady stream), then the capture's largest message if it
was not among them (the book snapshots). One message per line; the venues sent them compact.
"""
import ast
import gzip
import subprocess
import sys

COMMIT = "ce58c2a0"
# venue (wsrec preset) -> capture files, byte budget for the messages in order
VENUES = {
    "binance": (["BINANCE.ws.1.0"], 60_000),
    "binance-futures": (["BINANCE_FUTURES.ws.1.0"], 60_000),
    "bitfinex": (["BITFINEX.ws.11.0"], 60_000),
    "bitget": (["BITGET.ws.1.0"], 60_000),
    "bitmex": (["BITMEX.ws.1.0"], 60_000),
    "bybit": (["BYBIT.ws.25.0"], 60_000),
    "coinbase": (["COINBASE.ws.28.0"], 60_000),
    "deribit": (["DERIBIT.ws.1.0"], 60_000),
    "gate": (["GATEIO.ws.1.0"], 60_000),
    "htx": (["HUOBI.ws.44.0"], 60_000),
    "kraken": (["KRAKEN.ws.49.0", "KRAKEN.ws.50.0"], 60_000),
    "kucoin": (["KUCOIN.ws.1.0"], 60_000),
    "okx": (["OKX.ws.1.0"], 60_000),
}


# Messages from elsewhere (PROVENANCE.md), appended to a venue's file as they are.
EXTRA = {
    # thrasher-corp/gocryptotrader exchanges/huobi/testdata/wsAllTrades.json and
    # wsOrderbook.json: the 27-digit trade ids HTX sends.
    "htx": [
        b'{"ch":"market.btcusdt.trade.detail","ts":1630994963175,"tick":{"id":137005445109,"ts":1630994963173,"data":[{"id":137005445109359290000000000,"ts":1630994963173,"tradeId":102523573486,"amount":0.006754,"price":52648.62,"direction":"buy"}]}}',
        b'{"ch":"market.btcusdt.trade.detail","ts":1630994963174,"tick":{"id":137005445110,"ts":1630994963184,"data":[{"id":137005445109359300000000000,"ts":1630994963184,"tradeId":102523573487,"amount":0.006755,"price":52648.73,"direction":"sell"}]}}',
        b'{"ch":"market.btcusdt.depth.step0","ts":1630983549503,"tick":{"bids":[[52690.69,0.36281],[52690.68,0.2]],"asks":[[52690.7,0.372591],[52691.26,0.13]],"version":136998124622,"ts":1630983549500}}',
    ],
    # nautechsystems/nautilus_trader crates/adapters/kraken/test_data/ws_*.json (v2, the
    # preset's API; pretty-printed there, compacted here), then the v2 banner with its
    # 20-digit connection id (docs.kraken.com, spot-websocket-v2 status).
    "kraken": [
        # ws_book_snapshot.json
        b'{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,"qty":0.10000000},{"price":45283.4,"qty":1.54582015},{"price":45282.1,"qty":0.10000000},{"price":45281.0,"qty":0.10000000},{"price":45280.3,"qty":1.54592586},{"price":45279.0,"qty":0.07990000},{"price":45277.6,"qty":0.03310103},{"price":45277.5,"qty":0.30000000},{"price":45277.3,"qty":1.54602737},{"price":45276.6,"qty":0.15445238}],"asks":[{"price":45285.2,"qty":0.00100000},{"price":45286.4,"qty":1.54571953},{"price":45286.6,"qty":1.54571109},{"price":45289.6,"qty":1.54560911},{"price":45290.2,"qty":0.15890660},{"price":45291.8,"qty":1.54553491},{"price":45294.7,"qty":0.04454749},{"price":45296.1,"qty":0.35380000},{"price":45297.5,"qty":0.09945542},{"price":45299.5,"qty":0.18772827}],"checksum":3310070434,"timestamp":"2023-10-06T17:35:55.440295Z"}]}',
        # ws_book_update.json
        b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":105944.20,"qty":0.250}],"asks":[],"checksum":2114181697,"timestamp":"2023-10-06T17:35:55.440295Z"}]}',
        # ws_ticker_snapshot.json
        b'{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":105944.20,"bid_qty":2.5,"ask":105944.30,"ask_qty":3.2,"last":105899.40,"volume":163.28908096,"vwap":105904.39279,"low":104711.00,"high":106613.10,"change":250.00,"change_pct":0.24,"timestamp":"2022-12-25T09:30:59.123456Z"}]}',
        # ws_trade_update.json
        b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":105944.20,"qty":0.00027625,"ord_type":"limit","trade_id":10218208,"timestamp":"2023-10-06T17:35:55.440295Z"},{"symbol":"BTC/USD","side":"sell","price":105910.50,"qty":0.00012460,"ord_type":"market","trade_id":10218209,"timestamp":"2023-10-06T17:35:56.123456Z"}]}',
        b'{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online","api_version":"v2","connection_id":18125794168470749634,"upcoming_maintenance":[],"emergency":[]}]}',
        b'{"channel":"heartbeat"}',
    ],
    # The cryptofeed kucoin.py docstring's trade, and the same with `/` escaped as
    # PHP's json_encode writes it (derived: a test of escaped route values).
    "kucoin": [
        b'{"type":"message","topic":"/market/match:BTC-USDT","subject":"trade.l3match","data":{"sequence":"1545896669145","type":"match","symbol":"BTC-USDT","side":"buy","price":"0.08200000000000000000","size":"0.01022222000000000000","tradeId":"5c24c5da03aa673885cd67aa","time":"1545913818099033203"}}',
        b'{"type":"message","topic":"\\/market\\/match:BTC-USDT","subject":"trade.l3match","data":{"sequence":"1545896669145","type":"match","symbol":"BTC-USDT","side":"buy","price":"0.08200000000000000000","size":"0.01022222000000000000","tradeId":"5c24c5da03aa673885cd67aa","time":"1545913818099033203"}}',
    ],
}


def received(repo, name):
    text = subprocess.run(
        ["git", "-C", repo, "show", f"{COMMIT}:sample_data/{name}"],
        check=True, capture_output=True,
    ).stdout
    for line in text.split(b"\n"):
        # A received line starts with its time; sent ones and connects with the URL.
        if not line or not line[:1].isdigit():
            continue
        msg = line[line.index(b": ") + 2:]
        if msg.startswith(b"b'") or msg.startswith(b'b"'):
            raw = ast.literal_eval(msg.decode("ascii"))
            msg = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        yield msg


def take(msgs, budget):
    keep, size = [], 0
    for m in msgs:
        if size + len(m) > budget:
            break
        keep.append(m)
        size += len(m)
    return keep


def main(repo, out):
    for venue, (files, budget) in VENUES.items():
        msgs = [m for f in files for m in received(repo, f)]
        # The start (acks, snapshots), then the steady stream before the capture's end.
        head = take(msgs, budget // 3)
        tail = take(reversed(msgs[len(head):]), budget - sum(map(len, head)))[::-1]
        keep = head + tail
        big = max(msgs, key=len)
        if big not in keep:
            keep.append(big)
        keep += EXTRA.get(venue, [])
        with open(f"{out}/{venue}.jsonl", "wb") as f:
            for m in keep:
                assert b"\n" not in m and b"\r" not in m, venue
                f.write(m + b"\n")
        print(venue, len(keep), sum(map(len, keep)), min(map(len, keep)), max(map(len, keep)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
