"""The output stage finds its place without sustaind: the active worker dies while sustaind
is stopped between fencing it and promoting the standby (fault point fence_before_switch),
and the standby, the only worker rendering, then misses cycles (SIGSTOPped for a moment).
The output stage has no block to play while the standby is stopped; once it renders again,
the stage must lock its play position to it at once and play, not wait in silence until
sustaind wakes and promotes it (before: silence for as long as sustaind was stopped).
Judged at the driver's output: the longest silence is the standby's stop, within a few
periods; the change sent while sustaind was stopped is applied once it runs again.
"""
import os
import signal
import sys
import time

from harness import SKIP, Engine, JackServer, Recording, check, check_heard, main, wait_until
from test_failover_relay import active_worker, spare_ready_count, wait_spare

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "benchmark"))
from chaos import arm, handler_installed, process_state  # noqa: E402

STANDBY_STOP_S = 0.03
SUSTAIND_STOP_S = 0.6
RATE = 48000
PERIOD = 64


def standby_worker(engine):
    """pid of the worker that is not the active one (from sustaind's log)."""
    active = active_worker(engine)
    return next(pid for pid in reversed(engine.worker_pids()) if pid != active)


def test(paths):
    with JackServer() as jack, Engine(paths, jack, ["--restart-limit", "1000", "--gain", "0.5"]) as engine:
        wait_spare(engine, 0)
        if not handler_installed(engine.process.pid):
            print("skipped: this build has no fault points (meson option fault_points)", flush=True)
            sys.exit(SKIP)
        time.sleep(0.3)
        active, standby = active_worker(engine), standby_worker(engine)
        _, before = engine.status()
        with Recording(paths, jack, seconds=2.5) as recording:
            time.sleep(0.4)
            arm(engine.process.pid, "fence_before_switch", "stop")
            time.sleep(0.05)  # the arming signal is taken
            os.kill(active, signal.SIGKILL)
            wait_until(lambda: process_state(engine.process.pid) == "stopped", 3,
                       "sustaind to stop between fencing the dead active and the switch")
            stopped_at = time.monotonic()
            time.sleep(0.15)
            os.kill(standby, signal.SIGSTOP)
            time.sleep(STANDBY_STOP_S)
            os.kill(standby, signal.SIGCONT)
            time.sleep(max(0.0, stopped_at + SUSTAIND_STOP_S - time.monotonic()))
            check(process_state(engine.process.pid) == "stopped", "sustaind was stopped all along")
            os.kill(engine.process.pid, signal.SIGCONT)
            recording.finish()
            report = recording.analyze("--gap-min", "16")
        longest = max((e["gap_samples"] for e in report.get("events", [])), default=0)
        print(f"silent samples per damage event: {[e['gap_samples'] for e in report.get('events', [])]}; "
              f"the standby was stopped {STANDBY_STOP_S * RATE:.0f} samples, sustaind {SUSTAIND_STOP_S * RATE:.0f}",
              flush=True)
        # The standby's stop, and the periods JACK takes to run a stopped client's graph again.
        bound = STANDBY_STOP_S * RATE + 8 * PERIOD
        check_heard(longest <= bound, f"the longest silence is the standby's stop ({longest} samples, at most "
                    f"{bound:.0f}), not sustaind's ({SUSTAIND_STOP_S * RATE:.0f})")
        wait_spare(engine, spare_ready_count(engine) - 1)
        _, after = engine.status()
        check(after["supervisor"]["failovers"] == before["supervisor"]["failovers"] + 1,
              "one failover for the one death, once sustaind runs again")
        check(engine.stop() == 0, "sustaind stops cleanly")


if __name__ == "__main__":
    main(test)
