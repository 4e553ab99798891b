"""SuperCollider's language drives the real engine: examples/supercollider/sustain.scd runs
headless in sclang (no scsynth) against sustaind on a private JACK dummy server, and

- every value it sets arrives (read back with sustain-status --json --once);
- its timed bundles (sendBundle with a latency) are scheduled and applied on time, none
  late: sclang stamps them with wall-clock NTP time, as the engine expects;
- it hears /engine/pong, /engine/status.reply, /engine/synced 7 (also through its waiting
  ~sustainSync) and the /engine/notify feedback (the script prints marker lines, grepped here);
- Cmd-. (CmdPeriod.run, as the key does) silences the engine with /engine/panic, and the
  example's OSCdefs survive it (.fix): a ping afterwards is still answered.

Without sclang, or if sclang cannot start at all on this machine, the test is skipped (77).
"""
import os
import shutil
import sys
import tempfile

from harness import SKIP, Engine, JackServer, TestFailure, check, check_heard, main, wait_until
from sclang import SCLANG_TIMEOUT_S, run_sclang, sclang_env, sclang_usable

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "supercollider",
                       "sustain.scd")


def test(paths):
    home = tempfile.mkdtemp(prefix="sustain-sclang-")
    try:
        reason = sclang_usable(home)
        if reason:
            print(f"{reason}\nskipping", flush=True)
            sys.exit(SKIP)
        with JackServer() as jack, Engine(paths, jack) as engine:
            wait_until(lambda: engine.status()[1]["timing"]["frame_clock"], 5, "the frame clock")
            env = sclang_env(home)
            env.update(SUSTAIN_PORT=str(engine.port), SUSTAIN_QUIT="1")
            code, output = run_sclang(os.path.abspath(EXAMPLE), env, home)
            lines = [line.strip() for line in output.splitlines()]
            print("--- sclang, the example's lines ---\n" + "\n".join(
                line for line in lines if line.split(" ")[0] in
                ("PONG", "STATUS", "NOTIFY", "FEEDBACK", "SYNCED", "SYNC", "LATE", "EVENT", "PANIC", "DONE",
                 "MISSING")), flush=True)
            if code != 0:
                raise TestFailure(f"sclang exited with {code} (None: still running after {SCLANG_TIMEOUT_S} s), "
                                  f"its output:\n{output[-4000:]}")
            check("DONE" in lines, "the script got every answer it waited for and quit")
            for marker in ("PONG", "NOTIFY 1", "SYNCED 7", "SYNC WAITED", "PANIC SENT", "PONG AFTER CMD-PERIOD"):
                check(marker in lines, f"sclang printed \"{marker}\"")
            # The timed bundle's changes reach every subscriber once rendered, its sender too;
            # a bundle that arrived late is applied at once, as a plain change, which is not
            # echoed to its sender (a slow build can make it late: judged below).
            late = any(line.startswith("LATE") for line in lines)
            for marker in ("FEEDBACK /engine/voice/2/freq 550.0", "FEEDBACK /engine/voice/2/gain 0.125"):
                check_heard(marker in lines or late, f"sclang printed \"{marker}\"")
            # Its plain changes are never echoed back to it; what it hears of them is the
            # snapshot on subscribing, with whatever was in force at that moment (the changes
            # sent right after may or may not be in it): every parameter, some value.
            # Voice 0's frequency comes on the address the script sets it through
            # (/engine/voice/0/freq), or on /engine/freq if the snapshot left before that.
            for addresses in (("/engine/gain",), ("/engine/freq", "/engine/voice/0/freq"), ("/engine/voice/1/freq",),
                              ("/engine/voice/3/gain",)):
                check(any(line.startswith(f"FEEDBACK {address} ") for line in lines for address in addresses),
                      f"sclang got the snapshot's {' or '.join(addresses)}")
            check(any(line.startswith("STATUS active slot") for line in lines), "sclang got /engine/status.reply")
            # Lateness is timing: judged in the plain build, printed under TSan (a slow build).
            check_heard(not any(line.startswith("LATE") for line in lines), "sclang was told of no late bundle")

            # Cmd-. at the end: master gain 0 (the panic), the voices as set.
            expected = {"master": 0.0, 0: (220.0, 0.5), 1: (330.0, 0.25), 2: (550.0, 0.125)}

            def arrived():
                params = engine.status()[1]["params"]
                voices = params["voices"]
                return params["master_gain"] == expected["master"] and all(
                    (voices[v]["freq"], voices[v]["gain"]) == expected[v] for v in (0, 1, 2))

            try:
                wait_until(arrived, 2, "the values sclang set")
            finally:
                print(f"params: {engine.status()[1]['params']}", flush=True)
            check(True, f"the values sclang set arrived, and Cmd-. silenced the engine: {expected}")
            check(engine.status()[1]["osc"]["panics"] == 1, "one /engine/panic, from Cmd-.")

            timing = engine.status()[1]["timing"]
            # Block 5 sends one bundle of 2 messages, the tune 4 bundles of 1.
            check(timing["scheduled"] + timing["late"] >= 6, f"sclang's timed bundles arrived as timed: {timing}")
            check_heard(timing["scheduled"] >= 6 and timing["applied_on_time"] >= 6,
                        f"sclang's timed bundles were scheduled and applied on time: {timing}")
            check_heard(timing["late"] == 0, f"none of sclang's timetags was late: {timing}")
            check(timing["syncs_answered"] >= 1, "the engine answered the sync")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main(test)
