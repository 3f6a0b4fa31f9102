"""A WebSocket server built with Python's `websockets` package, for tests/peers.rs.

Prints its port, then for each client: waits for the subscribe message and sends
N messages (argv[1]) shaped like the Rust tests' `msg(seq)`, then holds the
connection until the client leaves.
"""
import asyncio
import sys

import websockets

N = int(sys.argv[1])


def msg(seq):
    return '{"topic":"t","seq":%d,"data":[{"p":"67011.5","v":"0.001","S":"Buy"}]}' % seq


async def handler(ws):
    await ws.recv()  # the subscribe message
    for i in range(N):
        await ws.send(msg(i))
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass


async def main():
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


asyncio.run(main())
