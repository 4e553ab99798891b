"""A client that sends from one socket and listens on another hears every reply, with the
real engine and a real such client: Pure Data with the usual pair, [netsend -u -b] to the
engine and [netreceive -u -b PORT] for what comes back ([oscformat] / [oscparse]). It names
its port with /engine/reply_port, then asks /engine/ping, /engine/status, /engine/sync and
/engine/notify 1; a change another client makes must reach it too. Judged by what Pd prints
of what it received (its [print] object), and the status JSON.
"""
import os
import shutil
import subprocess
import tempfile
import time

from harness import Engine, JackServer, check, free_udp_port, main

# (ms after load, OSC address, arguments): what the patch sends, in order.
SCRIPT = [
    (100, "/engine/reply_port", "{reply}"),
    (200, "/engine/ping", ""),
    (300, "/engine/status", ""),
    (400, "/engine/sync", "7"),
    (500, "/engine/notify", "1"),
]
QUIT_AFTER_MS = 2500


def patch(engine_port, reply_port):
    """A Pd patch: each SCRIPT line is [delay] -> [msg args( -> [oscformat ...] -> [list prepend send]
    -> [list trim] -> [netsend -u -b]; [netreceive -u -b reply] -> [oscparse] -> [list trim] -> [print RECV]."""
    objects, connections = [], []

    def add(text):
        objects.append(text)
        return len(objects) - 1

    load = add("obj 10 10 loadbang")
    connect = add(f"msg 10 40 connect 127.0.0.1 {engine_port}")
    send = add("obj 10 400 netsend -u -b")
    prepend = add("obj 10 340 list prepend send")
    trim = add("obj 10 370 list trim")
    connections += [(load, connect), (connect, send), (prepend, trim), (trim, send)]
    for i, (ms, address, args) in enumerate(SCRIPT):
        delay = add(f"obj {100 + 80 * i} 100 delay {ms}")
        message = add(f"msg {100 + 80 * i} 130 {args.format(reply=reply_port) or 'bang'}")
        parts = " ".join(address.strip("/").split("/"))
        formatter = add(f"obj {100 + 80 * i} 160 oscformat {parts}")
        connections += [(load, delay), (delay, message), (message, formatter), (formatter, prepend)]
    receive = add(f"obj 400 10 netreceive -u -b {reply_port}")
    parse = add("obj 400 40 oscparse")
    rtrim = add("obj 400 70 list trim")
    show = add("obj 400 100 print RECV")
    connections += [(receive, parse), (parse, rtrim), (rtrim, show)]
    quit_delay = add(f"obj 500 150 delay {QUIT_AFTER_MS}")
    quit_message = add("msg 500 180 \\; pd quit")
    connections += [(load, quit_delay), (quit_delay, quit_message)]
    lines = ["#N canvas 0 0 800 500 12;"] + [f"#X {o};" for o in objects]
    lines += [f"#X connect {a} 0 {b} 0;" for a, b in connections]
    return "\n".join(lines) + "\n"


def test(paths):
    if shutil.which("pd") is None:
        check(False, "Pure Data (puredata-core) is installed: tools/test installs it")
    reply_port = free_udp_port()
    directory = tempfile.mkdtemp(prefix="sustain-pd-")
    patch_path = os.path.join(directory, "reply_port.pd")
    with JackServer() as jack, Engine(paths, jack) as engine:
        with open(patch_path, "w") as f:
            f.write(patch(engine.port, reply_port))
        pd = subprocess.Popen(["pd", "-nogui", "-nosound", "-stderr", "-open", patch_path],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.2)  # subscribed by now; another client makes a change
        engine.send("/engine/gain", ("f", 0.3))
        out, _ = pd.communicate(timeout=10)
        received = [line[len("RECV: "):] for line in out.splitlines() if line.startswith("RECV: ")]
        print("Pd received:\n  " + "\n  ".join(received), flush=True)
        check(f"engine reply_port {reply_port}" in received, "the reply port is confirmed, at the reply port")
        check("engine pong" in received, "/engine/pong reaches [netreceive]")
        check(any(r.startswith("engine status.reply ") for r in received), "/engine/status.reply reaches it")
        check("engine synced 7" in received, "/engine/synced 7 reaches it")
        check("engine notify 1" in received, "the subscription is confirmed there")
        check("engine gain 0.3" in received, "another client's change reaches it as feedback")
        _, s = engine.status()
        check(s["osc"]["clients"]["subscribers"] == 1, f"one subscriber: {s['osc']['clients']}")


if __name__ == "__main__":
    main(test)
