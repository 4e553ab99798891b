"""sustain-status and the OSC status side against a running engine:

- `--json --once`: every field of DESIGN.md present and consistent with what the test did
  (messages sent and rejected, values set, a kill performed); exit code 0 when healthy;
- exit code 1 when degraded (the standby killed while restarts back off), 2 when down
  (no engine), with one line, not a stack of errors;
- while sustaind and a worker are SIGSTOPped the monitor still answers and shows the stale
  heartbeats;
- the live view in a real terminal (tmux): the figures appear, it survives a resize, q quits;
- /engine/ping, /engine/status and /engine/notify round trips with a liblo client.
"""
import json
import os
import shutil
import signal
import subprocess
import time

from harness import Engine, JackServer, TestFailure, check, main, wait_until
from test_failover_relay import active_worker


def status(paths, instance, *extra):
    result = subprocess.run([paths.status, "--instance", instance, *extra], capture_output=True, text=True, timeout=10)
    return result.returncode, result.stdout, result.stderr


def status_json(paths, instance):
    code, out, err = status(paths, instance, "--json", "--once")
    return code, json.loads(out)


def query(paths, engine, *args, listen_ms=600):
    result = subprocess.run([paths.osc_query, "--port", str(engine.port), "--listen-ms", str(listen_ms), *args],
                            capture_output=True, text=True, timeout=20)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test(paths):
    code, out, err = status(paths, f"absent-{os.getpid()}", "--once")
    check(code == 2, "no engine: exit code 2")
    check(len(err.strip().splitlines()) == 1 and "no engine is running" in err, f"no engine: one clear line ({err.strip()})")

    with JackServer() as jack, Engine(paths, jack, ["--restart-limit", "1000"]) as engine:
        wait_until(lambda: "spare ready" in engine.log(), 5, "the standby")
        time.sleep(0.2)
        code, s = status_json(paths, engine.instance)
        check(code == 0 and s["health"] == "healthy", f"healthy engine: exit code 0 ({s['health']} {s['health_reason']})")
        for key in ("instance", "sample_rate", "frames_per_buffer", "osc", "latency_samples", "supervisor", "workers", "params"):
            check(key in s, f"field {key} present")
        for key in ("received", "applied", "rejected", "dropped", "coalesced"):
            check(key in s["osc"], f"osc.{key} present")
        for key in ("p50", "p95", "p99", "max"):
            check(key in s["latency_samples"], f"latency_samples.{key} present")
        for key in ("pid", "crash_count", "replacements", "spare_ready", "failover_time_ms", "rebuild_time_ms", "shm_leaks"):
            check(key in s["supervisor"], f"supervisor.{key} present")
        for worker in s["workers"]:
            for key in ("slot", "pid", "role", "state", "callbacks", "xruns", "cpu_load", "heartbeat_age_ms"):
                check(key in worker, f"workers[{worker['slot']}].{key} present")
        check(s["instance"] == engine.instance and s["sample_rate"] == 48000 and s["frames_per_buffer"] == 64,
              "instance, rate and period as started")
        check(sorted(w["role"] for w in s["workers"]) == ["active", "output", "output-standby", "standby"],
              "roles: active, standby, output, output-standby")
        check(s["supervisor"]["spare_ready"] is True and s["supervisor"]["pid"] == engine.process.pid,
              "the spare is ready and sustaind's pid is right")

        for value in (0.1, 0.2, 0.3, 0.4, 0.45):
            engine.send("/engine/gain", ("f", value))
        engine.send("/engine/voice/1/freq", ("f", 660))
        engine.send("/engine/gain", ("s", "loud"))
        engine.send("/engine/gain", ("f", 7))
        time.sleep(0.3)
        code, s = status_json(paths, engine.instance)
        check(s["osc"]["received"] == 8, f"8 messages received ({s['osc']['received']})")
        check(s["osc"]["rejected"] == 2 and s["osc"]["rejected_by_reason"]["bad_type"] == 1 and
              s["osc"]["rejected_by_reason"]["out_of_range"] == 1, "2 rejected: one bad type, one out of range")
        check(s["osc"]["applied"] + s["osc"]["coalesced"] >= 6, "the 6 good ones applied or coalesced")
        check(abs(s["params"]["master_gain"] - 0.45) < 1e-6, f"master gain is the last value sent ({s['params']['master_gain']})")
        check(abs(s["params"]["voices"][1]["freq"] - 660) < 1e-6, "voice 1 at 660 Hz")
        check(s["latency_samples"]["p99"] > 0 and s["latency_samples"]["max"] <= 4096, "latency figures filled in")

        # OSC round trips with a liblo client.
        replies = query(paths, engine, "/engine/ping")
        check([r["path"] for r in replies] == ["/engine/pong"], "/engine/ping answers /engine/pong")
        replies = query(paths, engine, "/engine/status")
        check(len(replies) == 1 and replies[0]["path"] == "/engine/status.reply" and replies[0]["types"] == "iiiiiiiff",
              "/engine/status answers /engine/status.reply with 9 figures")
        check(replies[0]["args"][1] == 1 and replies[0]["args"][4] >= 8, "status reply: spare ready, received count")
        listener = subprocess.Popen([paths.osc_query, "--port", str(engine.port), "--listen-ms", "3000", "/engine/notify", "1"],
                                    stdout=subprocess.PIPE, text=True)
        time.sleep(0.4)
        engine.send("/engine/gain", ("f", 0.35))
        before = engine.log().count("spare ready")
        os.kill(active_worker(engine), signal.SIGKILL)
        wait_until(lambda: engine.log().count("spare ready") > before, 5, "the replacement")
        out, _ = listener.communicate(timeout=10)
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        paths_seen = [e["path"] for e in events]
        check(paths_seen[0] == "/engine/notify" and events[0]["args"] == [1], "/engine/notify 1 is confirmed")
        check({"path": "/engine/gain", "types": "f", "args": [0.3499999940395355]} in events,
              "a subscriber hears the parameter change (same address and value)")
        check(any(e["path"] == "/engine/event" and e["args"][0] == "failover" for e in events),
              "a subscriber hears the failover event")

        # The status after the kill.
        time.sleep(0.2)
        code, s = status_json(paths, engine.instance)
        check(s["supervisor"]["crash_count"] >= 1 and s["supervisor"]["replacements"] >= 1 and
              s["supervisor"]["failover_time_ms"]["max"] > 0, "the kill shows: crash count, replacement, failover time")
        check(s["supervisor"]["rebuild_time_ms"]["last"] > 0, "rebuild time measured")

        # sustaind and a worker stopped: the monitor still answers, with stale heartbeats.
        standby = [w for w in s["workers"] if w["role"] == "standby"][0]["pid"]
        os.kill(engine.process.pid, signal.SIGSTOP)
        os.kill(standby, signal.SIGSTOP)
        time.sleep(0.4)
        started = time.monotonic()
        code, s = status_json(paths, engine.instance)
        elapsed = time.monotonic() - started
        os.kill(standby, signal.SIGCONT)
        os.kill(engine.process.pid, signal.SIGCONT)
        check(elapsed < 1.0, f"the monitor answers while sustaind is stopped ({elapsed * 1000:.0f} ms)")
        stopped = [w for w in s["workers"] if w["pid"] == standby][0]
        check(stopped["heartbeat_age_ms"] > 300, f"the stopped worker's heartbeat is stale ({stopped['heartbeat_age_ms']:.0f} ms)")
        check(s["supervisor"]["heartbeat_age_ms"] > 300, "sustaind's stale heartbeat is visible")
        check(code == 1, f"degraded while sustaind does not respond (exit code {code})")
        wait_until(lambda: status_json(paths, engine.instance)[0] == 0, 10, "healthy again")

        # The live view in a real terminal.
        if not paths.features["live_view"]:
            print("SKIPPED the live view: this build has none (meson -Dlive_view=disabled)", flush=True)
        elif shutil.which("tmux"):
            session = f"sustain-status-{os.getpid()}"
            subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "32",
                            f"{paths.status} --instance {engine.instance} --interval 0.1"], check=True)
            try:
                time.sleep(0.8)
                screen = subprocess.run(["tmux", "capture-pane", "-pt", session], capture_output=True, text=True).stdout
                check("healthy" in screen and "worker" in screen and "latency" in screen and "master gain" in screen,
                      "live view shows health, workers, latency and parameters")
                subprocess.run(["tmux", "resize-window", "-t", session, "-x", "90", "-y", "40"], check=True)
                time.sleep(0.5)
                screen = subprocess.run(["tmux", "capture-pane", "-pt", session], capture_output=True, text=True).stdout
                check("supervisor" in screen, "live view survives a resize")
                subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
                wait_until(lambda: subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0,
                           3, "q to quit the live view")
                check(True, "q quits the live view")
            finally:
                subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        else:
            raise TestFailure("tmux is not installed (tools/test installs it)")
        check(engine.stop() == 0, "sustaind stops cleanly")

    # Degraded: the standby killed while restarts back off (restart limit 0).
    with JackServer() as jack, Engine(paths, jack, ["--restart-limit", "0", "--restart-window", "30"]) as engine:
        wait_until(lambda: "spare ready" in engine.log(), 5, "the standby")
        time.sleep(0.2)
        s = status_json(paths, engine.instance)[1]
        standby = [w for w in s["workers"] if w["role"] == "standby"][0]["pid"]
        os.kill(standby, signal.SIGKILL)
        wait_until(lambda: "crash loop" in engine.log(), 5, "the backoff")
        code, s = status_json(paths, engine.instance)
        check(code == 1 and s["supervisor"]["spare_ready"] is False, f"degraded without a spare: exit code 1 ({s['health_reason']})")
        code, out, _ = status(paths, engine.instance, "--once")
        check(code == 1 and "degraded" in out, "the text report says degraded too")
        check(engine.stop() == 0, "sustaind stops cleanly")

    # Across replacements (the active killed, then both workers: a cold start), polled as
    # fast as the monitor answers: a pid is never 0, a slot without a process says
    # "replacing" with pid null, at most one worker is active and the active's pid is a
    # process that ran, the counters never go back.
    with JackServer() as jack, Engine(paths, jack, ["--restart-limit", "1000"]) as engine:
        wait_until(lambda: "spare ready" in engine.log(), 5, "the standby")
        seen, problems, replacing, last = set(), [], 0, {}

        def poll(seconds):
            nonlocal replacing
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                s = status_json(paths, engine.instance)[1]
                for w in s["workers"]:
                    if w["pid"] == 0:
                        problems.append(f"pid 0: {w}")
                    if w["pid"] is None:
                        replacing += 1
                        if w["state"] != "replacing":
                            problems.append(f"pid null but state {w['state']}")
                actives = [w["pid"] for w in s["workers"] if w["role"] == "active" and w["pid"]]
                if len(actives) > 1:
                    problems.append(f"{len(actives)} active workers: {actives}")
                seen.update(actives)
                for key in ("failovers", "crash_count", "replacements"):
                    if s["supervisor"][key] < last.get(key, 0):
                        problems.append(f"{key} went back")
                    last[key] = s["supervisor"][key]
        for _ in range(3):
            os.kill(active_worker(engine), signal.SIGKILL)
            poll(0.4)
        for pid in engine.worker_pids()[-2:]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone: sustaind replaces it on its own
        poll(1.0)
        check(not problems, f"status consistent across replacements: {problems[:5]}")
        started = set(engine.worker_pids())
        check(seen <= started, f"every pid shown as active is a worker sustaind started ({sorted(seen - started)})")
        print(f"{replacing} worker rows seen as replacing (pid null)", flush=True)
        check(engine.stop() == 0, "sustaind stops cleanly")


if __name__ == "__main__":
    main(test)
