"""Hostile OSC input: malformed, truncated and oversized packets, nested bundles, bundles of
thousands of messages, wrong type tags, strings where numbers belong, NaN/inf, denormals,
huge and negative voice indexes, unknown addresses, a flood from many senders. The engine
keeps playing, every bad input is counted by reason, and the good messages interleaved with
the bad ones are all applied (the last value of each parameter is the one that holds).
"""
import json
import socket
import struct
import subprocess
import time

from harness import Engine, JackServer, Recording, check, eventually, main, wait_until
from osc_wire import bundle, message


def status(paths, engine):
    out = subprocess.run([paths.status, "--instance", engine.instance, "--json", "--once"], capture_output=True, text=True)
    return json.loads(out.stdout)


def test(paths):
    with JackServer() as jack, Engine(paths, jack, ["--gain", "0.2"]) as engine:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = ("127.0.0.1", engine.port)
        bad = [
            (b"\x00\x01\x02", "malformed"),                                   # not OSC
            (message("/engine/gain", "f", 0.5)[:-2], "malformed"),           # truncated argument
            (b"/engine/gain\0\0\0\0,f\0\0", "malformed"),                     # type promises a float that is missing
            (message("/engine/gain", "s", "loud"), "bad_type"),
            (message("/engine/freq", "f", float("nan")), "not_finite"),
            (message("/engine/freq", "d", float("inf")), "not_finite"),
            (message("/engine/voice/2/gain", "f", -1.0), "out_of_range"),
            (message("/engine/voice/99999/freq", "f", 300.0), "out_of_range"),
            (message("/engine/voice/-3/freq", "f", 300.0), "unknown_address"),
            (message("/engine/nothing", "f", 1.0), "unknown_address"),
            (message("/engine/gain", "ff", 0.1, 0.2), "arg_count"),
            (message("/engine/gain", ""), "arg_count"),
            (b"#bundle\0" + struct.pack(">Q", 1) + struct.pack(">i", 999) + b"abcd", "malformed"),  # bad element size
        ]
        deep = message("/engine/gain", "f", 0.9)
        for _ in range(10):
            deep = bundle(deep)
        bad.append((deep, "malformed"))                                      # nested too deeply
        # (An oversized datagram cannot be made: UDP carries at most 65,507 bytes and the
        # engine reads 65,536, so it never sees a truncated one; the path is there for TCP.)
        expected = {}
        good_sent = 0
        for i, (packet, reason) in enumerate(bad):
            try:
                sock.sendto(packet, target)
            except OSError:
                continue  # the 70 kB one may not even leave this host: nothing to count
            if reason:
                expected[reason] = expected.get(reason, 0) + 1
            # a good message between every two bad ones
            sock.sendto(message("/engine/voice/1/freq", "f", 300.0 + i), target)
            good_sent += 1
        # a denormal gain is silence, accepted
        sock.sendto(message("/engine/voice/3/gain", "d", 1e-310), target)
        # a bundle of 2000 messages (56 kB, near the UDP maximum): all taken, the last holds
        many = bundle(*[message("/engine/freq", "f", 500.0 + (k % 7)) for k in range(1999)],
                      message("/engine/freq", "f", 777.0))
        sock.sendto(many, target)
        # a flood from many senders
        senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
        for k in range(200):
            for n, s in enumerate(senders):
                s.sendto(message("/engine/voice/0/gain", "f", ((k + n) % 10) / 10.0), target)
        senders[0].sendto(message("/engine/voice/0/gain", "f", 0.55), target)
        sock.sendto(message("/engine/voice/1/freq", "f", 330.0), target)
        time.sleep(0.5)

        s = status(paths, engine)
        reasons = s["osc"]["rejected_by_reason"]
        for reason, count in expected.items():
            check(reasons[reason] >= count, f"{reason}: {count} sent, {reasons[reason]} counted")
        voices = s["params"]["voices"]
        check(abs(voices[1]["freq"] - 330.0) < 1e-6, f"good messages interleaved with bad ones all applied: voice 1 at "
              f"{voices[1]['freq']} Hz, the last value sent")
        check(abs(voices[0]["freq"] - 777.0) < 1e-6, f"a bundle of 2000 messages: the last value holds ({voices[0]['freq']} Hz)")
        check(voices[3]["gain"] == 0.0, "a denormal gain is taken as silence")
        check(abs(voices[0]["gain"] - 0.55) < 1e-6, "after a flood from 16 senders the last value holds")
        # Counted as they are handled and as the socket falls quiet (kernel drops): a slow
        # build may still be at it.
        sent = good_sent + sum(expected.values()) + 2000 + 3200

        def counted():
            osc = status(paths, engine)["osc"]
            return osc["received"] + osc["dropped"] >= sent
        eventually(counted, 2)  # judged just below, with the figures
        s = status(paths, engine)
        check(s["osc"]["received"] + s["osc"]["dropped"] >= sent,
              f"every message reached validation or was counted ({s['osc']['received']} received, "
              f"{s['osc']['dropped']} dropped by the kernel)")
        # Healthy: nothing lost, and the spare ready again (a slow build may still be warming
        # one up that started while the flood ran).
        last = {}

        def healthy():
            last.update(engine.status()[1])
            return last["health"] == "healthy"
        eventually(healthy, 5)  # judged just below, with the reason
        check(last["health"] == "healthy", f"the engine is healthy after all of it ({last['health_reason']})")
        engine.send("/engine/freq", ("f", 440))
        engine.send("/engine/voice/0/gain", ("f", 1.0))
        time.sleep(0.2)
        with Recording(paths, jack, seconds=1.0) as recording:
            recording.finish()
            report = recording.analyze("--expect", "0.02:-0.02:440:0.2")
        check(report["windows"][0]["ok"], f"and it still plays: 440 Hz at 0.2 (measured {report['windows'][0]['freq_hz']})")
        check(engine.stop() == 0, "sustaind stops cleanly")

    # --allow: with OSC on every interface, only the listed senders control the engine.
    with JackServer() as jack, Engine(paths, jack, ["--bind", "0.0.0.0", "--allow", "127.0.0.2/32"]) as engine:
        check("--allow is not given" not in engine.log(), "no warning when --allow limits the senders")
        outsider = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        outsider.bind(("127.0.0.1", 0))
        insider = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        insider.bind(("127.0.0.2", 0))
        for _ in range(3):
            outsider.sendto(message("/engine/gain", "f", 0.9), ("127.0.0.1", engine.port))
        insider.sendto(message("/engine/gain", "f", 0.3), ("127.0.0.1", engine.port))
        time.sleep(0.3)
        s = status(paths, engine)
        check(s["osc"]["rejected_by_reason"]["sender_not_allowed"] == 3, "3 datagrams from a sender outside --allow: counted")
        check(abs(s["params"]["master_gain"] - 0.3) < 1e-6, "the allowed sender's change applied, the others' not")
        check("which --allow does not admit" in engine.log(), "the refusal is logged")
        check(engine.stop() == 0, "sustaind stops cleanly")
    with JackServer() as jack, Engine(paths, jack, ["--bind", "0.0.0.0"]) as engine:
        check("anyone who can reach it controls the engine" in engine.log(), "listening on every interface without --allow warns")
        engine.stop()


if __name__ == "__main__":
    main(test)
