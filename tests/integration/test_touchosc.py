"""TouchOSC's traffic, as the app sends it, against the real engine with the shipped mapping
(examples/touchosc.toml, the mapping of examples/touchosc/sustain.tosc and .touchosc):

- a multi-fader's elements (/2/multifader1/N) each move their own voice;
- the chatter a tablet sends besides (touch /z, the accelerometer, page changes, Mk1's ping)
  is counted as ignored, never refused;
- press-only buttons act on the press and ignore the release; the panic button silences the
  engine and drops the timed changes waiting;
- text labels come back at the feedback port: voice 0's pitch in Hz and the master in dB
  when another client changes them, and when the surface itself does (the text beside the
  fader it moves); the engine's health ("spare warm", the failover count).
Everything is judged through the status JSON and what arrives at the surface's port.
"""
import math
import os
import shutil
import tempfile
import time

from harness import Engine, JackServer, check, main, wait_until
from osc_wire import bundle, drain, message, realtime_minus_monotonic_ns, timetag_of_unix_ns, udp

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "touchosc.toml")


def labels(heard):
    """{address: last text} of the strings a surface heard."""
    out = {}
    for address, args in heard:
        if len(args) == 1 and isinstance(args[0], str):
            out[address] = args[0]
    return out


def test(paths):
    directory = tempfile.mkdtemp(prefix="sustain-touchosc-")
    surface_in = udp()   # the tablet listens on a port of its own ...
    surface_out = udp()  # ... and sends from another
    other = udp()        # a script, changing things the tablet should show
    config = os.path.join(directory, "touchosc.toml")
    with open(EXAMPLE) as f:
        text = f.read().replace("feedback_port = 9000", f"feedback_port = {surface_in.getsockname()[1]}")
    with open(config, "w") as f:
        f.write(text)
    try:
        with JackServer() as jack, Engine(paths, jack, extra_args=["--config", config, "--voices", "4"]) as engine:
            target = ("127.0.0.1", engine.port)

            def osc():
                return engine.status()[1]["osc"]

            def params():
                return engine.status()[1]["params"]

            seen = {}  # every label's latest text, whenever it came

            def hear(seconds):
                heard = drain(surface_in, seconds)
                seen.update(labels(heard))
                return heard

            # The multi-fader: element N moves voice N-1's pitch (exp 110 .. 1760 Hz).
            surface_out.sendto(message("/2/multifader1/3", "f", 0.5), target)   # 110 * 16^0.5 = 440 Hz
            surface_out.sendto(message("/2/multifader1/4", "f", 1.0), target)   # 1760 Hz
            wait_until(lambda: abs(params()["voices"][2]["freq"] - 440.0) < 1e-3
                       and abs(params()["voices"][3]["freq"] - 1760.0) < 1e-3, 3, "the multi-fader's voices")
            check(True, "/2/multifader1/3 and /4 set voices 2 and 3")
            before = osc()

            # Chatter: counted as ignored, not refused.
            for packet in (message("/1/fader1/z", "f", 1.0), message("/2/multifader1/z", "f", 0.0),
                           message("/accxyz", "fff", 0.1, -0.2, 0.98), message("/2"), message("/ping")):
                surface_out.sendto(packet, target)
            wait_until(lambda: osc()["surfaces"]["ignored"] >= before["surfaces"]["ignored"] + 5, 3,
                       "the chatter counted")
            after = osc()
            check(after["rejected"] == before["rejected"] and after["surfaces"]["ignored"] ==
                  before["surfaces"]["ignored"] + 5, f"5 messages of chatter ignored, none refused: {after['surfaces']}")

            # Press-only buttons: the press tunes voice 0, the release does nothing.
            surface_out.sendto(message("/2/push3", "f", 1.0), target)
            wait_until(lambda: params()["voices"][0]["freq"] == 880.0, 3, "the press")
            other.sendto(message("/engine/voice/0/freq", "f", 330.0), target)
            wait_until(lambda: params()["voices"][0]["freq"] == 330.0, 3, "another client's change")
            surface_out.sendto(message("/2/push3", "f", 0.0), target)
            wait_until(lambda: osc()["surfaces"]["ignored"] == after["surfaces"]["ignored"] + 1, 3, "the release counted")
            time.sleep(0.2)
            check(params()["voices"][0]["freq"] == 330.0, "the press set 880 Hz; its release changed nothing")

            # Labels: what another client changed, as text.
            hear(0.3)
            other.sendto(message("/engine/voice/0/freq", "f", 261.6), target)
            other.sendto(message("/engine/gain", "f", 0.5), target)
            heard = labels(hear(0.5))
            check(heard.get("/1/freq0") == "262 Hz", f"the pitch label shows another client's change: {heard}")
            check(heard.get("/1/master_db") == f"{20 * math.log10(0.5):.1f} dB",
                  f"the master label shows it in dB: {heard}")
            # ... and what the surface itself changed: the fader is not echoed, its label is.
            surface_out.sendto(message("/1/xy1", "ff", 0.25, 0.5), target)  # 110 * 16^0.25 = 220 Hz
            heard_all = hear(0.5)
            heard = labels(heard_all)
            check(heard.get("/1/freq0") == "220 Hz", f"the label beside the surface's own pad follows it: {heard}")
            check(not any(a == "/1/xy1" for a, _ in heard_all), "the pad itself is not echoed")

            # The engine's health: the label says so once the standby renders in step.
            wait_until(lambda: engine.status()[1]["supervisor"]["spare_ready"], 15, "the spare warm")
            deadline = time.time() + 3
            while time.time() < deadline and seen.get("/1/spare") != "spare warm":
                hear(0.3)
            check(seen.get("/1/spare") == "spare warm", f"the spare label: {seen}")
            failovers = engine.status()[1]["supervisor"]["failovers"]
            check(any(v == f"{failovers} failovers" for a, v in seen.items() if a == "/1/failovers"),
                  f"the failover label shows {failovers}: {seen}")
            check(osc()["surfaces"]["labels_sent"] >= 4, f"labels counted: {osc()['surfaces']}")

            # The panic button: master 0 now, the timed change waiting dropped.
            offset = realtime_minus_monotonic_ns()
            due = timetag_of_unix_ns(time.clock_gettime_ns(time.CLOCK_MONOTONIC) + offset + 3_000_000_000)
            other.sendto(bundle(message("/engine/gain", "f", 0.9), timetag=due), target)
            wait_until(lambda: engine.status()[1]["timing"]["pending"] >= 1, 3, "the timed change waiting")
            panics = osc()["panics"]
            surface_out.sendto(message("/2/panic", "f", 1.0), target)
            surface_out.sendto(message("/2/panic", "f", 0.0), target)
            wait_until(lambda: osc()["panics"] == panics + 1, 3, "the panic")
            time.sleep(3.5)
            check(params()["master_gain"] == 0.0 and engine.status()[1]["timing"]["pending"] == 0,
                  f"the panic button silenced the engine and the timed change never came: {params()}")
            check(osc()["panics"] == panics + 1, "one panic: the release is not a second one")
    finally:
        for s in (surface_in, surface_out, other):
            s.close()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main(test)
