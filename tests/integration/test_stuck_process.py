"""A worker that does not die when killed: the active worker is frozen by the kernel (a
cgroup v1 freezer: its threads wait uninterruptibly, state D, and a SIGKILL stays pending
until it is thawed, as for a process stuck on a hung disk or driver). sustaind takes it
for hung, fails over and kills it; the kill cannot complete. Supervision must go on: the
status keeps a fresh heartbeat and shows the stuck process, another fault meanwhile (the
standby output stage killed) is handled, and once the kernel lets the frozen worker go its
slot is refilled. Judged through the status JSON.

The sound while the killed worker is stuck is recorded and printed, not judged: 1 to 4
silent periods in 5 of 6 runs, no xrun reported near them, while JACK skips the one worker
that renders far more often than before (its caught_up_blocks, printed). An open finding,
cause not established (docs/failover.md, "A process the kernel does not let die").
"""
import os
import signal
import sys
import time
import uuid

from harness import SKIP, Engine, JackServer, Recording, check, main, wait_until

FREEZER = "/sys/fs/cgroup/freezer"


def rows(status, kind, role):
    return [w for w in status["workers"] if w["kind"] == kind and w["role"] == role]


class Frozen:
    """A cgroup v1 freezer group holding one process, thawed and removed on exit."""

    def __init__(self, pid):
        self.path = os.path.join(FREEZER, "sustain-test-" + uuid.uuid4().hex[:8])
        os.mkdir(self.path)
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        self.set("FROZEN")

    def set(self, state):
        with open(os.path.join(self.path, "freezer.state"), "w") as f:
            f.write(state)

    def thaw(self):
        if os.path.isdir(self.path):
            self.set("THAWED")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.thaw()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.rmdir(self.path)  # empty once the process is gone
                return
            except OSError:
                time.sleep(0.05)


def test(paths):
    if os.geteuid() != 0 or not os.path.exists(os.path.join(FREEZER, "cgroup.procs")):
        print("skipped: needs root and the cgroup v1 freezer (a frozen process that ignores SIGKILL)", flush=True)
        sys.exit(SKIP)
    with JackServer() as jack, Engine(paths, jack, ["--gain", "0.5"]) as engine:
        wait_until(lambda: engine.status()[1]["supervisor"]["spare_ready"]
                   and engine.status()[1]["supervisor"]["output_spare_ready"], 10, "both spares ready")
        time.sleep(0.3)
        _, before = engine.status()
        active = rows(before, "worker", "active")[0]["pid"]
        with Recording(paths, jack, seconds=8) as recording:
            time.sleep(0.4)
            frozen_ns = time.monotonic_ns()
            with Frozen(active) as frozen:
                wait_until(lambda: engine.status()[1]["supervisor"]["stuck_processes"] == 1, 6,
                           "sustaind to take the frozen worker for hung, kill it and see it does not die")
                _, stuck = engine.status()
                time.sleep(0.8)
                caught_up = [(w["slot"], w["caught_up_blocks"]) for w in rows(stuck, "worker", "active")
                             + rows(engine.status()[1], "worker", "active")]
                print(f"the rendering worker's cycles JACK skipped (slot, caught_up_blocks) when the stuck "
                      f"worker was seen and 0.8 s later: {caught_up}", flush=True)
                check(stuck["supervisor"]["failovers"] == before["supervisor"]["failovers"] + 1,
                      f"one failover for the frozen active: {stuck['supervisor']}")
                check(all(w["pid"] != active for w in stuck["workers"]),
                      "the status no longer lists the killed worker as one of the engine's processes")
                # Supervision goes on: the loop keeps its heartbeat, and a fault meanwhile is handled.
                ages = []
                for _ in range(10):
                    ages.append(engine.status()[1]["supervisor"]["heartbeat_age_ms"])
                    time.sleep(0.05)
                check(max(ages) < 250, f"sustaind's loop runs while a killed process is stuck: heartbeat ages {ages} ms")
                # A fault meanwhile is seen and handled. (Its replacement may have to wait: the
                # JACK server waits up to 5 s for a frozen client to answer each graph change.)
                standby_stage = rows(stuck, "output", "output-standby")[0]["pid"]
                os.kill(standby_stage, signal.SIGKILL)
                wait_until(lambda: engine.status()[1]["supervisor"]["crash_count"] == stuck["supervisor"]["crash_count"] + 1,
                           2, "the standby output stage killed while the frozen worker is stuck: its death seen")
                _, meanwhile = engine.status()
                check(meanwhile["supervisor"]["stuck_processes"] == 1 and not meanwhile["supervisor"]["spare_ready"],
                      "the frozen worker's slot stays empty while it is stuck (one writer per slot)")
                check(meanwhile["health"] == "degraded" and "does not die" in meanwhile["health_reason"],
                      f"the status says why there is no spare: {meanwhile['health']}, {meanwhile['health_reason']}")
                frozen.thaw()
                wait_until(lambda: engine.status()[1]["supervisor"]["stuck_processes"] == 0
                           and engine.status()[1]["supervisor"]["spare_ready"]
                           and engine.status()[1]["supervisor"]["output_spare_ready"], 15,
                           "both spares back once the kernel let the worker go")
            recording.finish()
            report = recording.analyze("--gap-min", "16")
            engine_events, machine_events = recording.split_damage(report)
        for event in engine_events:
            at_ns = recording.monotonic_ns_at(int(event["start_s"] * 48000))
            print(f"damage event {(at_ns - frozen_ns) / 1e6:.1f} ms after the freeze: {event}", flush=True)
        print(f"damage events not at the machine's causes: {len(engine_events)} (open finding, see above); "
              f"at the machine's: {len(machine_events)}", flush=True)
        _, after = engine.status()
        check(after["health"] == "healthy", f"healthy again: {after['health']} {after['health_reason']}")
        check(engine.stop() == 0, "sustaind stops cleanly")


if __name__ == "__main__":
    main(test)
