"""A replacement that hangs during its start, before its stream runs, is found and replaced:
one in an endless loop within a few times the slowest start seen so far (not after the
fixed 10 s limit that only the engine's first start has: supervisor startupLimitNs), one
stopped by a signal as soon as sustaind sees it stopped (state T), which this test checks:

- the worker prepared ahead (docs/failover.md) is killed first, so that the standby's
  replacement is started on the spot (a new process, the path whose start can hang);
- the standby is killed; its replacement is stopped (SIGSTOP) the moment it exists, before
  it has opened its stream;
- sustaind counts it as hung and kills it within half a second (a process whose callbacks
  stalled, or have not begun, for 10 ms and that is stopped is hung), and starts another,
  which becomes the warm spare;
- the active played on: one crash per process taken down, no failover.
"""
import os
import signal
import sys
import time

from harness import Engine, JackServer, check, children_of, eventually, main, prepared_worker_pid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "benchmark"))
from chaos import process_state  # noqa: E402


# Generous for a loaded 2-core machine and a sanitizer build; the startup limit it replaces
# for stopped processes is at least 1 s.
BOUND_S = 1.0 if os.environ.get("SUSTAIN_SANITIZER") else 0.5


def spare_warm(status):
    return status["supervisor"].get("spare_ready") and status.get("health") == "healthy"


def test(paths):
    with JackServer() as jack, Engine(paths, jack, ["--gain", "0.5"]) as engine:
        check(eventually(lambda: spare_warm(engine.status()[1]), 10), "the spare is warm after the start")
        prepared = prepared_worker_pid(engine)
        lost = engine.status()[1]["supervisor"]["prepared_lost"]
        os.kill(prepared, signal.SIGKILL)
        check(eventually(lambda: engine.status()[1]["supervisor"]["prepared_lost"] == lost + 1, 3),
              "the prepared worker's death is counted (another is prepared only seconds later)")
        _, before = engine.status()
        standby = [w["pid"] for w in before["workers"] if w["role"] == "standby"][0]
        known = set(children_of(engine.process.pid))
        os.kill(standby, signal.SIGKILL)
        replacement = None
        deadline = time.monotonic() + 5
        while replacement is None and time.monotonic() < deadline:
            replacement = next((p for p in children_of(engine.process.pid) if p not in known), None)
        check(replacement is not None, "sustaind starts a replacement")
        os.kill(replacement, signal.SIGSTOP)
        stopped_at = time.monotonic()
        _, during = engine.status()
        slot = [w for w in during["workers"] if w["pid"] == replacement]
        check(not slot or slot[0]["callbacks"] == 0, f"the replacement was stopped before its stream ran: {slot}")
        check(eventually(lambda: process_state(replacement) == "gone", BOUND_S),
              f"sustaind takes the stopped replacement for hung within {BOUND_S} s "
              f"({time.monotonic() - stopped_at:.2f} s)")
        check(eventually(lambda: spare_warm(engine.status()[1]), 5), "another replacement is the warm spare")
        _, after = engine.status()
        check(after["supervisor"]["failovers"] == before["supervisor"]["failovers"], "no failover: the active played on")
        check(after["supervisor"]["crash_count"] == before["supervisor"]["crash_count"] + 2,
              f"a crash counted for each process taken down: {after['supervisor']['crash_count'] - before['supervisor']['crash_count']}")


if __name__ == "__main__":
    main(test)
