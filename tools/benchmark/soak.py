"""The soak (run through tools/soak): the engine under a mixed OSC load with periodic faults
(kills, hangs and crashes of the active worker, kills of the standby) for a long time,
judged at the driver's own output. Reports:
- xruns, against the machine's own rate (measured first on the same JACK server with only
  the recorder on it), split into those around an injected fault and the rest;
- damaged samples, at JACK-reported xruns and elsewhere;
- RSS and fd count over time of sustaind and of the output stages (they live the whole
  run, so they must be flat; workers are replaced at every fault and sampled too);
- leaks at the end: shared-memory segments left behind and, in a sanitizer build
  (tools/soak --sanitize address,undefined), LeakSanitizer's reports from every process
  that exited normally (sustaind, the output stages, the last workers).
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

RATE = 48000
FAULT_WINDOW_S = (0.5, 2.0)  # xruns this long before / after a fault count as the fault's


def process_sample(pid):
    """RSS and open fds of one process, or None when it exited meanwhile (a fault replaced it)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return {"rss_kb": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}
    except (OSError, StopIteration):
        return None


def status_of(paths, engine):
    out = subprocess.run([paths.status, "--instance", engine.instance, "--json", "--once"],
                         capture_output=True, text=True, timeout=10)
    return json.loads(out.stdout)


def sample_processes(paths, engine, t_s):
    """One sample: sustaind and every process the status lists, by role."""
    entry = {"t_s": round(t_s, 1), "sustaind_pid": engine.process.pid, "sustaind": process_sample(engine.process.pid),
             "processes": []}
    try:
        workers = status_of(paths, engine)["workers"]
    except (ValueError, KeyError, subprocess.TimeoutExpired):
        workers = []
    for w in workers:
        if w.get("pid"):
            measured = process_sample(w["pid"])
            if measured:
                entry["processes"].append({"pid": w["pid"], "role": w["role"], "kind": w.get("kind", ""), **measured})
    return entry


def long_lived(samples):
    """Processes present in the first and the last sample (sustaind, the output stages):
    {name: {"rss_kb": [first, last], "fds": [first, last]}}."""
    def by_pid(entry):
        found = {entry["sustaind_pid"]: ("sustaind", entry["sustaind"])} if entry["sustaind"] else {}
        for p in entry["processes"]:
            found[p["pid"]] = (f"{p['kind']} {p['role']} (pid {p['pid']})".strip(), p)
        return found
    first, last = by_pid(samples[0]), by_pid(samples[-1])
    return {last[pid][0]: {"rss_kb": [a["rss_kb"], last[pid][1]["rss_kb"]], "fds": [a["fds"], last[pid][1]["fds"]]}
            for pid, (_, a) in first.items() if pid in last}


def machine_baseline(paths, jack, minutes):
    """Xruns JACK reports with only the recorder on the server: this machine's own rate."""
    with Recording(paths, jack, seconds=minutes * 60) as recording:
        summary = recording.finish()
    distinct = len(set(summary.get("xrun_frames", [])))
    return {"minutes": minutes, "xruns": distinct, "xruns_per_minute": round(distinct / minutes, 2)}


def inject(paths, engine, kind, report):
    before = engine.log().count("spare ready")
    try:
        if kind == "standby":
            target = [w["pid"] for w in status_of(paths, engine)["workers"] if w["role"] == "standby"][0]
            os.kill(target, signal.SIGKILL)
        else:
            os.kill(active_worker(engine.log()), {"kill": signal.SIGKILL, "hang": signal.SIGSTOP, "crash": signal.SIGUSR1}[kind])
        wait_until(lambda: engine.log().count("spare ready") > before, 10, "the replacement")
    except (TestFailure, IndexError, ProcessLookupError, ValueError) as error:
        report.setdefault("fault_problems", []).append(f"{kind}: {error}")


def soak_engine(paths, jack, args, report):
    """The engine under load and faults for args.minutes; fills report."""
    seconds = args.minutes * 60
    rng = random.Random(1)
    env = {"LD_PRELOAD": paths.fault_injector}
    with Engine(paths, jack, ["--restart-limit", "100000", "--gain", "0.5"], env_extra=env) as engine:
        wait_until(lambda: "spare ready" in engine.log(), 10, "the standby")
        time.sleep(1.0)
        # Mixed OSC load for the whole run: gains and frequencies at 500 msg/s, the final value known.
        flood = subprocess.Popen([paths.osc_flood, "--port", str(engine.port), "--rate", "500", "--seconds", str(seconds),
                                  "--address", "/engine/voice/1/gain", "--values", "0,0", "--final", "0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with Recording(paths, jack, seconds=seconds + 2) as recording:
            started = time.monotonic()
            next_fault, next_sample = started + args.fault_every, started
            while time.monotonic() - started < seconds:
                now = time.monotonic()
                if now >= next_sample:
                    report["samples"].append(sample_processes(paths, engine, now - started))
                    next_sample += 10
                if now >= next_fault:
                    kind = rng.choice(["kill", "hang", "crash", "standby"])
                    inject(paths, engine, kind, report)
                    report["faults"].append({"t_s": round(now - started, 1), "kind": kind})
                    next_fault += args.fault_every
                time.sleep(0.05)
            report["samples"].append(sample_processes(paths, engine, time.monotonic() - started))
            flood.wait()
            recording.finish()
            judge_recording(recording, report, seconds)
        status = status_of(paths, engine)
        report["final_status"] = {k: status.get(k) for k in ("osc", "supervisor", "output")}
        report["engine_exit"] = engine.stop()


def judge_recording(recording, report, seconds):
    analysis = recording.analyze("--gap-min", "16")
    engine_damage, machine_damage = recording.split_damage(analysis)
    at_xruns = [e for e in machine_damage if e["cause"] == "xrun"]
    at_jumps = [e for e in machine_damage if e["cause"] == "recording"]
    at_late_wakes = [e for e in machine_damage if e["cause"] == "late_wake"]
    # An injected fault changes JACK's graph (a client leaves, its replacement joins), and
    # JACK reports xruns around graph changes; anything else is an xrun of quiet running.
    windows = [((f["t_s"] - FAULT_WINDOW_S[0]) * RATE, (f["t_s"] + FAULT_WINDOW_S[1]) * RATE) for f in report["faults"]]
    xrun_frames = sorted(set(recording.summary.get("xrun_frames", [])))
    outside = [x for x in xrun_frames if not any(a <= x <= b for a, b in windows)]
    # Seconds of quiet running (outside every fault window), to compare with the baseline rate.
    covered, last_end = 0.0, 0.0
    for a, b in sorted((max(a, 0) / RATE, min(b / RATE, seconds)) for a, b in windows):
        a = max(a, last_end)
        if b > a:
            covered += b - a
            last_end = b
    quiet_s = max(seconds - covered, 0.0)

    def samples_of(events):
        """Damaged plus silent samples, as the analyzer counts them."""
        return sum(e["damaged"] + e["gap_samples"] for e in events)
    report["xrun_positions_lost"] = recording.summary.get("xrun_positions_lost", 0)
    report["recording"] = {"xruns": len(xrun_frames), "xruns_outside_faults": len(outside),
                           "quiet_minutes": round(quiet_s / 60, 2),
                           "xruns_outside_faults_per_minute": round(len(outside) / (quiet_s / 60), 2) if quiet_s else None,
                           "xruns_outside_faults_s": [round(x / RATE, 3) for x in outside],
                           "recording_cycle_jumps": len(recording.summary.get("cycle_jumps", [])),
                           "damage_events_engine": engine_damage, "damage_events_at_jack_xruns": at_xruns,
                           "damage_events_at_recording_jumps": at_jumps,
                           "driver_late_wakes": len(recording.late_wakes()),
                           "damage_events_at_driver_late_wakes": at_late_wakes,
                           "damaged_samples_at_driver_late_wakes": samples_of(at_late_wakes),
                           "damaged_samples_engine": samples_of(engine_damage),
                           "damaged_samples_at_xruns": samples_of(at_xruns),
                           "damaged_samples_at_recording_jumps": samples_of(at_jumps)}


def sanitizer_findings(reports_dir):
    """(leak reports, other reports) a sanitizer wrote during the run."""
    leaks, other = [], []
    for name in sorted(os.listdir(reports_dir)):
        with open(os.path.join(reports_dir, name), errors="replace") as f:
            text = f.read()
        (leaks if "LeakSanitizer" in text else other).append({"file": name, "head": text[:2000]})
    return leaks, other


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--fault-every", type=float, default=5.0, help="seconds between faults")
    parser.add_argument("--baseline-minutes", type=float, default=2.0,
                        help="minutes of the bare JACK server with only the recorder first (0: none)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    paths = Paths([None, args.build])
    reports_dir = os.environ.get("SUSTAIN_SANITIZER_REPORTS")
    shm_before = sorted(n for n in os.listdir("/dev/shm") if n.startswith("sustain-"))
    report = {"benchmark": "soak", "minutes": args.minutes, "fault_every_s": args.fault_every,
              "sanitizer": os.environ.get("SUSTAIN_SANITIZER", ""),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "samples": [], "faults": []}
    with JackServer() as jack:
        if args.baseline_minutes > 0:
            print(f"soak: first {args.baseline_minutes:g} min of the bare JACK server (this machine's own xruns)", flush=True)
            report["baseline"] = machine_baseline(paths, jack, args.baseline_minutes)
        print(f"soak: {args.minutes:g} min of the engine under load and faults", flush=True)
        soak_engine(paths, jack, args, report)
    shm_after = sorted(n for n in os.listdir("/dev/shm") if n.startswith("sustain-"))
    report["leaked_segments"] = [n for n in shm_after if n not in shm_before]
    if reports_dir:
        leaks, other = sanitizer_findings(reports_dir)
        report["leak_reports"], report["other_sanitizer_reports"] = leaks, other
    report["long_lived"] = long_lived(report["samples"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print_summary(report, args)


def print_summary(report, args):
    r = report["recording"]
    kinds = {k: sum(1 for f in report["faults"] if f["kind"] == k) for k in ("kill", "hang", "crash", "standby")}
    print(f"soak: {args.minutes:g} min, 500 msg/s, {len(report['faults'])} faults {kinds}"
          + (f", {report['sanitizer']} build" if report["sanitizer"] else ""))
    print(f"  damaged or silent samples: {r['damaged_samples_engine']} in {len(r['damage_events_engine'])} events "
          f"the engine answers for, {r['damaged_samples_at_xruns']} in "
          f"{len(r['damage_events_at_jack_xruns'])} events at JACK-reported xruns, "
          f"{r['damaged_samples_at_recording_jumps']} in {len(r['damage_events_at_recording_jumps'])} events at "
          f"the recording's {r['recording_cycle_jumps']} cycle jumps, "
          f"{r['damaged_samples_at_driver_late_wakes']} in {len(r['damage_events_at_driver_late_wakes'])} events "
          f"at the {r['driver_late_wakes']} cycles the driver began a period late")
    if recording_lost := report.get("xrun_positions_lost"):
        print(f"  (the recorder lost the positions of {recording_lost} xruns)")
    print(f"  xruns: {r['xruns']}, {r['xruns_outside_faults']} of them outside the "
          f"{sum(FAULT_WINDOW_S):g} s around a fault ({r['xruns_outside_faults_per_minute']}/min over "
          f"{r['quiet_minutes']} quiet min)")
    if "baseline" in report:
        b = report["baseline"]
        print(f"  the bare JACK server alone: {b['xruns']} xruns in {b['minutes']:g} min ({b['xruns_per_minute']}/min)")
    for name, g in report["long_lived"].items():
        print(f"  {name}: RSS {g['rss_kb'][0]} -> {g['rss_kb'][1]} kB (growth {g['rss_kb'][1] - g['rss_kb'][0]} kB), "
              f"fds {g['fds'][0]} -> {g['fds'][1]}")
    output = report["final_status"].get("output") or {}
    if output:
        print(f"  output stages: {output.get('takeovers')} takeovers (the standby stage played on when JACK "
              f"skipped the playing one twice), {output.get('unfilled_blocks')} unfilled blocks, "
              f"{output.get('standby_blocks_identical')} of {output.get('standby_blocks_compared')} compared blocks identical")
    workers = [p for s in report["samples"] for p in s["processes"] if p["role"] in ("active", "standby")]
    if workers:
        print(f"  workers (replaced at faults): RSS at most {max(p['rss_kb'] for p in workers)} kB, "
              f"fds {min(p['fds'] for p in workers)}..{max(p['fds'] for p in workers)}")
    print(f"  leaked segments: {len(report['leaked_segments'])}; sustaind exit {report['engine_exit']}; "
          f"fault problems: {report.get('fault_problems', [])}")
    if "leak_reports" in report:
        print(f"  LeakSanitizer reports: {len(report['leak_reports'])}; other sanitizer reports: "
              f"{len(report['other_sanitizer_reports'])}")
    print(f"all figures: {args.out}")


if __name__ == "__main__":
    main()
