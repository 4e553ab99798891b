// A Node.js client of sustain built on the `osc` package from npm (osc.js, the library Open
// Stage Control is built on), with separate ports for sending and receiving, as such
// clients are usually set up: one osc.UDPPort sends to the engine, another listens.
//
//   node osc_client.js ENGINE_PORT RECEIVE_PORT [SEND_PORT [SECONDS]]
//
// SEND_PORT 0 (the default) sends from any free port. The client names its receive port
// with /engine/notify 1 <port>, then sets a few parameters through its own addresses (the
// engine answers each parameter on the address last used for it), then pings and asks the
// status. It prints one JSON line when both ports are open, then one per message received:
// {"on": "receive" or "send", "address", "types", "args"}. It quits after SECONDS (default
// 20) or when its stdin closes.
"use strict";

const osc = require("osc");

const [enginePort, receivePort, sendPort = 0, seconds = 20] = process.argv.slice(2).map(Number);
if (!(enginePort > 0 && receivePort > 0)) {
    console.error("usage: node osc_client.js ENGINE_PORT RECEIVE_PORT [SEND_PORT [SECONDS]]");
    process.exit(64);
}

// metadata: the arguments carry their OSC types both ways (an int stays an int).
const sender = new osc.UDPPort({
    localAddress: "127.0.0.1", localPort: sendPort,
    remoteAddress: "127.0.0.1", remotePort: enginePort, metadata: true,
});
const receiver = new osc.UDPPort({ localAddress: "127.0.0.1", localPort: receivePort, metadata: true });

let opened = 0;  // ports ready

function print(object) {
    process.stdout.write(JSON.stringify(object) + "\n");
}

// The sending port listens too, so that anything the engine wrongly sends there shows.
for (const [name, port] of [["receive", receiver], ["send", sender]]) {
    port.on("message", (message) => print({
        on: name, address: message.address,
        types: message.args.map((a) => a.type).join(""), args: message.args.map((a) => a.value),
    }));
    port.on("error", (error) => {
        print({ on: name, error: String(error.message || error) });
        if (opened < 2) process.exit(1);  // a port that cannot open (taken): nothing to wait for
    });
}

function float(value) { return { type: "f", value }; }
function int(value) { return { type: "i", value }; }

function run() {
    print({ ready: { send: sender.socket.address().port, receive: receiver.socket.address().port } });
    // One socket to one socket on loopback keeps the order: the engine knows where to reply
    // before it has anything to reply.
    sender.send({ address: "/engine/notify", args: [int(1), int(receivePort)] });
    sender.send({ address: "/engine/voice/0/freq", args: [float(330)] });       // in Hz
    sender.send({ address: "/engine/voice/1/gain/norm", args: [float(0.5)] });  // a fader, 0..1
    sender.send({ address: "/engine/voice/2/freq/norm", args: [float(0.5)] });  // exp, 0..1
    sender.send({ address: "/engine/ping", args: [] });
    sender.send({ address: "/engine/status", args: [] });
}

for (const port of [sender, receiver]) {
    port.on("ready", () => { if (++opened === 2) run(); });
    port.open();
}

function quit() {
    sender.close();
    receiver.close();
    process.exit(0);
}
setTimeout(quit, seconds * 1000);
process.stdin.on("end", quit);
process.stdin.resume();
