"""Replacement workers prepared ahead (docs/failover.md): once both worker slots render in
step, sustaind starts one worker that loads, attaches and locks its memory, and waits; a
slot's replacement is that process, told its slot, which then initialises its audio and
starts its stream. Judged through the status: every replacement is the process that
was prepared and the sound stays clean; a prepared worker that dies or is stopped is
counted lost (not a crash) and never given a slot, and another is prepared; in the direct
layout the standby finds a prepared replacement's ports (its JACK client has a name of its
own) and silences them when it dies.
"""
import os
import signal
import time

from harness import Engine, JackServer, check, main, pid_alive, prepared_worker_pid, wait_until
from test_failover_relay import judged_run


def supervisor(engine):
    return engine.status()[1]["supervisor"]


def worker_pid(engine, role):
    for w in engine.status()[1]["workers"]:
        if w.get("kind", "worker") == "worker" and w.get("role") == role and w.get("pid"):
            return w["pid"]
    return None


def spare_ready(engine):
    s = engine.status()[1]
    return s["supervisor"]["spare_ready"] and s["health"] == "healthy"


def replace(engine, role):
    """Kills the worker in `role`; its slot must be filled by the prepared worker, in step
    again within 5 s."""
    prepared = prepared_worker_pid(engine)
    used = supervisor(engine)["prepared_used"]
    victim = worker_pid(engine, role)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not pid_alive(victim) and spare_ready(engine) and worker_pid(engine, "standby") == prepared,
               5, f"the prepared worker (pid {prepared}) to be the standby after the {role} (pid {victim}) died")
    check(supervisor(engine)["prepared_used"] == used + 1, f"the {role}'s replacement was the prepared worker")


def relay(paths):
    with JackServer() as jack, Engine(paths, jack, ["--restart-limit", "1000", "--gain", "0.5"]) as engine:
        wait_until(lambda: spare_ready(engine), 5, "the spare")

        def faults():
            for role in ("standby", "active", "standby"):
                replace(engine, role)
        judged_run(paths, jack, engine, 4.0, faults, "standby, active, standby killed, replaced by prepared workers")

        # A prepared worker that dies: counted lost, not a crash; another is prepared.
        lost, crashes = supervisor(engine)["prepared_lost"], supervisor(engine)["crash_count"]
        first = prepared_worker_pid(engine)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: supervisor(engine)["prepared_lost"] == lost + 1, 3, "the prepared worker's death counted")
        check(supervisor(engine)["crash_count"] == crashes, "a prepared worker's death is no crash of the engine")
        check(engine.status()[1]["health"] == "healthy", "the engine stays healthy")
        second = prepared_worker_pid(engine)
        check(second != first, f"another worker is prepared (pid {second})")

        # A stopped one is not given a slot: the slot gets a new process, the stopped one is
        # killed and counted lost.
        os.kill(second, signal.SIGSTOP)
        standby, used = worker_pid(engine, "standby"), supervisor(engine)["prepared_used"]

        def kill_standby():
            os.kill(standby, signal.SIGKILL)
            wait_until(lambda: not pid_alive(standby) and spare_ready(engine), 5, "a new standby in step")
        judged_run(paths, jack, engine, 2.0, kill_standby, "a standby replaced while the prepared worker is stopped")
        check(worker_pid(engine, "standby") != second, "the stopped prepared worker was not given the slot")
        check(supervisor(engine)["prepared_used"] == used, "no prepared worker counted as used")
        check(supervisor(engine)["prepared_lost"] == lost + 2, "the stopped prepared worker counted lost")
        wait_until(lambda: not pid_alive(second), 3, "the stopped prepared worker to be gone")


def direct(paths):
    """Direct layout: the process that takes over silences the dead one's buffer through
    its ports, looked up by the JACK client name of the process in the other slot."""
    with JackServer() as jack, Engine(paths, jack, ["--layout", "direct", "--restart-limit", "1000",
                                                    "--gain", "0.5"]) as engine:
        wait_until(lambda: spare_ready(engine), 5, "the spare")
        for fault in range(3):
            prepared_worker_pid(engine)
            before = engine.status()[1]["output"]["stale_cancellations"]
            replace(engine, "active")
            after = engine.status()[1]["output"]["stale_cancellations"]
            check(after > before, f"fault {fault + 1}: the dead active's buffer was silenced ({before} -> {after})")
            # The standby now is the prepared worker: the next fault makes it play, and it
            # must have found the ports of the active it takes over from.
            time.sleep(0.5)


def test(paths):
    relay(paths)
    direct(paths)


if __name__ == "__main__":
    main(test)
