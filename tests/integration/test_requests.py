"""The scsynth-style requests, against the real engine over real UDP (docs/clients.md):

- /engine/version answers /engine/version.reply "sustain" major minor patch "x.y.z";
- /engine/error 1 opts a client in to /engine/fail <address> <reason> <text> for each of its
  refused messages (none before, none after /engine/error 0, none for other clients);
- /engine/dumpOSC 1 writes every message to the log, at most 100 a second, counted;
- /engine/clearSched drops the timed messages still waiting; they never play;
- /engine/panic silences now (master gain 0, heard by subscribers as feedback) and drops
  what waits;
- OSC 1.0 address patterns on the engine's addresses: a wildcard message changes every
  voice it names; a pattern that matches nothing, or too costly a one, is refused, counted.
Judged through the status JSON and the replies.
"""
import time

from harness import Engine, JackServer, check, main, wait_until
from osc_wire import bundle, drain, message, timetag_of_unix_ns, udp



def timed(address, value, ahead_s):
    at = timetag_of_unix_ns(time.clock_gettime_ns(time.CLOCK_REALTIME) + int(ahead_s * 1e9))
    return bundle(message(address, "f", value), timetag=at)


def test(paths):
    with JackServer() as jack, Engine(paths, jack) as engine:
        target = ("127.0.0.1", engine.port)
        client, other = udp(), udp()

        client.sendto(message("/engine/version"), target)
        reply = drain(client, 0.3)
        check(len(reply) == 1 and reply[0][0] == "/engine/version.reply" and reply[0][1][0] == "sustain"
              and reply[0][1][4] == ".".join(str(n) for n in reply[0][1][1:4]), f"/engine/version: {reply}")

        # Fail replies: only after /engine/error 1, only to that client.
        bad = message("/engine/gain", "s", "loud")
        client.sendto(bad, target)
        check(drain(client, 0.3) == [], "no /engine/fail before opting in")
        client.sendto(message("/engine/error", "i", 1), target)
        client.sendto(bad, target)
        other.sendto(bad, target)
        reply = drain(client, 0.3)
        check(len(reply) == 1 and reply[0][0] == "/engine/fail" and reply[0][1][:2] == ["/engine/gain", "bad_type"],
              f"/engine/fail <address> <reason> <text>: {reply}")
        check(drain(other, 0.1) == [], "a client that did not opt in hears nothing")
        client.sendto(message("/engine/error", "i", 0), target)
        client.sendto(bad, target)
        check(drain(client, 0.3) == [], "no /engine/fail after /engine/error 0")
        check(engine.status()[1]["osc"]["fail_replies_sent"] == 1, "counted")

        # Tracing: counted, bounded.
        client.sendto(message("/engine/dumpOSC", "i", 1), target)
        wait_until(lambda: engine.status()[1]["osc"]["tracing"], 2, "tracing to be on")
        for i in range(3):
            client.sendto(message("/engine/voice/1/freq", "f", 500.0 + i), target)
        wait_until(lambda: engine.status()[1]["osc"]["traced"] == 3, 2, "three messages traced")
        start = time.monotonic()
        for i in range(2000):
            client.sendto(message("/engine/voice/1/freq", "f", 600.0 + i % 100), target)
        elapsed = time.monotonic() - start
        time.sleep(0.3)
        traced = engine.status()[1]["osc"]["traced"] - 3
        check(traced <= 100 * (int(elapsed) + 2), f"a flood is traced at most 100 lines a second ({traced} in {elapsed:.2f} s)")
        client.sendto(message("/engine/dumpOSC", "i", 0), target)
        wait_until(lambda: not engine.status()[1]["osc"]["tracing"], 2, "tracing to be off")

        # clearSched: what waits never plays.
        for _ in range(10):
            client.sendto(timed("/engine/voice/1/gain", 0.9, 1.0), target)
        wait_until(lambda: engine.status()[1]["timing"]["pending"] == 10, 2, "ten timed messages waiting")
        client.sendto(message("/engine/clearSched"), target)
        wait_until(lambda: engine.status()[1]["timing"]["pending"] == 0, 2, "none waiting after /engine/clearSched")
        check(engine.status()[1]["timing"]["cleared"] == 10, "ten cleared, counted")
        time.sleep(1.2)
        check(engine.status()[1]["params"]["voices"][1]["gain"] == 0.0, "the cleared messages never played")

        # Panic: silence now, feedback to subscribers, nothing waiting plays later.
        listener = udp()
        listener.sendto(message("/engine/notify", "i", 1), target)
        drain(listener, 0.3)
        client.sendto(message("/engine/gain", "f", 0.5), target)
        check(("/engine/gain", [0.5]) in drain(listener, 0.3), "the subscriber hears the gain")
        client.sendto(timed("/engine/gain", 0.8, 1.0), target)
        client.sendto(message("/engine/panic"), target)
        check(("/engine/gain", [0.0]) in drain(listener, 0.3), "the subscriber hears the panic's silence")
        _, s = engine.status()
        check(s["params"]["master_gain"] == 0.0 and s["osc"]["panics"] == 1 and s["timing"]["pending"] == 0,
              f"master gain 0, counted, nothing waits: {s['params']['master_gain']} {s['osc']['panics']} "
              f"{s['timing']['pending']}")
        time.sleep(1.2)
        check(engine.status()[1]["params"]["master_gain"] == 0.0, "the bundle queued before the panic never played")
        # Address patterns.
        client.sendto(message("/engine/voice/*/gain", "f", 0.25), target)
        client.sendto(message("/engine/voice/[0-1]/freq", "f", 330.0), target)
        client.sendto(message("/engine/voice/{2,3}/freq/norm", "f", 0.0), target)
        wait_until(lambda: engine.status()[1]["osc"]["patterns"]["messages"] == 3, 2, "three pattern messages")
        _, s = engine.status()
        voices = s["params"]["voices"]
        check(all(v["gain"] == 0.25 for v in voices), f"/engine/voice/*/gain set every voice's gain: {voices}")
        check([v["freq"] for v in voices[:2]] == [330.0, 330.0], f"[0-1] set voices 0 and 1: {voices}")
        check(all(abs(v["freq"] - 20.0) < 1e-6 for v in voices[2:]), f"{{2,3}} with /norm 0 set 20 Hz: {voices}")
        check(s["osc"]["patterns"]["targets"] == len(voices) + 2 + 2, f"targets counted: {s['osc']['patterns']}")
        before = s["osc"]["rejected_by_reason"]["unknown_address"]
        client.sendto(message("/engine/voice/9?/gain", "f", 0.5), target)
        client.sendto(message("/engine/*a*b*c*d*e*", "f", 0.5), target)
        wait_until(lambda: engine.status()[1]["osc"]["rejected_by_reason"]["unknown_address"] == before + 2, 2,
                   "a pattern matching nothing and one with too many stars to be refused")
        for s in (client, other, listener):
            s.close()


if __name__ == "__main__":
    main(test)
