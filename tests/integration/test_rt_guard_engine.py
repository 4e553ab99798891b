"""The audio callback is sacred: with the real-time guard preloaded into the real worker
(LD_PRELOAD), the engine plays and takes an OSC flood of parameter changes, then stops
cleanly; the worker's report must show thousands of guarded callbacks and not one call
to malloc, free, a lock, a sleep or an I/O system call from inside them. The playing output
stage is then SIGKILLed, so that the other one takes over and cancels the dead stage's
buffer (jack_port_connected every cycle) under the guard too; and in the direct layout the
active worker, so that the standby worker does the same.

The guard's own self-test (tests/rt_guard/test_rt_guard.cpp) proves it does catch such
calls, so a zero here is a real zero.
"""
import glob
import os
import subprocess
import tempfile
import time

import signal

from harness import (Engine, JackServer, active_worker_pid, check, guarded_reports, main, playing_output_stage,
                     wait_until)


def test(paths):
    reports = tempfile.mkdtemp(prefix="sustain-rtguard-")
    env = {"LD_PRELOAD": paths.rt_guard, "SUSTAIN_RT_GUARD_REPORT": reports}
    with JackServer() as jack, Engine(paths, jack, env_extra=env) as engine:
        worker = engine.worker_pids()[0]
        engine.send("/engine/gain", ("f", 0.3))
        # A flood of every kind of parameter change through the whole path, for ~2 s.
        flood = []
        for i in range(400):
            flood += [f"/engine/freq,f,{200 + i}", f"/engine/voice/1/gain,f,{(i % 10) / 20}",
                      f"/engine/voice/2/freq,i,{300 + i}", f"/engine/gain,d,{0.2 + (i % 5) / 20}"]
        started = time.monotonic()
        for message in flood:
            address, types, value = message.split(",")
            subprocess.run(["oscsend", "127.0.0.1", str(engine.port), address, types, value], check=True)
            if time.monotonic() - started > 4:
                break
        time.sleep(0.5)
        os.kill(playing_output_stage(engine)[1], signal.SIGKILL)
        wait_until(lambda: engine.status()[1]["output"]["stale_cancelled_cycles"] > 0, 5,
                   "the other output stage to silence the dead one's buffer")
        time.sleep(0.5)
        check(engine.stop() == 0, "sustaind stops cleanly")

    # The direct layout: the active worker SIGKILLed, so that the standby takes over and
    # silences the dead worker's buffer under the guard (its report joins the others).
    with JackServer() as jack, Engine(paths, jack, ["--layout", "direct"], env_extra=env) as engine:
        wait_until(lambda: "spare ready" in engine.log(), 10, "the standby")
        engine.send("/engine/gain", ("f", 0.3))
        time.sleep(0.3)
        os.kill(active_worker_pid(engine.log()), signal.SIGKILL)
        wait_until(lambda: engine.status()[1]["output"]["stale_cancelled_cycles"] > 0, 5,
                   "the standby worker to silence the dead active's buffer")
        time.sleep(0.5)
        check(engine.stop() == 0, "sustaind stops cleanly (direct layout)")

    path = os.path.join(reports, f"rtguard.{worker}.json")
    check(os.path.exists(path), "the active worker wrote its guard report at exit")
    # Every process with an audio callback: both workers and both output stages.
    audio = guarded_reports(reports)
    check(len(audio) >= 4, f"{len(audio)} processes ran guarded audio callbacks (2 workers, 2 output stages)")
    # Each kind ran long under the flood; a process replaced meanwhile (JACK skipped a
    # playing output stage twice, and its standby took over) ran fewer, and is held to the
    # same rule for what it ran.
    for kind in ("sustain-worker", "sustain-output"):
        most = max((r["guarded_calls"] for r in audio if os.path.basename(r["exe"]) == kind), default=0)
        check(most > 1000, f"{kind}: {most} callbacks guarded in its longest-running process")
    for report in audio:
        exe = os.path.basename(report["exe"])
        print(f"{exe} (pid {report['pid']}): {report['guarded_calls']} callbacks guarded", flush=True)
        bad = {name: n for name, n in report["violations"].items() if n}
        check(report["total"] == 0, f"{exe} (pid {report['pid']}): no allocation, lock, sleep or system call "
              f"inside the callback ({bad or 'none'})")
    for leftover in glob.glob(os.path.join(reports, "*")):
        os.unlink(leftover)
    os.rmdir(reports)


if __name__ == "__main__":
    main(test)
