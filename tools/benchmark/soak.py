"""The soak (run through tools/soak): the engine under a mixed OSC load with periodic faults
(kills, hangs and crashes of the active worker, kills of the standby) for a long time,
judged at the driver's own output. Reports xruns, damaged samples (at JACK-reported xruns
and elsewhere), sustaind's RSS and fd count over time (must be flat), and leaks at the end.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
from harness import active_worker_pid as active_worker, Engine, JackServer, Paths, Recording, TestFailure, wait_until  # noqa: E402


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0




def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--fault-every", type=float, default=5.0, help="seconds between faults")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    paths = Paths([None, args.build])
    seconds = args.minutes * 60
    shm_before = sorted(n for n in os.listdir("/dev/shm") if n.startswith("sustain-"))
    report = {"benchmark": "soak", "minutes": args.minutes, "fault_every_s": args.fault_every,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "samples": [], "faults": []}
    env = {"LD_PRELOAD": paths.fault_injector}
    rng = random.Random(1)
    with JackServer() as jack, Engine(paths, jack, ["--restart-limit", "100000", "--gain", "0.5"], env_extra=env) as engine:
        wait_until(lambda: "spare ready" in engine.log(), 10, "the standby")
        time.sleep(1.0)
        # Mixed OSC load for the whole run: gains and frequencies at 500 msg/s, the final value known.
        flood = subprocess.Popen([paths.osc_flood, "--port", str(engine.port), "--rate", "500", "--seconds", str(seconds),
                                  "--address", "/engine/voice/1/gain", "--values", "0,0", "--final", "0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with Recording(paths, jack, seconds=seconds + 2) as recording:
            started = time.monotonic()
            next_fault = started + args.fault_every
            next_sample = started
            while time.monotonic() - started < seconds:
                now = time.monotonic()
                if now >= next_sample:
                    report["samples"].append({"t_s": round(now - started, 1), "rss_kb": rss_kb(engine.process.pid),
                                              "fds": len(os.listdir(f"/proc/{engine.process.pid}/fd"))})
                    next_sample += 10
                if now >= next_fault:
                    kind = rng.choice(["kill", "hang", "crash", "standby"])
                    before = engine.log().count("spare ready")
                    log = engine.log()
                    active = active_worker(log)
                    try:
                        if kind == "standby":
                            status = json.loads(subprocess.run([paths.status, "--instance", engine.instance, "--json", "--once"],
                                                               capture_output=True, text=True).stdout)
                            target = [w["pid"] for w in status["workers"] if w["role"] == "standby"][0]
                            os.kill(target, signal.SIGKILL)
                        else:
                            os.kill(active, {"kill": signal.SIGKILL, "hang": signal.SIGSTOP, "crash": signal.SIGUSR1}[kind])
                        wait_until(lambda: engine.log().count("spare ready") > before, 10, "the replacement")
                    except (TestFailure, IndexError, ProcessLookupError) as error:
                        report.setdefault("fault_problems", []).append(f"{kind}: {error}")
                    report["faults"].append({"t_s": round(now - started, 1), "kind": kind})
                    next_fault += args.fault_every
                time.sleep(0.05)
            flood.wait()
            recording.finish()
            analysis = recording.analyze("--gap-min", "16")
            engine_damage, machine_damage = recording.split_damage(analysis)
            # An injected fault changes JACK's graph (a client leaves, its replacement joins),
            # and JACK reports xruns around graph changes; anything else is an xrun of quiet
            # running. The window: 0.5 s before a fault to 2 s after it (the rebuild).
            fault_windows = [((f["t_s"] - 0.5) * 48000, (f["t_s"] + 2.0) * 48000) for f in report["faults"]]
            xrun_frames = recording.summary.get("xrun_frames", [])
            outside = [x for x in xrun_frames if not any(a <= x <= b for a, b in fault_windows)]
            report["recording"] = {"xruns": recording.summary["xruns"],
                                   "xruns_outside_faults": len(outside),
                                   "xruns_outside_faults_s": [round(x / 48000, 3) for x in outside],
                                   "damage_events_engine": engine_damage, "damage_events_at_jack_xruns": machine_damage,
                                   "damaged_samples_engine": sum(round((e["end_s"] - e["start_s"]) * 48000) + 1 for e in engine_damage),
                                   "damaged_samples_at_xruns": sum(round((e["end_s"] - e["start_s"]) * 48000) + 1 for e in machine_damage)}
        status = json.loads(subprocess.run([paths.status, "--instance", engine.instance, "--json", "--once"],
                                           capture_output=True, text=True).stdout)
        report["final_status"] = {k: status[k] for k in ("osc", "supervisor")}
        report["engine_exit"] = engine.stop()
    shm_after = sorted(n for n in os.listdir("/dev/shm") if n.startswith("sustain-"))
    report["leaked_segments"] = [n for n in shm_after if n not in shm_before]
    rss = [s["rss_kb"] for s in report["samples"]]
    fds = [s["fds"] for s in report["samples"]]
    report["rss_growth_kb"] = (rss[-1] - rss[0]) if len(rss) > 1 else 0
    report["fd_range"] = [min(fds), max(fds)] if fds else []
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    r = report["recording"]
    kinds = {k: sum(1 for f in report["faults"] if f["kind"] == k) for k in ("kill", "hang", "crash", "standby")}
    print(f"soak: {args.minutes:g} min, 500 msg/s, {len(report['faults'])} faults {kinds}")
    print(f"  damaged samples: {r['damaged_samples_engine']} by the engine, {r['damaged_samples_at_xruns']} at "
          f"{len(r['damage_events_at_jack_xruns'])} JACK-reported xruns; xruns reported to the recorder: {r['xruns']}, "
          f"{r['xruns_outside_faults']} of them outside the 2.5 s around a fault")
    print(f"  sustaind RSS {rss[0] if rss else '?'} -> {rss[-1] if rss else '?'} kB (growth {report['rss_growth_kb']} kB); "
          f"fds {report['fd_range']}")
    print(f"  leaked segments: {len(report['leaked_segments'])}; sustaind exit {report['engine_exit']}; "
          f"fault problems: {report.get('fault_problems', [])}")
    print(f"all figures: {args.out}")


if __name__ == "__main__":
    main()
