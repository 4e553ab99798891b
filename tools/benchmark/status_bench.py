"""The cost of observing (run through tools/bench-status):

- how long one `sustain-status --json --once` takes (fresh process each time: map, read,
  print), p50/p99/max over --calls runs (target under 20 ms);
- the active worker's callback load and the OSC receive -> applied latency p99, under a
  steady 200 messages/s, with and without a live sustain-status (in a real terminal,
  tmux) refreshing 10 times a second, alternating, --runs times each (target: no
  measurable difference).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
from harness import Engine, JackServer, Paths, wait_until  # noqa: E402
from figures import percentile  # noqa: E402


def snapshot(paths, instance):
    out = subprocess.run([paths.status, "--instance", instance, "--json", "--once"], capture_output=True, text=True).stdout
    return json.loads(out)


def measure_window(paths, engine, seconds):
    """Callback load sampled 10 times a second and the latency histogram's p99 of the
    messages sent during the window (200/s)."""
    flood = subprocess.Popen([paths.osc_flood, "--port", str(engine.port), "--rate", "200", "--seconds", str(seconds),
                              "--address", "/engine/freq", "--values", "440,441", "--final", "442"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    loads, peaks = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s = snapshot(paths, engine.instance)
        active = [w for w in s["workers"] if w["role"] == "active"][0]
        loads.append(active["cpu_load"])
        time.sleep(0.1)
    flood.wait()
    s = snapshot(paths, engine.instance)
    return {"load_median": statistics.median(loads), "load_max_sample": max(loads),
            "latency_p99_samples": s["latency_samples"]["p99"], "latency_p50_samples": s["latency_samples"]["p50"],
            "peak_load": max(w["cpu_load_peak"] for w in s["workers"] if w["role"] == "active")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    paths = Paths([None, args.build])
    report = {"benchmark": "status", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "nproc": os.cpu_count(),
              "runs": args.runs, "seconds": args.seconds, "calls": args.calls}
    with JackServer() as jack:
        # (1) one --json --once, a fresh process each time
        with Engine(paths, jack, ["--gain", "0.3"]) as engine:
            wait_until(lambda: "spare ready" in engine.log(), 5, "the standby")
            times = []
            for _ in range(args.calls):
                started = time.perf_counter()
                # The exit code says the health (0 healthy, 1 degraded, 2 down); a moment of
                # "degraded" (a standby being rebuilt) is still an answer, "down" is not.
                done = subprocess.run([paths.status, "--instance", engine.instance, "--json", "--once"],
                                      stdout=subprocess.DEVNULL)
                if done.returncode not in (0, 1):
                    sys.exit(f"sustain-status --json --once answered {done.returncode} (down or no engine)")
                times.append((time.perf_counter() - started) * 1000)
            report["json_once_ms"] = {"p50": percentile(times, 50), "p99": percentile(times, 99), "max": max(times)}
            engine.stop()
        # (2) with and without a live view, alternating, a fresh engine per window
        windows = {"without": [], "with": []}
        for run in range(args.runs):
            for mode in ("without", "with"):
                with Engine(paths, jack, ["--gain", "0.3"]) as engine:
                    wait_until(lambda: "spare ready" in engine.log(), 5, "the standby")
                    session = f"sustain-bench-status-{os.getpid()}"
                    if mode == "with":
                        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "32",
                                        f"{paths.status} --instance {engine.instance} --interval 0.1"], check=True)
                    try:
                        time.sleep(0.5)
                        windows[mode].append(measure_window(paths, engine, args.seconds))
                    finally:
                        if mode == "with":
                            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
                    engine.stop()
                print(f"run {run + 1} {mode:7} live view: {windows[mode][-1]}", flush=True)
        report["windows"] = windows
        for mode in ("without", "with"):
            report[mode] = {
                "load_median": statistics.median(w["load_median"] for w in windows[mode]),
                "latency_p99_samples_median": statistics.median(w["latency_p99_samples"] for w in windows[mode]),
                "peak_load_max": max(w["peak_load"] for w in windows[mode]),
            }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    j = report["json_once_ms"]
    print(f"\nsustain-status --json --once: p50 {j['p50']:.2f} ms, p99 {j['p99']:.2f} ms, max {j['max']:.2f} ms "
          f"({args.calls} calls; target under 20 ms)")
    for mode in ("without", "with"):
        r = report[mode]
        print(f"{mode:7} a live view (10/s): callback load median {r['load_median'] * 100:.2f} %, peak {r['peak_load_max'] * 100:.1f} %, "
              f"latency p99 {r['latency_p99_samples_median']:.0f} samples (median of {args.runs} windows of {args.seconds:.0f} s)")
    print(f"all figures: {args.out}")


if __name__ == "__main__":
    main()
