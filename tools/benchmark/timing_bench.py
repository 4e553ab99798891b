"""Timed bundles and feedback (run through tools/bench-timing):

- accuracy: --bundles timed bundles per run, each bringing a tone in from silence 60 ms
  after it is sent (and a second timed bundle taking it out again 15 ms later); the
  recorder knows when JACK began each recorded cycle, so each onset has a heard time (the
  reported output latency added); error = heard - requested, in samples, p50/p99/max per run
  and pooled (target: p99 within 1 sample);
- feedback fan-out: latency p99 (OSC receive -> applied, samples) and xruns under a 10,000
  messages/s flood, with 8 clients subscribed with /engine/notify and with none, alternating,
  --runs times each (target: no change).
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
from harness import Engine, JackServer, Paths, Recording, onsets, wait_until  # noqa: E402
from figures import percentile  # noqa: E402
from osc_wire import bundle, message, realtime_minus_monotonic_ns, timetag_of_unix_ns  # noqa: E402

RATE = 48000
PERIOD = 64
TRIAL_S = 0.08
AHEAD_S = 0.06


def summary(values):
    """Signed percentiles say which way it errs; those of the absolute error how far."""
    absolute = [abs(v) for v in values]
    return {"count": len(values), "p1": percentile(values, 1), "p50": percentile(values, 50),
            "p99": percentile(values, 99), "abs_p50": percentile(absolute, 50), "abs_p95": percentile(absolute, 95),
            "abs_p99": percentile(absolute, 99), "max_abs": max(absolute), "mean": statistics.mean(values)}


def accuracy_run(paths, bundles):
    with JackServer() as jack, Engine(paths, jack) as engine:
        wait_until(lambda: engine.status()[1]["timing"]["frame_clock"], 5, "the frame clock")
        latency = engine.status()[1]["timing"]["output_latency_frames"]
        offset = realtime_minus_monotonic_ns()
        requested = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, \
                Recording(paths, jack, seconds=bundles * TRIAL_S + 1.0, cycle_times=True) as recording:
            start = time.monotonic()
            for i in range(bundles):
                # Spread the requested times over the samples of a period.
                on = time.clock_gettime_ns(time.CLOCK_REALTIME) + int(AHEAD_S * 1e9) + (i * 7919) % 1_333_333
                sock.sendto(bundle(message("/engine/gain", "f", 0.5), timetag=timetag_of_unix_ns(on)),
                            ("127.0.0.1", engine.port))
                sock.sendto(bundle(message("/engine/gain", "f", 0.0), timetag=timetag_of_unix_ns(on + 15_000_000)),
                            ("127.0.0.1", engine.port))
                requested.append(on - offset)
                next_at = start + (i + 1) * TRIAL_S
                time.sleep(max(0.0, next_at - time.monotonic()))
            recording.finish()
            found = onsets(recording.samples())
            heard = [recording.monotonic_ns_at(i - PERIOD) + latency * 1e9 / RATE for i in found]
        errors, missing = [], 0
        for due in requested:
            nearest = min(heard, key=lambda h: abs(h - due), default=None)
            if nearest is None or abs(nearest - due) > 0.02e9:
                missing += 1
                continue
            errors.append((nearest - due) * RATE / 1e9)
        s = engine.status()[1]["timing"]
        return {"errors": errors, "missing": missing, "late": s["late"], "applied_on_time": s["applied_on_time"],
                "output_latency_frames": latency, "frame_clock_source": s["frame_clock_source"],
                "xruns_reported_by_recorder": recording.summary.get("xruns", 0)}


def fanout_window(paths, subscribers, seconds):
    with JackServer() as jack, Engine(paths, jack) as engine:
        clients = []
        for _ in range(subscribers):
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.bind(("127.0.0.1", 0))
            c.setblocking(False)
            c.sendto(message("/engine/notify", "i", 1), ("127.0.0.1", engine.port))
            clients.append(c)
        time.sleep(0.5)
        before = engine.status()[1]
        xruns_before = sum(w["xruns"] for w in before["workers"] if w["role"] == "active")
        flood = subprocess.Popen([paths.osc_flood, "--port", str(engine.port), "--rate", "10000", "--seconds",
                                  str(seconds), "--address", "/engine/freq", "--values", "440,441", "--final", "442"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        received = 0
        while flood.poll() is None:
            for c in clients:
                while True:
                    try:
                        c.recv(65536)
                        received += 1
                    except BlockingIOError:
                        break
            time.sleep(0.005)
        time.sleep(0.3)
        after = engine.status()[1]
        xruns_after = sum(w["xruns"] for w in after["workers"] if w["role"] == "active")
        for c in clients:
            c.close()
        return {"subscribers": subscribers, "latency_p99_samples": after["latency_samples"]["p99"],
                "latency_p50_samples": after["latency_samples"]["p50"], "xruns": xruns_after - xruns_before,
                "feedback_messages_received": received, "flood_ok": flood.wait() == 0,
                "replies_sent": after["osc"]["replies_sent"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bundles", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    paths = Paths([None, args.build])

    runs, pooled = [], []
    for run in range(args.runs):
        result = accuracy_run(paths, args.bundles)
        pooled += result["errors"]
        result["summary"] = summary(result["errors"]) if result["errors"] else None
        print(f"accuracy run {run + 1}: {json.dumps(result['summary'])} missing {result['missing']} late "
              f"{result['late']} (latency {result['output_latency_frames']} frames, clock "
              f"{result['frame_clock_source']})", flush=True)
        # Every bundle's error is kept (to a thousandth of a sample) for the histogram in tools/report.
        result["errors"] = [round(e, 3) for e in result["errors"]]
        runs.append(result)
    accuracy = {"runs": runs, "pooled": summary(pooled) if pooled else None,
                "within_1_sample": sum(1 for e in pooled if abs(e) <= 1.0) / len(pooled) if pooled else 0}
    print(f"accuracy pooled over {len(pooled)} bundles (samples, heard - requested): {json.dumps(accuracy['pooled'])}, "
          f"{100 * accuracy['within_1_sample']:.1f} % within 1 sample", flush=True)

    fanout = []
    for run in range(args.runs):
        for subscribers in (0, 8):
            window = fanout_window(paths, subscribers, args.seconds)
            print(f"fan-out run {run + 1}, {subscribers} subscribers: {json.dumps(window)}", flush=True)
            fanout.append(window)

    def med(subscribers, key):
        return statistics.median(w[key] for w in fanout if w["subscribers"] == subscribers)

    fanout_summary = {f"{n}_subscribers": {"latency_p99_samples_median": med(n, "latency_p99_samples"),
                                             "xruns_median": med(n, "xruns")} for n in (0, 8)}
    print(f"fan-out medians: {json.dumps(fanout_summary)}", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"benchmark": "timing", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "parameters": {k: v for k, v in vars(args).items() if k not in ("build", "out")},
                   "accuracy": accuracy, "fanout": fanout, "fanout_summary": fanout_summary}, f, indent=2)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
