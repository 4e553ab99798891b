"""OSC over TCP (--tcp-port), both framings, against the real engine:

- OSC 1.0 length-prefix and OSC 1.1 SLIP (double END) clients each set a parameter, and the
  engine applies it (status shows it) and plays it (the driver's output has the tone);
- replies go back over the connection, in the client's framing (/engine/ping → /engine/pong);
- a client sending garbage is closed and counted; the engine keeps serving the others;
- without --tcp-port nothing listens on TCP.
"""
import socket
import struct
import time

from harness import Engine, JackServer, Recording, check, free_udp_port, main, wait_until
from osc_wire import message

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD


def slip(packet):
    out = bytearray([END])
    for b in packet:
        if b == END:
            out += bytes([ESC, ESC_END])
        elif b == ESC:
            out += bytes([ESC, ESC_ESC])
        else:
            out.append(b)
    out.append(END)
    return bytes(out)


def unslip(data):
    packets, current, escaped = [], bytearray(), False
    for b in data:
        if escaped:
            current.append(END if b == ESC_END else ESC)
            escaped = False
        elif b == ESC:
            escaped = True
        elif b == END:
            if current:
                packets.append(bytes(current))
            current = bytearray()
        else:
            current.append(b)
    return packets


def length_prefixed(packet):
    return struct.pack(">i", len(packet)) + packet


def receive(sock, size_wanted, timeout=2.0):
    sock.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    while len(data) < size_wanted and time.time() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test(paths):
    tcp_port = free_udp_port()
    with JackServer() as jack, Engine(paths, jack, extra_args=["--tcp-port", str(tcp_port)]) as engine:
        check(f"tcp 127.0.0.1:{tcp_port}" in engine.log(), "the ready line names the TCP port")
        with Recording(paths, jack, seconds=2.0) as recording:
            with socket.create_connection(("127.0.0.1", tcp_port)) as framed, \
                    socket.create_connection(("127.0.0.1", tcp_port)) as slipped:
                framed.sendall(length_prefixed(message("/engine/gain", "f", 0.5)))
                slipped.sendall(slip(message("/engine/freq", "f", 660.0)))
                # A value with 0xC0 and 0xDB bytes in it must survive SLIP escaping.
                slipped.sendall(slip(message("/engine/voice/1/freq", "f", struct.unpack(">f", b"\x43\xdb\xc0\x00")[0])))
                wait_until(lambda: engine.status()[1]["params"]["master_gain"] == 0.5, 3, "the length-prefixed change")
                wait_until(lambda: engine.status()[1]["params"]["voices"][0]["freq"] == 660.0, 3, "the SLIP change")
                expected = struct.unpack(">f", b"\x43\xdb\xc0\x00")[0]
                check(abs(engine.status()[1]["params"]["voices"][1]["freq"] - expected) < 1e-3,
                      "a value containing SLIP's special bytes arrived intact")

                framed.sendall(length_prefixed(message("/engine/ping")))
                reply = receive(framed, 4 + len(message("/engine/pong")))
                check(reply == length_prefixed(message("/engine/pong")), f"pong over length-prefix framing: {reply!r}")
                slipped.sendall(slip(message("/engine/ping")))
                reply = receive(slipped, len(slip(message("/engine/pong"))))
                check(unslip(reply) == [message("/engine/pong")], f"pong over SLIP framing: {reply!r}")

                with socket.create_connection(("127.0.0.1", tcp_port)) as garbage:
                    garbage.sendall(b"\x7fGARBAGE" * 8)
                    garbage.settimeout(2.0)
                    try:
                        closed = garbage.recv(100) == b""
                    except ConnectionResetError:
                        closed = True
                    check(closed, "a client sending garbage is disconnected")
                framed.sendall(length_prefixed(message("/engine/gain", "f", 0.4)))
                wait_until(lambda: abs(engine.status()[1]["params"]["master_gain"] - 0.4) < 1e-6, 3,
                           "the other clients to be served still")
                time.sleep(0.5)
            recording.finish()
            report = recording.analyze("--expect", "0.8:1.2:660:0.4")
        check(all(w["ok"] for w in report["windows"]), f"660 Hz at 0.4 is heard: {report['windows']}")
        _, s = engine.status()
        tcp = s["osc"]["tcp"]
        check(tcp["accepted"] == 3, f"three connections accepted: {tcp}")
        check(tcp["closed_on_error"] >= 1 and tcp["framing_errors"] >= 1, f"the garbage client is counted: {tcp}")
        wait_until(lambda: engine.status()[1]["osc"]["tcp"]["connections"] == 0, 3, "closed connections to be gone")

    with JackServer() as jack, Engine(paths, jack) as engine:
        with socket.socket() as probe:
            refused = probe.connect_ex(("127.0.0.1", engine.port)) != 0
        check(refused, "without --tcp-port nothing listens on TCP")


if __name__ == "__main__":
    main(test)
