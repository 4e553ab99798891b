"""The failover benchmark: each fault repeated many times per layout, judged at the
driver's own output (system:monitor_1). Run through tools/bench-failover.

For each layout and fault it reports p50, p99 and max of: damaged samples at the output
(damaged plus silent samples of the damage event that follows the fault; 0 when there is
none), detection latency (last heartbeat of the failed worker -> sustaind noticed),
failover time (noticed -> standby made active), rebuild time (replacement started ->
renders in step). For the relay layout also the latency it adds: output callback start
minus the start of the callback that rendered the block it plays, from the output stage's
trace.

Each fault's damage is reported twice: in its window (0.5 s around it, all the damage near
it) and in its span (--span-ms, 150 by default: from a period before the signal, placed
exactly in the recording by JACK's cycle times, to that long after it). Windows with nothing
injected ("none") get both too: the machine's own damage in a span as long is the
background a fault's figures are read against.

With --target output (relay layout) the faults go to the output stage that plays instead,
a process in JACK's mix (SIGKILL, and SIGSEGV inside its callback): the damage is what the
stage that takes over could not silence (docs/failover.md), and every recording is checked
for a sample louder than the tone's own peak (a stale buffer left beside the new one would be one).
"""
import argparse
import json
import os
import re
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
from harness import (active_worker_in_status, Engine, JackServer, Paths, Recording, TestFailure,  # noqa: E402
                     playing_output_stage, wait_until)
from figures import percentile  # noqa: E402

FAULTS = {
    "kill": signal.SIGKILL,        # the active worker is killed
    "hang": signal.SIGSTOP,        # the active worker stops (a hang)
    "crash": signal.SIGUSR1,       # SIGSEGV inside the audio callback (fault injector)
}


# Damage JACK's own timing explains exactly and no fault causes: the driver waking a period
# or more late, and the recorder's own cycle jumps (a one-client sine is damaged there too).
TIMING_CAUSES = ("late_wake", "recording")


def summary(values):
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values) if values else None}




def measure_batch(paths, jack, engine, into, how, count, interval, target, exclusive, ready_marker, counter,
                  failovers_per_fault, slow_rebuilds, louder, name, span_s):
    """One recording with `count` faults of one kind (`how`: a signal, or None for a window
    with nothing injected), each judged in its own window; appends to the lists in `into`."""
    with Recording(paths, jack, seconds=0.4 + interval * count + 0.3) as recording:
        started = time.monotonic()
        time.sleep(0.3)
        times = []
        signalled_ns = []  # CLOCK_MONOTONIC when the signal was sent (or would have been)
        for _ in range(count):
            times.append(time.monotonic() - started)
            signalled_ns.append(time.monotonic_ns())
            if how is not None:
                before = engine.log().count(ready_marker)
                victim = playing_output_stage(engine)[1] if target == "output" else active_worker_in_status(engine)
                failovers_before = engine.status()[1]["supervisor"][counter]
                times[-1] = time.monotonic() - started
                signalled_ns[-1] = time.monotonic_ns()
                os.kill(victim, how)
                # Judged by the status (the log can lag behind it); an exclusive-device
                # standby has no stream, and its log line says it is attached.
                if exclusive:
                    ready = lambda: engine.log().count(ready_marker) > before  # noqa: E731
                else:
                    ready = lambda: spare_ready(engine, victim, "output" if target == "output" else "worker")  # noqa: E731
                try:
                    wait_until(ready, 5, "the replacement")
                except TestFailure:
                    # Reported, not fatal: the next fault waits for a spare again.
                    slow_rebuilds.append(name)
                    wait_until(ready, 30, "the replacement")
                failovers_per_fault.append(engine.status()[1]["supervisor"][counter] - failovers_before)
            time.sleep(max(0.0, interval - (time.monotonic() - started - times[-1])))
        recording.finish()
        report = recording.analyze("--gap-min", "16")
        samples = recording.samples()
        peak = max(abs(v) for v in samples[:int(0.25 * 48000)])
        louder.append(sum(1 for v in samples if abs(v) > peak * 1.001))
        # Inside the recording's lifetime: its cycle times (late driver wake-ups, the place
        # of each signal) go with its directory.
        engine_events, machine_events = recording.split_damage(report)
        signalled_at = [recording.index_at_monotonic_ns(ns) for ns in signalled_ns]
    rate, period = 48000, jack.frames
    for at in signalled_at:
        # The fault's own span, placed exactly in the recording by JACK's cycle times: from
        # a period before the signal to span_s after it (the stale buffer, the takeover,
        # jackd dropping the dead client, the replacement joining the graph). Damage of the
        # machine's elsewhere in the window does not count against the fault here.
        inside = [e for e in engine_events + machine_events
                  if at - period <= e["start_s"] * rate <= at + span_s * rate
                  and e.get("cause") not in TIMING_CAUSES]
        into["span"].append(sum(e["damaged"] + e["gap_samples"] for e in inside))
    for t in times:
        # The span of each damage event near the fault, first to last bad sample
        # (every sample in between is wrong while a stale buffer is mixed in).
        near = [e for e in engine_events if t - 0.15 <= e["start_s"] <= t + interval - 0.15]
        into["damage"].append(sum(round((e["end_s"] - e["start_s"]) * 48000) + 1 for e in near))
        at_xrun = [e for e in machine_events if t - 0.15 <= e["start_s"] <= t + interval - 0.15]
        into["xrun"].append(sum(round((e["end_s"] - e["start_s"]) * 48000) + 1 for e in at_xrun))
        # The damaged and silent samples themselves, whoever answers for them (a
        # span counts the clean samples between a takeover and the switch back too).
        into["counted"].append(sum(e["damaged"] + e["gap_samples"] for e in near + at_xrun))
        # The same without the damage of JACK's own timing (TIMING_CAUSES).
        into["fault"].append(sum(e["damaged"] + e["gap_samples"] for e in near + at_xrun
                                 if e.get("cause") not in TIMING_CAUSES))


LAYOUT_ARGS = {
    "relay": ["--layout", "relay"],
    "direct": ["--layout", "direct"],
    # a device one process must own: the standby opens it only when promoted
    "exclusive": ["--layout", "direct", "--exclusive-device"],
}


OUTPUT_FAULTS = {"kill": signal.SIGKILL, "crash": signal.SIGUSR1}


def spare_ready(engine, failed_pid, kind):
    """The spare of `kind` ("worker" or "output") is warm again and the faulted process gone."""
    status = engine.status()[1]
    roles = ("output", "output-standby") if kind == "output" else ("active", "standby")
    pids = [w["pid"] for w in status["workers"] if w["role"] in roles]
    key = "output_spare_ready" if kind == "output" else "spare_ready"
    return status["supervisor"][key] and failed_pid not in pids


def run_layout(paths, layout, faults_per_kind, batch, target="active", span_s=0.15):
    results = {}
    louder = []
    slow_rebuilds = []
    # Failovers each fault caused (status: worker failovers, or output failovers with
    # --target output), counted from the status before the fault to the status once the
    # replacement is warm: exactly one each, or the log is kept for the record.
    failovers_per_fault = []
    counter = "output_failovers" if target == "output" else "failovers"
    trace_prefix = f"/tmp/sustain-output-trace-{os.getpid()}"
    env = {"LD_PRELOAD": paths.fault_injector, "SUSTAIN_OUTPUT_TRACE": trace_prefix}
    exclusive = layout == "exclusive"
    with JackServer() as jack, Engine(paths, jack, LAYOUT_ARGS[layout] + ["--restart-limit", "100000", "--gain", "0.5"],
                                      env_extra=env) as engine:
        ready_marker = "standby without a stream" if exclusive else "spare ready"
        wait_until(lambda: engine.log().count(ready_marker) >= 1, 10, "the standby")
        failovers_at_start = engine.status()[1]["supervisor"][counter]
        # An exclusive-device fault costs a stream start; a hang there is found only by the
        # wall clock (nothing else renders to count cycles by): kills and crashes only.
        faults = {k: v for k, v in FAULTS.items() if not (exclusive and k == "hang")}
        if target == "output":
            faults = OUTPUT_FAULTS
        interval = 1.0 if exclusive else 0.5
        # The faults' kinds take turns, a batch each, and so does "none": the same windows
        # with nothing injected, the damage this machine makes on its own in a window as
        # long (late driver wake-ups, JACK's xruns), measured in the same run.
        faults = dict(faults, none=None)
        lists = {name: {"damage": [], "xrun": [], "counted": [], "fault": [], "span": []} for name in faults}
        done = 0
        while done < faults_per_kind:
            count = min(batch, faults_per_kind - done)
            for name, how in faults.items():
                measure_batch(paths, jack, engine, lists[name], how, count, interval, target, exclusive, ready_marker,
                              counter, failovers_per_fault, slow_rebuilds, louder, name, span_s)
            done += count
        for name in faults:
            damage, xrun_damage, damaged_count, fault_count = (lists[name][k] for k in ("damage", "xrun", "counted", "fault"))
            results[name] = {"damaged_samples": summary(damage), "per_fault": damage,
                             "damage_at_jack_xruns": summary(xrun_damage), "per_fault_at_xruns": xrun_damage,
                             "damaged_samples_counted": summary(damaged_count), "per_fault_counted": damaged_count,
                             "damaged_samples_of_the_fault": summary(fault_count), "per_fault_of_the_fault": fault_count,
                             "within_one_period": sum(1 for v in fault_count if v <= jack.frames),
                             "damaged_samples_in_fault_span": summary(lists[name]["span"]),
                             "per_fault_in_span": lists[name]["span"],
                             "within_one_period_in_span": sum(1 for v in lists[name]["span"] if v <= jack.frames)}
        # Timings logged by sustaind for every failover and rebuild.
        log = engine.log()
        failover = [int(m) / 1000.0 for m in re.findall(r"switched (\d+) us after", log)]
        rebuild = [float(m) for m in re.findall(r"spare ready \(([0-9.]+) ms after", log)]
        opened = [float(m) for m in re.findall(r"opened the device in ([0-9.]+) ms", log)]
        detection = [int(m) / 1000.0 for m in re.findall(r"detected (\d+) us after", log) if int(m) > 0]
        results["rebuilds_over_5_s"] = slow_rebuilds
        results["faults"] = len(failovers_per_fault)
        results["failovers"] = sum(failovers_per_fault)
        # All of them, also those between the faults' windows (a takeover without a fault).
        results["failovers_in_run"] = engine.status()[1]["supervisor"][counter] - failovers_at_start
        results["faults_without_exactly_one_failover"] = [
            {"fault": i, "failovers": n} for i, n in enumerate(failovers_per_fault) if n != 1]
        if results["faults_without_exactly_one_failover"] or results["failovers_in_run"] != results["faults"]:
            kept = os.path.join(paths.build, "bench", f"failover-{layout}-{target}.log")
            os.makedirs(os.path.dirname(kept), exist_ok=True)
            with open(kept, "w") as f:
                f.write(log)
            results["log_kept"] = kept
        results["samples_louder_than_the_tone"] = sum(louder)
        status = engine.status()[1]
        results["stale_cancellations"] = status["output"]["stale_cancellations"]
        results["stale_cancelled_cycles"] = status["output"]["stale_cancelled_cycles"]
        results["output_takeovers"] = status["output"]["takeovers"]
        results["timings"] = {"failover_ms": summary(failover), "rebuild_ms": summary(rebuild),
                              "detection_ms": summary(detection), "device_open_ms": summary(opened)}
        engine.stop()
        latency, switch_cycles = [], []
        for slot in (0, 1):
            path = f"{trace_prefix}.{slot}"
            if os.path.exists(path):
                last_source, last_active_cycle = None, None
                with open(path) as f:
                    for line in f:
                        fields = line.split()
                        if len(fields) < 9:
                            continue
                        cycle, source = int(fields[0]), fields[2]
                        # A block whose render start was not stamped (0) says nothing of latency.
                        if source in ("0", "1") and int(fields[8]) > 0:
                            latency.append((int(fields[7]) - int(fields[8])) / 1000.0)
                        # Audio-path detection: cycles from the last block played from the
                        # active to the first played from the standby (1 = the very next).
                        if source == "1" and last_source == "0" and last_active_cycle is not None:
                            switch_cycles.append(cycle - last_active_cycle)
                        if source == "0":
                            last_active_cycle = cycle
                        last_source = source
                os.unlink(path)
        if switch_cycles:
            results["audio_path_switch_cycles"] = summary(switch_cycles)
        if latency:
            period_us = 64 / 48000 * 1e6
            results["added_latency_us"] = summary(latency)
            results["added_latency_periods"] = {k: (v / period_us if isinstance(v, float) else v)
                                                for k, v in summary(latency).items()}
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--faults", type=int, default=30)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--layouts", default="relay,direct,exclusive")
    parser.add_argument("--target", choices=("active", "output"), default="active",
                        help="the process faulted: the active worker, or the output stage that plays (relay)")
    parser.add_argument("--span-ms", type=int, default=150,
                        help="the fault's span: damage from a period before the signal to this long after it")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.target == "output":
        args.layouts = "relay"
    paths = Paths([None, args.build])
    report = {"benchmark": "failover", "target": args.target, "faults_per_kind": args.faults, "rate": 48000, "frames": 64,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "nproc": os.cpu_count(), "span_ms": args.span_ms,
              "layouts": {}}
    for layout in args.layouts.split(","):
        print(f"layout {layout}: {args.faults} faults of each kind ...", flush=True)
        report["layouts"][layout] = run_layout(paths, layout, args.faults, args.batch, args.target, args.span_ms / 1000)
    print()
    print(f"failover benchmark ({args.target}), {args.faults} faults per kind and layout, 48 kHz / 64 frames")
    for layout, results in report["layouts"].items():
        print(f"\n  {layout}")
        print(f"    {'fault':8} {'damaged samples p50':>20} {'p99':>8} {'max':>8}   {'at JACK xruns: max':>20} {'faults hit':>10}"
              f"   {'all damage p50':>14} {'p99':>6} {'max':>6}")
        for name in [k for k in dict.fromkeys(list(FAULTS) + list(OUTPUT_FAULTS) + ["none"]) if k in results]:
            d = results[name]["damaged_samples"]
            x = results[name]["damage_at_jack_xruns"]
            hit = sum(1 for v in results[name]["per_fault_at_xruns"] if v)
            total = [a + b for a, b in zip(results[name]["per_fault"], results[name]["per_fault_at_xruns"])]
            results[name]["all_damage"] = summary(total)
            t = results[name]["all_damage"]
            c = results[name]["damaged_samples_counted"]
            print(f"    {name:8} {d['p50']:>20} {d['p99']:>8} {d['max']:>8}   {x['max']:>20} {hit:>10}"
                  f"   {t['p50']:>14} {t['p99']:>6} {t['max']:>6}   (damaged samples themselves, all causes: "
                  f"p50 {c['p50']} p99 {c['p99']} max {c['max']})")
            f = results[name]["damaged_samples_of_the_fault"]
            print(f"    {'':8} damaged samples of the fault (late driver wakes excluded): p50 {f['p50']} p99 {f['p99']} "
                  f"max {f['max']}; within one period {results[name]['within_one_period']} of {f['n']}")
            f = results[name]["damaged_samples_in_fault_span"]
            print(f"    {'':8} in the fault's span only (a period before the signal to {report['span_ms']} ms after): "
                  f"p50 {f['p50']} p99 {f['p99']} max {f['max']}; within one period "
                  f"{results[name]['within_one_period_in_span']} of {f['n']}")
        print(f"    failovers {results['failovers_in_run']} in the run, {results['failovers']} in the faults' windows, for "
              f"{results['faults']} faults; faults without exactly one: "
              f"{results['faults_without_exactly_one_failover'] or 'none'}"
              + (f" (log: {results['log_kept']})" if results.get("log_kept") else ""))
        print(f"    samples louder than the tone's own peak: {results['samples_louder_than_the_tone']}; "
              f"output takeovers {results['output_takeovers']}, stale buffers cancelled {results['stale_cancellations']} "
              f"({results['stale_cancelled_cycles']} cycles)")
        t = results["timings"]
        for key, label in (("detection_ms", "detection"), ("failover_ms", "failover"), ("rebuild_ms", "rebuild"),
                           ("device_open_ms", "dev. open")):
            s = t[key]
            if s["n"]:
                print(f"    {label:10} ms   p50 {s['p50']:.3f}  p99 {s['p99']:.3f}  max {s['max']:.3f}  (n={s['n']})")
        if results.get("rebuilds_over_5_s"):
            print(f"    rebuilds that took over 5 s: {len(results['rebuilds_over_5_s'])} ({results['rebuilds_over_5_s']})")
        if "audio_path_switch_cycles" in results:
            s = results["audio_path_switch_cycles"]
            print(f"    audio-path switch to the standby, cycles after the last active block: p50 {s['p50']}  "
                  f"p99 {s['p99']}  max {s['max']}  (n={s['n']})")
        if "added_latency_periods" in results:
            s = results["added_latency_periods"]
            print(f"    added latency, periods: p50 {s['p50']:.2f}  p99 {s['p99']:.2f}  max {s['max']:.2f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nall figures: {args.out}")


if __name__ == "__main__":
    main()
