"""200 kill cycles in a row (the active worker, SIGKILL, each time after the replacement
standby renders in step: faster than a worker is prepared ahead, so most replacements are
started on the spot, some prepared): afterwards no leaked shared memory, no extra
processes, no leaked file descriptors in sustaind, and the engine still plays the tone
cleanly.
"""
import os
import signal
import time

from harness import (Engine, JackServer, Recording, check, children_of, main, pid_alive, prepared_worker_pid,
                     wait_until)
from test_failover_relay import active_worker, spare_ready_count

CYCLES = 200


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def shm_names():
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith("sustain-"))


def test(paths):
    shm_before = shm_names()
    with JackServer() as jack, Engine(paths, jack, ["--restart-limit", "100000", "--gain", "0.5"]) as engine:
        wait_until(lambda: spare_ready_count(engine) >= 1, 5, "the first standby to render in step")
        prepared_worker_pid(engine)
        time.sleep(0.3)
        fds_before = fd_count(engine.process.pid)
        children_before = len(children_of(engine.process.pid))
        check(children_before == 5,
              f"sustaind runs 5 children (2 workers, 2 output stages, a worker prepared ahead): {children_before}")
        started = time.monotonic()
        for cycle in range(CYCLES):
            before = spare_ready_count(engine)
            os.kill(active_worker(engine), signal.SIGKILL)
            wait_until(lambda: spare_ready_count(engine) > before, 5, f"the replacement in cycle {cycle + 1}")
        elapsed = time.monotonic() - started
        print(f"{CYCLES} kill cycles in {elapsed:.1f} s", flush=True)
        time.sleep(1.0)  # let JACK settle after 400 client changes
        prepared_worker_pid(engine)
        time.sleep(0.3)
        check(fd_count(engine.process.pid) == fds_before,
              f"sustaind holds as many file descriptors as before ({fd_count(engine.process.pid)} vs {fds_before})")
        children = children_of(engine.process.pid)
        check(len(children) == children_before, f"sustaind has {len(children)} children, as before")
        dead = [p for p in engine.worker_pids() if p not in children]
        check(not any(pid_alive(p) for p in dead), f"all {len(dead)} killed workers are gone")
        check(engine.log().count("failover: worker") == CYCLES, f"{CYCLES} failovers logged")
        with Recording(paths, jack, seconds=1.0) as recording:
            recording.finish()
            report = recording.analyze("--expect", "0.02:-0.02:440:0.5")
            engine_damage, machine_damage = recording.split_damage(report)
        if machine_damage:
            print(f"note: damage the machine explains (at JACK-reported xruns or cycle jumps of the recording): {machine_damage}", flush=True)
        check(not engine_damage and report["windows"][0]["ok"], "the engine still plays the tone cleanly")
        check(engine.stop() == 0, "sustaind stops cleanly")
    check(shm_names() == shm_before, "no shared memory leaked")


if __name__ == "__main__":
    main(test)
