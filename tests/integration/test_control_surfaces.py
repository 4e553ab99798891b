"""Control surfaces and feedback, with the real engine and examples/touchosc.toml:

- TouchOSC-style messages (/1/xy1 with two floats, /1/fader1 on a dB curve) and a built-in
  normalised alias (/engine/gain/norm) set what the driver plays;
- feedback: a surface and a /engine/notify client each hear the other's changes in their own
  address space, never their own; bursts are coalesced; both get a snapshot after a
  failover;
- SIGHUP re-reads the mapping; a broken file is refused with its line and the old mapping
  stays in force.
"""
import math
import os
import shutil
import signal
import tempfile
import time

from harness import Engine, JackServer, Recording, active_worker_pid, check, main, wait_until
from osc_wire import drain, message, udp

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "touchosc.toml")



def test(paths):
    directory = tempfile.mkdtemp(prefix="sustain-map-")
    surface_in = udp()  # TouchOSC listens on a port of its own (9000 by convention) ...
    surface_out = udp()  # ... and sends from another
    config = os.path.join(directory, "touchosc.toml")
    with open(EXAMPLE) as f:
        text = f.read().replace("feedback_port = 9000", f"feedback_port = {surface_in.getsockname()[1]}")
    with open(config, "w") as f:
        f.write(text)
    client = udp()  # a script or SuperCollider, subscribed with /engine/notify
    try:
        with JackServer() as jack, Engine(paths, jack, extra_args=["--config", config]) as engine:
            target = ("127.0.0.1", engine.port)
            check("mapping " in engine.log() and "15 addresses, 4 labels, 5 ignored patterns" in engine.log(), "the mapping is loaded at start")
            client.sendto(message("/engine/notify", "i", 1), target)
            snapshot = drain(client, 0.3)
            check(snapshot and snapshot[0] == ("/engine/notify", [1]), "/engine/notify 1 is confirmed")
            check(("/engine/gain", [0.0]) in snapshot and any(a == "/engine/freq" for a, _ in snapshot),
                  f"a snapshot follows the subscription: {snapshot}")

            with Recording(paths, jack, seconds=1.5) as recording:
                surface_out.sendto(message("/1/xy1", "ff", 0.5, 0.5), target)  # 440 Hz (110 * 16^0.5), gain 0.5
                client.sendto(message("/engine/gain/norm", "f", 0.8), target)   # master 0.8
                time.sleep(1.3)
                recording.finish()
                report = recording.analyze("--expect", "0.4:1.2:440:0.4")
            check(all(w["ok"] for w in report["windows"]), f"440 Hz at 0.5 x 0.8 is heard: {report['windows']}")

            heard_by_surface = drain(surface_in, 0.3)
            heard_by_client = drain(client, 0.3)
            fader1 = [args for address, args in heard_by_surface if address == "/1/fader1"]
            expected = 1 + 20 * math.log10(0.8) / 60  # the dB curve's position for gain 0.8
            check(fader1 and abs(fader1[-1][0] - expected) < 1e-3,
                  f"the surface's master fader follows the client's change: {fader1} vs {expected:.4f}")
            check(("/engine/freq", [440.0]) in heard_by_client and ("/engine/voice/0/gain", [0.5]) in heard_by_client,
                  f"the client hears the surface's change in engine addresses: {heard_by_client}")
            # A fault the machine caused meanwhile (JACK stalls an output stage now and then) sends
            # everyone a snapshot, own values included: judge only what came before its event.
            before_event = heard_by_client[:next((i for i, (a, _) in enumerate(heard_by_client)
                                                  if a == "/engine/event"), len(heard_by_client))]
            check(not any(a == "/engine/gain" for a, _ in before_event), "the client does not hear its own change")

            # Not straight back to the sender; a burst is coalesced. (Again if a fault's snapshot
            # came in between: see above.)
            for attempt in range(3):
                faults = engine.status()[1]["supervisor"]["crash_count"]
                surface_out.sendto(message("/1/fader3", "f", 0.3 if attempt == 0 else 0.3 + attempt / 100), target)
                for i in range(200):
                    client.sendto(message("/engine/voice/2/gain", "f", (i + 1) / 400), target)
                heard_by_surface = drain(surface_in, 0.5)
                heard_by_client = drain(client, 0.5)
                if engine.status()[1]["supervisor"]["crash_count"] == faults:
                    break
                print(f"note: a fault during the echo check (attempt {attempt + 1}); again", flush=True)
            check(not any(a == "/1/fader3" for a, _ in heard_by_surface), "the surface does not hear its own change")
            check(any(a == "/engine/voice/1/gain" and abs(v[0] - 0.3) < 0.025 for a, v in heard_by_client),
                  "the client hears /1/fader3")
            fader4 = [args[0] for a, args in heard_by_surface if a == "/1/fader4"]
            check(fader4 and fader4[-1] == 0.5 and len(fader4) < 50,
                  f"200 changes reach the surface coalesced ({len(fader4)} messages), ending at the last value")

            # A failover: both get a snapshot.
            os.kill(active_worker_pid(engine.log()), signal.SIGKILL)
            heard_by_surface = drain(surface_in, 0.6)
            heard_by_client = drain(client, 0.6)
            check(any(a == "/engine/event" for a, _ in heard_by_client), "the client hears the failover")
            # The master gain on /engine/gain/norm: the address this client set it through.
            check({a for a, _ in heard_by_client} >= {"/engine/gain/norm", "/engine/freq", "/engine/voice/1/gain"},
                  f"the client gets a snapshot after the failover: {heard_by_client}")
            check({a for a, _ in heard_by_surface} >= {"/1/fader1", "/1/xy1", "/1/fader5", "/1/toggle1"},
                  f"the surface gets a snapshot after the failover: {heard_by_surface}")

            # SIGHUP: a broken file keeps the mapping in force; a good one replaces it.
            with open(config, "w") as f:
                f.write(text.replace('curve = "db"', 'curve = "loud"', 1))
            engine.process.send_signal(signal.SIGHUP)
            wait_until(lambda: "previous mapping stays in force" in engine.log(), 3, "the broken file to be refused")
            curve_line = text.splitlines().index('curve = "db"') + 1
            check(f"touchosc.toml:{curve_line}: curve: unknown curve \"loud\"" in engine.log(),
                  "the refusal names the line and the reason")
            surface_out.sendto(message("/1/fader2", "f", 0.25), target)
            wait_until(lambda: engine.status()[1]["params"]["voices"][0]["gain"] == 0.25, 2,
                       "the old mapping to still apply")
            with open(config, "w") as f:
                f.write(text.replace('"/1/fader2"', '"/2/fader2"'))
            engine.process.send_signal(signal.SIGHUP)
            wait_until(lambda: "mapping " in engine.log() and "reloaded" in engine.log(), 3, "the reload")
            surface_out.sendto(message("/2/fader2", "f", 0.75), target)
            wait_until(lambda: engine.status()[1]["params"]["voices"][0]["gain"] == 0.75, 2, "the new address to apply")
            check(engine.process.poll() is None, "SIGHUP does not stop the engine")
    finally:
        for s in (surface_in, surface_out, client):
            s.close()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main(test)
