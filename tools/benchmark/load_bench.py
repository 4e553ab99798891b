"""Ordinary load is not a fault: sustain and a one-client sine side by side under CPU hogs
(and optionally stress-ng's memory and disk stressors) at normal priority, on one private
JACK dummy server, windows alternating. Run through tools/bench-load.

Per window, the load starts first (a rig's laptop is busy before the engine starts), then a
fresh engine or sine client, then the driver's output (system:monitor_1) is recorded:
- damaged samples per minute (damaged + silent, every cause: the sine's damage is all the
  machine's, so the comparison is of what a listener hears), and the part the recording's
  own analysis does not put down to the machine (Recording.split_damage);
- xruns JACK reported to the recorder, per minute;
- sustain only, from the status, with no fault injected: takeovers (a process declared dead
  or hung: worker failovers, processes killed and replaced; every one is spurious here), and
  apart from them covers (a standby played for a stage JACK ran late, which then plays on as
  the standby: nothing killed, no graph change);
- every thread of the engine (and the sine client): scheduling policy, priority, CPU time
  and time spent runnable but waiting for a CPU (schedstat), per second of the window.
Then a fault phase, sustain only, under the same load: the active worker killed (SIGKILL)
or stopped (SIGSTOP) in turn, one fault per --fault-interval once a spare is warm again;
per fault: failovers, and damaged samples the machine does not explain.

Prints a table and writes JSON.
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
from harness import (Engine, JackServer, Paths, Recording, TestFailure, active_worker_in_status,  # noqa: E402
                     stop_process, wait_until)
from figures import machine, percentile, write_report  # noqa: E402
from peer_bench import process_tree  # noqa: E402

POLICIES = {0: "other", 1: "fifo", 2: "rr", 3: "batch", 5: "idle", 6: "deadline"}
SINE_CLIENT = "sustain-load-sine"


# ---- the load -------------------------------------------------------------------------------

class Load:
    """`hogs` busy loops at normal priority (one per core by default), and with `mixed`
    stress-ng's memory (--vm) and disk (--hdd) stressors beside them."""

    def __init__(self, hogs, mixed):
        self.hogs = hogs
        self.mixed = mixed
        self.processes = []
        self.directory = None

    def __enter__(self):
        for _ in range(self.hogs):
            self.processes.append(subprocess.Popen(["sh", "-c", "while :; do :; done"]))
        if self.mixed:
            self.directory = tempfile.mkdtemp(prefix="sustain-load-")
            self.processes.append(subprocess.Popen(
                ["stress-ng", "--vm", "1", "--vm-bytes", "128M", "--hdd", "1", "--hdd-bytes", "64M",
                 "--temp-path", self.directory, "--timeout", "0", "--quiet"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        return self

    def __exit__(self, *exc):
        for p in self.processes:
            if p.args[0] == "stress-ng":
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
            else:
                stop_process(p)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


# ---- threads ------------------------------------------------------------------------------

def thread_times(pids):
    """{(pid, tid): (name, policy, rt priority, nice, run ns, runnable-waiting ns)} of every
    live thread of `pids`."""
    found = {}
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            base = f"/proc/{pid}/task/{tid}"
            try:
                with open(f"{base}/stat") as f:
                    text = f.read()
                with open(f"{base}/schedstat") as f:
                    run_ns, wait_ns = (int(v) for v in f.read().split()[:2])
            except (OSError, ValueError):
                continue
            name = text[text.index("(") + 1:text.rindex(")")]
            fields = text[text.rindex(")") + 2:].split()
            # Fields counted from 3 (the state): nice is field 19, rt_priority 40, policy 41.
            found[(pid, int(tid))] = (name, POLICIES.get(int(fields[38]), fields[38]), int(fields[37]),
                                      int(fields[16]), run_ns, wait_ns)
    return found


def thread_table(before, after, seconds):
    """Per thread alive at both ends: CPU and run-queue wait, ms per second of the window."""
    rows = []
    for key, (name, policy, priority, nice, run_ns, wait_ns) in sorted(after.items()):
        if key not in before:
            continue
        rows.append({"pid": key[0], "tid": key[1], "name": name, "policy": policy, "rt_priority": priority,
                     "nice": nice, "cpu_ms_per_s": (run_ns - before[key][4]) / 1e6 / seconds,
                     "runnable_wait_ms_per_s": (wait_ns - before[key][5]) / 1e6 / seconds})
    return rows


# ---- the two players ------------------------------------------------------------------------

# With no fault injected, each of these is a takeover without a death (their sum counts
# counter increments: a process lost counts as a failover and as a crash).
TAKEOVERS = ("failovers", "output_failovers", "crashes")
# A standby that played for a late process which then plays on as the standby: the output
# stages count every takeover (output_takeovers, also those sustaind never saw;
# output_covers those it saw), the direct layout's standby its handbacks.
COVERS = ("output_takeovers", "handbacks")


def takeover_counters(status):
    """Everything in the status that counts a takeover, a cover or a process lost."""
    supervisor, output = status["supervisor"], status["output"]
    return {"failovers": supervisor["failovers"], "output_failovers": supervisor["output_failovers"],
            "output_covers": supervisor.get("output_covers", 0),
            "output_takeovers": output["takeovers"], "crashes": supervisor["crash_count"],
            "handbacks": sum(w.get("handbacks", 0) for w in status["workers"])}


def spares_ready(engine):
    supervisor = engine.status()[1]["supervisor"]
    return supervisor["spare_ready"] and supervisor.get("output_spare_ready", True)


class Sustain:
    name = "sustain"

    def __init__(self, paths, jack, layout):
        self.engine = Engine(paths, jack, extra_args=["--layout", layout, "--gain", "0.5", "--restart-limit", "100000"], trace=False)

    def start(self):
        self.engine.start()
        wait_until(lambda: spares_ready(self.engine), 20, "the spares to be warm")
        return self

    def pids(self):
        return process_tree(self.engine.process.pid)

    def counters(self):
        return takeover_counters(self.engine.status()[1])

    def supervision_log(self):
        """sustaind's own lines about takeovers, hangs and deaths: why a takeover was made."""
        words = ("hung", "killed", "failover", "took over", "stopped", "never started", "is active now")
        return [line for line in self.engine.log().splitlines()
                if "sustaind]" in line and any(word in line for word in words)]

    def stop(self):
        self.engine.stop()
        self.engine.__exit__(None, None, None)


class SineClient:
    """The simplest engine: one JACK client playing a sine (jackd2's jack_simple_client,
    which connects itself to the playback ports)."""
    name = "sine"

    def __init__(self, jack):
        self.jack = jack
        self.process = None

    def start(self):
        self.process = subprocess.Popen(["jack_simple_client", SINE_CLIENT], env=self.jack.env(),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: "system:playback_1" in subprocess.run(
            ["jack_lsp", "-c", f"{SINE_CLIENT}:output1"], env=self.jack.env(), capture_output=True,
            text=True).stdout, 10, "the sine client's connection")
        return self

    def pids(self):
        return [self.process.pid]

    def counters(self):
        return {}

    def supervision_log(self):
        return []

    def stop(self):
        stop_process(self.process)


def damage_of(recording, report):
    """(all damaged + silent samples, the part not put down to the machine, events)."""
    engine_events, _ = recording.split_damage(report)
    events = report.get("events", [])
    return (sum(e["damaged"] + e["gap_samples"] for e in events),
            sum(e["damaged"] + e["gap_samples"] for e in engine_events), len(events))


def run_window(player, paths, jack, seconds, settle):
    player.start()
    try:
        time.sleep(settle)
        pids = player.pids()
        counters_before = player.counters()
        threads_before = thread_times(pids)
        with Recording(paths, jack, seconds) as recording:
            summary = recording.finish()
            threads_after = thread_times(pids)
            report = recording.analyze("--gap-min", "16")
            total, unexplained, events = damage_of(recording, report)
        counters_after = player.counters()
        spurious = {k: counters_after[k] - counters_before[k] for k in counters_after}
        spurious_total = sum(spurious.get(k, 0) for k in TAKEOVERS)
        # With no fault injected, sustaind's reasons for a takeover are kept to explain it.
        takeover_log = player.supervision_log() if spurious_total else []
    finally:
        player.stop()
    minutes = seconds / 60.0
    return {"seconds": seconds, "damaged_samples": total, "damaged_samples_per_minute": total / minutes,
            "damaged_samples_not_the_machines": unexplained, "damage_events": events,
            "xruns": len(summary.get("xrun_frames", [])),
            "xruns_per_minute": len(summary.get("xrun_frames", [])) / minutes,
            "takeovers_without_fault": spurious,
            "takeovers_without_fault_total": spurious_total,
            "late_stage_covers": sum(spurious.get(k, 0) for k in COVERS),
            "takeover_log": takeover_log,
            "threads": thread_table(threads_before, threads_after, seconds)}


def run_faults(paths, jack, layout, faults, interval):
    """Kills and stops of the active worker under the load, one per `interval` once the spare
    is warm again; per fault the failovers it caused and the damage near it the machine does
    not explain."""
    player = Sustain(paths, jack, layout).start()
    per_fault = []
    try:
        kinds = [("kill", signal.SIGKILL), ("stop", signal.SIGSTOP)]
        with Recording(paths, jack, seconds=0.5 + interval * faults + 3.0) as recording:
            started = time.monotonic()
            time.sleep(0.3)
            times = []
            for n in range(faults):
                kind, how = kinds[n % 2]
                failovers_before = player.counters()["failovers"]
                victim = active_worker_in_status(player.engine)
                times.append(time.monotonic() - started)
                os.kill(victim, how)
                try:
                    wait_until(lambda: victim not in player.pids() and spares_ready(player.engine), 3, "a warm spare")
                except TestFailure:
                    pass  # judged below: a fault without a spare again in time counts as not handled
                per_fault.append({"kind": kind, "failovers": player.counters()["failovers"] - failovers_before,
                                  "spare_warm_again": spares_ready(player.engine)})
                time.sleep(max(0.0, interval - (time.monotonic() - started - times[-1])))
            recording.finish()
            report = recording.analyze("--gap-min", "16")
            engine_events, _ = recording.split_damage(report)
        for t, fault in zip(times, per_fault):
            near = [e for e in engine_events if t - 0.15 <= e["start_s"] <= t + interval - 0.15]
            fault["damaged_samples"] = sum(e["damaged"] + e["gap_samples"] for e in near)
    finally:
        player.stop()
    return per_fault


def median(values):
    return statistics.median(values) if values else None


def summarize(windows):
    minutes = sum(w["seconds"] for w in windows) / 60.0
    return {"minutes": minutes,
            "damaged_samples_per_minute": sum(w["damaged_samples"] for w in windows) / minutes if minutes else None,
            "damaged_samples_per_minute_median_window": median([w["damaged_samples_per_minute"] for w in windows]),
            "damaged_samples_not_the_machines": sum(w["damaged_samples_not_the_machines"] for w in windows),
            "xruns_per_minute": sum(w["xruns"] for w in windows) / minutes if minutes else None,
            "takeovers_without_fault": sum(w["takeovers_without_fault_total"] for w in windows),
            "late_stage_covers": sum(w["late_stage_covers"] for w in windows)}


def threads_summary(windows):
    """Per thread name over the windows: policy and priority, median CPU and run-queue wait."""
    by_name = {}
    for w in windows:
        for row in w["threads"]:
            by_name.setdefault((row["name"], row["policy"], row["rt_priority"], row["nice"]), []).append(row)
    return [{"name": name, "policy": policy, "rt_priority": priority, "nice": nice, "threads": len(rows),
             "cpu_ms_per_s_median": median([r["cpu_ms_per_s"] for r in rows]),
             "runnable_wait_ms_per_s_median": median([r["runnable_wait_ms_per_s"] for r in rows]),
             "runnable_wait_ms_per_s_max": max(r["runnable_wait_ms_per_s"] for r in rows)}
            for (name, policy, priority, nice), rows in sorted(by_name.items())]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build")
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=10.0, help="of sustain under load (the sine gets as long)")
    parser.add_argument("--window-seconds", type=float, default=30.0)
    parser.add_argument("--settle-seconds", type=float, default=1.0)
    parser.add_argument("--hogs", type=int, default=os.cpu_count(), help="busy loops at normal priority")
    parser.add_argument("--mixed", action="store_true", help="add stress-ng's memory and disk stressors")
    parser.add_argument("--layout", default="relay", choices=["relay", "direct"])
    parser.add_argument("--faults", type=int, default=20, help="kills and stops of the active under the load")
    parser.add_argument("--fault-interval", type=float, default=1.5)
    args = parser.parse_args()
    if args.mixed and shutil.which("stress-ng") is None:
        parser.error("--mixed needs stress-ng (Debian package stress-ng)")

    paths = Paths([None, args.build])
    windows = {"sustain": [], "sine": []}
    lost = []  # windows whose recording failed
    rounds = max(1, round(args.minutes * 60 / args.window_seconds))
    with JackServer() as jack:
        for r in range(rounds):
            order = ["sustain", "sine"] if r % 2 == 0 else ["sine", "sustain"]
            for name in order:
                player = Sustain(paths, jack, args.layout) if name == "sustain" else SineClient(jack)
                try:
                    with Load(args.hogs, args.mixed):
                        window = run_window(player, paths, jack, args.window_seconds, args.settle_seconds)
                except (TestFailure, subprocess.TimeoutExpired) as e:
                    # The recorder itself (not the engine) can be starved past its deadline
                    # under this load: the window is not judged, and counted as lost.
                    lost.append({"round": r + 1, "player": name, "reason": str(e)[:300]})
                    print(f"round {r + 1}/{rounds} {name:8s} LOST: {str(e)[:200]}", flush=True)
                    continue
                windows[name].append(window)
                print(f"round {r + 1}/{rounds} {name:8s} damaged {window['damaged_samples']:5d} samples "
                      f"({window['damaged_samples_not_the_machines']} not the machine's), "
                      f"xruns {window['xruns']:4d}, takeovers without a fault "
                      f"{window['takeovers_without_fault_total'] if name == 'sustain' else '-'}, covers "
                      f"{window['late_stage_covers'] if name == 'sustain' else '-'}", flush=True)
                for line in window["takeover_log"]:
                    print(f"    {line}", flush=True)
        faults = []
        if args.faults > 0:
            try:
                with Load(args.hogs, args.mixed):
                    faults = run_faults(paths, jack, args.layout, args.faults, args.fault_interval)
            except (TestFailure, subprocess.TimeoutExpired) as e:
                lost.append({"round": None, "player": "faults", "reason": str(e)[:300]})
                print(f"fault phase LOST: {str(e)[:200]}", flush=True)

    summary = {name: summarize(w) for name, w in windows.items()}
    damage = [f["damaged_samples"] for f in faults]
    fault_summary = {"faults": len(faults), "failovers": sum(f["failovers"] for f in faults),
                     "faults_with_one_failover": sum(1 for f in faults if f["failovers"] == 1),
                     "spare_warm_again": sum(1 for f in faults if f["spare_warm_again"]),
                     "damaged_samples_p50": percentile(damage, 50) if damage else None,
                     "damaged_samples_p99": percentile(damage, 99) if damage else None,
                     "damaged_samples_max": max(damage) if damage else None,
                     "faults_with_damage": sum(1 for d in damage if d)}
    s, p = summary["sustain"], summary["sine"]
    print(f"\nunder {args.hogs} CPU hog{'s' if args.hogs != 1 else ''}{' and stress-ng vm + hdd' if args.mixed else ''}, "
          f"{s['minutes']:.1f} min each, windows alternating ({args.layout} layout)")
    def cell(value, spec):
        # A player whose every window was lost has no figure: "-".
        return f"{'-':>10s}" if value is None else f"{value:{spec}}"

    print(f"{'':42s} {'sustain':>10s} {'sine':>10s}")
    for label, key, spec in (("damaged samples per minute (all causes)", "damaged_samples_per_minute", "10.1f"),
                             ("  median window", "damaged_samples_per_minute_median_window", "10.1f"),
                             ("damaged samples not the machine's", "damaged_samples_not_the_machines", "10d"),
                             ("xruns per minute", "xruns_per_minute", "10.1f")):
        print(f"{label:42s} {cell(s.get(key), spec)} {cell(p.get(key), spec)}")
    for label, key in (("takeovers without a fault", "takeovers_without_fault"),
                       ("late stages covered by a standby", "late_stage_covers")):
        print(f"{label:42s} {cell(s.get(key), '10d')} {'-':>10s}")
    if lost:
        print(f"windows lost (recording failed, not judged): {len(lost)}: "
              + ", ".join(f"round {w['round']} {w['player']}" for w in lost))
    if faults:
        print(f"faults under load: {fault_summary['faults']}, failovers {fault_summary['failovers']} "
              f"({fault_summary['faults_with_one_failover']} with exactly one), spare warm again "
              f"{fault_summary['spare_warm_again']}; damaged samples not the machine's per fault p50 "
              f"{fault_summary['damaged_samples_p50']} p99 {fault_summary['damaged_samples_p99']} "
              f"max {fault_summary['damaged_samples_max']} ({fault_summary['faults_with_damage']} faults with any)")
    threads = {name: threads_summary(w) for name, w in windows.items()}
    print("\nthreads under load (median over windows, ms per second: CPU / waiting for a CPU while runnable)")
    for name, rows in threads.items():
        for row in rows:
            print(f"  {name:8s} {row['name']:16s} {row['policy']:6s} prio {row['rt_priority']:3d} nice {row['nice']:3d}"
                  f"  cpu {row['cpu_ms_per_s_median']:7.1f}  wait {row['runnable_wait_ms_per_s_median']:7.1f}"
                  f" (max {row['runnable_wait_ms_per_s_max']:.1f})")
    report = {"benchmark": "load", "jack": {"rate": 48000, "frames": 64}, "parameters": vars(args),
              "machine": machine(),
              "summary": summary, "windows_lost": lost, "faults_under_load": fault_summary, "faults": faults,
              "threads": threads, "windows": windows}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
