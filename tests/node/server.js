// A WebSocket server built with Node's `ws` package (which offers permessage-deflate),
// for tests/peers.rs. Prints its port; for each client waits for the subscribe message,
// sends N messages (argv[2]) shaped like the Rust tests' `msg(seq)`, then holds on.
const { WebSocketServer } = require('ws');

const n = Number(process.argv[2]);
const msg = (seq) => `{"topic":"t","seq":${seq},"data":[{"p":"67011.5","v":"0.001","S":"Buy"}]}`;

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true });
wss.on('listening', () => console.log(wss.address().port));
wss.on('connection', (ws) => {
  ws.once('message', () => {
    for (let i = 0; i < n; i++) ws.send(msg(i));
  });
});
