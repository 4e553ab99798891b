"""What a listener hears when the process that renders the sound is killed: sustain (relay
layout) against scsynth (Debian's supercollider-server) restarted at once by a watchdog
script. Run through tools/bench-restart.

One private JACK dummy server (48 kHz, 64 frames); windows alternate between the two
engines (which goes first alternates by round), a fresh engine per window, each playing the
same steady tone (440 Hz, amplitude 0.5), while sustain-record records the driver's own
output (system:monitor_1): what was played, whoever played it.

- sustain: sustaind (relay layout); the active worker (its pid from the status) is killed
  with SIGKILL mid-recording. sustaind does the rest.
- scsynth: scsynth is killed with SIGKILL mid-recording, and this script then does what a
  user's watchdog would, as fast as one can: wait for the process to exit, start scsynth
  again on the same port, ask /status every 10 ms until it answers, load the tone's
  SynthDef (/d_recv, written here: no sclang), /s_new the tone and wait for /sync. The new
  scsynth connects its output to the driver's playback port itself
  (SC_JACK_DEFAULT_OUTPUTS), as a user's setup would.

Each recording is judged by sustain-analyze (sine recurrence: damaged samples, silent gaps)
with the same rule as the failover benchmark: the damage the machine's timing explains
exactly (the driver waking a period late, the recorder's own cycle jumps) does not count;
everything else from a period before the kill to the end of the recording does. Per fault:
- the gap a listener hears: the longest stretch from a first to a last bad sample (damaged
  or silent; stretches less than 10 ms apart are one), in samples and ms: every sample in it
  is wrong, whatever the analyzer flags inside (a dead JACK client's last buffer played
  again is a sine but for the joins, and only the joins are flagged);
- bad samples: damaged plus silent samples, as the analyzer counts them, from the kill on;
- counted here from the samples themselves: silent samples (|x| < 1e-6) and stale ones
  (equal to the sample a period earlier, to the bit: a buffer played again);
- whether the tone is intact at the end of the recording (its last 0.2 s, by frequency and
  amplitude);
- the waveform around the fault (30 ms before to 300 ms after, longer when the gap is),
  reduced to a min/max envelope for plotting, and 20 ms around the kill at full rate.
Prints a table (medians and p99 over rounds, ratio sustain / scsynth) and writes JSON.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
import osc_wire  # noqa: E402
from harness import (Engine, JackServer, Paths, Recording, TestFailure,  # noqa: E402
                     free_udp_port, stop_process, wait_until)
from figures import machine, percentile, write_report  # noqa: E402
from peer_bench import Client, blob_message, tone_synthdef  # noqa: E402

RATE = 48000
FRAMES = 64
FREQ = 440.0
AMP = 0.5
# Damage JACK's own timing explains exactly and no fault causes (failover_bench.py).
TIMING_CAUSES = ("late_wake", "recording")
EXCERPT_BEFORE_S = 0.030
EXCERPT_AFTER_S = 0.300
EXCERPT_POINTS = 1500  # min/max pairs at most: enough for a plot, small in the JSON
MERGE_S = 0.010  # bad stretches closer than this are one gap (see judge)
ZOOM_BEFORE_S = 0.005
ZOOM_AFTER_S = 0.015


# ---- judging a recording -------------------------------------------------------------------

def silent_runs(samples, start, end, minimum=16):
    """(first index, length) of each run of at least `minimum` samples of |x| < 1e-6 in
    samples[start:end]: the recording's silences, counted here without the analyzer."""
    runs, run_start = [], None
    for i in range(start, end):
        if abs(samples[i]) < 1e-6:
            if run_start is None:
                run_start = i
        elif run_start is not None:
            if i - run_start >= minimum:
                runs.append((run_start, i - run_start))
            run_start = None
    if run_start is not None and end - run_start >= minimum:
        runs.append((run_start, end - run_start))
    return runs


def repeated_samples(samples, start, period=FRAMES, run=16):
    """Samples from `start` on that repeat the sample a period earlier to the bit, not silent,
    in runs of at least `run`: the driver playing a buffer again (a dead client's last one).
    The tone's own values meet a period apart now and then (sin a = sin(pi - a)), one sample
    at a time, never for a run."""
    total, length = 0, 0
    for i in range(max(start, period), len(samples) + 1):
        if i < len(samples) and samples[i] == samples[i - period] and abs(samples[i]) >= 1e-6:
            length += 1
            continue
        if length >= run:
            total += length
        length = 0
    return total


def envelope(samples, start, end, points):
    """samples[start:end] as at most `points` (min, max) pairs over equal buckets."""
    start, end = max(0, start), min(len(samples), end)
    bucket = max(1, -(-(end - start) // points))
    lows, highs = [], []
    for i in range(start, end, bucket):
        chunk = samples[i:min(end, i + bucket)]
        lows.append(round(min(chunk), 4))
        highs.append(round(max(chunk), 4))
    return bucket, lows, highs


def judge(recording, kill_ns):
    """The fault's figures from one finished recording (inside its context: the cycle times
    and the WAV go with its directory)."""
    # Called here rather than through recording.analyze, which prints every failed check: a
    # killed engine's recording fails by design.
    judged = subprocess.run([recording.paths.analyze, "--in", recording.wav, "--json", "--gap-min", "16",
                             f"--expect=-0.2:-0:{FREQ}:{AMP}"], capture_output=True, text=True, timeout=60)
    if judged.returncode not in (0, 1):
        raise TestFailure(f"sustain-analyze failed ({judged.returncode}): {judged.stderr}")
    tail = json.loads(judged.stdout)
    engine_events, machine_events = recording.split_damage(tail)
    samples = recording.samples()
    at = int(round(recording.index_at_monotonic_ns(kill_ns)))
    # What the kill can cause starts no earlier than a period before it (the sample at the
    # output when the signal is sent was rendered a period before).
    after_kill = [e for e in engine_events + machine_events if e["start_s"] * RATE >= at - FRAMES]
    counted = sorted((e for e in after_kill if e.get("cause") not in TIMING_CAUSES), key=lambda e: e["start_s"])
    excluded = [e for e in after_kill if e.get("cause") in TIMING_CAUSES]
    bad = sum(e["damaged"] + e["gap_samples"] for e in counted)
    silent = sum(e["gap_samples"] for e in counted)
    # Stretches with no intact tone: events less than MERGE_S apart are one stretch (so short a
    # return of the tone is not heard as one). The gap is the longest stretch: a glitch of the
    # machine's a second later adds bad samples, not length to the gap.
    stretches = []
    for e in counted:
        a, b = int(round(e["start_s"] * RATE)), int(round(e["end_s"] * RATE))
        if stretches and a - stretches[-1][1] <= MERGE_S * RATE:
            stretches[-1][1] = max(stretches[-1][1], b)
        else:
            stretches.append([a, b])
    first, last = max(stretches, key=lambda ab: ab[1] - ab[0]) if stretches else (at, at - 1)
    gap = last - first + 1
    own_silences = silent_runs(samples, max(0, at - FRAMES), len(samples))
    # The excerpt shows the whole gap and the tone's return.
    excerpt_end = at + max(int(EXCERPT_AFTER_S * RATE), last - at + int(0.05 * RATE))
    excerpt_start = at - int(EXCERPT_BEFORE_S * RATE)
    bucket, lows, highs = envelope(samples, excerpt_start, excerpt_end, EXCERPT_POINTS)
    zoom_start = max(0, at - int(ZOOM_BEFORE_S * RATE))
    zoom = [round(v, 4) for v in samples[zoom_start:min(len(samples), at + int(ZOOM_AFTER_S * RATE))]]
    checks = tail.get("windows", [])
    return {
        "fault_index": at,
        "fault_s": at / RATE,
        "bad_samples": bad,
        "silent_samples": silent,
        "damaged_samples": bad - silent,
        "gap_samples": gap,
        "gap_ms": gap * 1000.0 / RATE,
        "gap_from_fault_ms": [(first - at) * 1000.0 / RATE, (last - at) * 1000.0 / RATE] if gap else None,
        "stretches_from_fault_ms": [[(a - at) * 1000.0 / RATE, (b - at) * 1000.0 / RATE] for a, b in stretches],
        "silences_own_count": [{"start_ms": (s - at) * 1000.0 / RATE, "samples": n} for s, n in own_silences],
        "stale_samples": repeated_samples(samples, at),
        "tone_intact_at_end": bool(checks) and all(c.get("ok", False) for c in checks),
        "recorded_after_fault_s": (len(samples) - at) / RATE,
        "events": [{k: e.get(k) for k in ("start_s", "end_s", "damaged", "gap_samples", "cause", "nearest_xrun")}
                   for e in counted],
        "events_of_the_machines_timing": len(excluded),
        "recorder_xruns": len(set(recording.summary.get("xrun_frames", []))),
        "excerpt": {"start_ms": (excerpt_start - at) * 1000.0 / RATE, "step_ms": bucket * 1000.0 / RATE,
                    "min": lows, "max": highs},
        "zoom": {"start_ms": (zoom_start - at) * 1000.0 / RATE, "step_ms": 1000.0 / RATE, "samples": zoom},
    }


# ---- the two engines -----------------------------------------------------------------------

def sustain_window(paths, jack, args):
    engine = Engine(paths, jack, ["--layout", "relay", "--gain", str(AMP)], trace=False)
    with engine:
        def warm():
            code, status = engine.status()
            return code == 0 and status["supervisor"]["spare_ready"] and status["supervisor"]["output_spare_ready"]
        wait_until(warm, 15, "sustain's spare worker and output stage")
        time.sleep(args.settle_seconds)
        failovers = engine.status()[1]["supervisor"]["failovers"]
        with Recording(paths, jack, seconds=args.before_seconds + args.after_seconds) as recording:
            time.sleep(args.before_seconds)
            active = [w["pid"] for w in engine.status()[1]["workers"] if w["role"] == "active"]
            if len(active) != 1:
                raise TestFailure(f"expected one active worker, the status shows {len(active)}")
            victim = active[0]
            kill_ns = time.monotonic_ns()
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: engine.status()[1]["supervisor"]["failovers"] > failovers, 5, "the failover")
            recording.finish()
            result = judge(recording, kill_ns)
        wait_until(warm, 15, "the replacement")
        log = engine.log()
        # From sustaind's log: the death noticed (after the worker's last callback), the
        # standby made active (after that), the replacement rendering in step (after it was
        # started; the first such line is the standby's at start).
        result["timings_ms"] = {
            "detected": [int(m) / 1000.0 for m in re.findall(r"detected (\d+) us after", log)],
            "switched": [int(m) / 1000.0 for m in re.findall(r"switched (\d+) us after", log)],
            "replacement_in_step": [float(m) for m in re.findall(r"spare ready \(([0-9.]+) ms after", log)][1:],
        }
        result["failovers"] = engine.status()[1]["supervisor"]["failovers"] - failovers
        engine.stop()
    return result


class WatchdoggedScsynth:
    """scsynth started, and after a kill started again, the way a watchdog script would."""

    def __init__(self, jack):
        self.jack = jack
        self.port = free_udp_port()
        self.log = tempfile.NamedTemporaryFile(prefix="scsynth-", suffix=".log", delete=False)
        self.process = None
        self.client = Client(self.port)

    def start(self):
        """Starts scsynth and the tone; returns when each step was done (ms from the call)."""
        t0 = time.monotonic()
        steps = {}
        env = self.jack.env()
        env["SC_JACK_DEFAULT_OUTPUTS"] = "system:playback_1"
        # -R 0: no Zeroconf; -B: loopback only; -z 64: JACK's period; one output.
        self.process = subprocess.Popen(["scsynth", "-u", str(self.port), "-B", "127.0.0.1", "-R", "0", "-i", "0",
                                         "-o", "1", "-z", "64"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        steps["process_started"] = (time.monotonic() - t0) * 1000
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                raise TestFailure(f"scsynth exited: {open(self.log.name).read()[-2000:]}")
            if time.monotonic() > deadline:
                raise TestFailure("scsynth did not answer /status within 15 s")
            self.client.send(osc_wire.message("/status"))
            if self.client.wait_for(lambda a, _: a == "/status.reply", 0.01):
                break
        steps["answered_status"] = (time.monotonic() - t0) * 1000
        self.client.send(blob_message("/d_recv", tone_synthdef()))
        if not self.client.wait_for(lambda a, args: a == "/done" and args[:1] == ["/d_recv"], 10):
            raise TestFailure("scsynth did not load the tone's SynthDef")
        steps["synthdef_loaded"] = (time.monotonic() - t0) * 1000
        self.client.send(osc_wire.message("/s_new", "siiisfsf", "sustain_peer_tone", 1000, 1, 0, "freq", FREQ,
                                          "amp", AMP))
        self.client.send(osc_wire.message("/sync", "i", 1))
        if not self.client.wait_for(lambda a, args: a == "/synced" and args == [1], 10):
            raise TestFailure("scsynth did not answer /sync after starting the tone")
        steps["tone_started"] = (time.monotonic() - t0) * 1000
        return steps

    def kill_and_restart(self):
        """SIGKILL, then at once: wait for the exit, start again. Returns (kill ns, steps in ms
        from the kill)."""
        kill_ns = time.monotonic_ns()
        self.process.kill()
        self.process.wait()
        exited_ms = (time.monotonic_ns() - kill_ns) / 1e6
        steps = {k: exited_ms + v for k, v in self.start().items()}
        steps["exited"] = exited_ms
        return kill_ns, steps

    def stop(self):
        self.client.close()
        stop_process(self.process)
        os.unlink(self.log.name)


def scsynth_window(paths, jack, args):
    scsynth = WatchdoggedScsynth(jack)
    try:
        scsynth.start()
        time.sleep(args.settle_seconds)
        with Recording(paths, jack, seconds=args.before_seconds + args.after_seconds) as recording:
            time.sleep(args.before_seconds)
            kill_ns, steps = scsynth.kill_and_restart()
            recording.finish()
            result = judge(recording, kill_ns)
        result["timings_ms"] = {k: round(v, 3) for k, v in steps.items()}
        return result
    finally:
        scsynth.stop()


# ---- summary -------------------------------------------------------------------------------

SUMMARY_KEYS = ("gap_ms", "gap_samples", "bad_samples", "silent_samples", "stale_samples")


def summarise(windows):
    out = {}
    for key in SUMMARY_KEYS:
        values = [w[key] for w in windows]
        out[key] = {"p50": statistics.median(values) if values else None, "p99": percentile(values, 99),
                    "max": max(values) if values else None, "per_round": values}
    out["tone_intact_at_end"] = f"{sum(1 for w in windows if w['tone_intact_at_end'])}/{len(windows)}"
    # scsynth: each step of the restart, from the kill; sustain: sustaind's own (sustain_window).
    steps = {}
    for w in windows:
        for key, value in w.get("timings_ms", {}).items():
            steps.setdefault(key, []).extend(value if isinstance(value, list) else [value])
    out["timings_ms_median"] = {key: statistics.median(values) for key, values in steps.items() if values}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build")
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before-seconds", type=float, default=0.5, help="recorded before the kill")
    parser.add_argument("--after-seconds", type=float, default=1.5, help="recorded after the kill")
    parser.add_argument("--settle-seconds", type=float, default=0.5, help="the engine plays this long before recording")
    parser.add_argument("--quick", action="store_true", help="one round, short recordings (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.before_seconds, args.after_seconds, args.settle_seconds = 1, 0.3, 0.8, 0.2

    paths = Paths([None, args.build])
    version = subprocess.run(["scsynth", "-v"], capture_output=True, text=True).stdout.strip()
    windows = {"sustain": [], "scsynth": []}
    with JackServer(RATE, FRAMES) as jack:
        for r in range(args.rounds):
            order = ["sustain", "scsynth"] if r % 2 == 0 else ["scsynth", "sustain"]
            for name in order:
                window = (sustain_window if name == "sustain" else scsynth_window)(paths, jack, args)
                window["round"] = r + 1
                windows[name].append(window)
                span = window["gap_from_fault_ms"]
                print(f"round {r + 1} {name:8s} gap {window['gap_ms']:6.1f} ms"
                      + (f" ({span[0]:.1f} to {span[1]:.1f} ms after the kill)" if span else "")
                      + f", bad samples {window['bad_samples']} (silent {window['silent_samples']}), "
                      f"stale {window['stale_samples']}, tone intact at the end: "
                      f"{'yes' if window['tone_intact_at_end'] else 'NO'}", flush=True)

    summary = {name: summarise(w) for name, w in windows.items()}

    def ratio(key, q):
        a, b = summary["sustain"][key][q], summary["scsynth"][key][q]
        return a / b if a is not None and b else None
    ratios = {f"{key}_{q}": ratio(key, q) for key in SUMMARY_KEYS for q in ("p50", "p99")}
    print(f"\n{'over ' + str(args.rounds) + ' round' + ('s' if args.rounds > 1 else ''):34s} "
          f"{'sustain':>10s} {'scsynth':>10s} {'ratio':>7s}")
    for key in SUMMARY_KEYS:
        for q in ("p50", "p99"):
            a, b, k = summary["sustain"][key][q], summary["scsynth"][key][q], ratios[f"{key}_{q}"]
            print(f"{key + ' ' + q:34s} {a:10.1f} {b:10.1f} {k:7.3f}" if k is not None else
                  f"{key + ' ' + q:34s} {a:10.1f} {b:10.1f} {'-':>7s}")
    print(f"{'tone intact at the end':34s} {summary['sustain']['tone_intact_at_end']:>10s} "
          f"{summary['scsynth']['tone_intact_at_end']:>10s}")
    restarts = [w["timings_ms"]["tone_started"] for w in windows["scsynth"]]
    if restarts:
        print(f"scsynth restarted by the script: tone started again {statistics.median(restarts):.1f} ms after the "
              f"kill (median; exit, start, /status, /d_recv, /s_new + /sync)")
    report = {"benchmark": "restart", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
              "scsynth_version": version, "jack": {"rate": RATE, "frames": FRAMES}, "tone": {"freq": FREQ, "amp": AMP},
              "parameters": vars(args), "summary": summary, "ratios_sustain_over_scsynth": ratios, "windows": windows}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
