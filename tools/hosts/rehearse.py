#!/usr/bin/env python3
"""A rehearsal of sustain on three machines, on this one (tools/rehearse-hosts).

Three hosts as Linux network namespaces (tools/hosts/rig.py): the audio host (a JACK dummy
server with monitor ports, the netmanager, `sustaind --role audio`) and two render hosts
(`sustaind --role render`, each running its own netjack2 slave). A tone plays; then, for
each fault kind, fault after fault on whichever render host is playing at the time:

- kill:   SIGKILL of every process of the host at once (a machine losing power), then the
          host is started again (booted: an empty /dev/shm) as soon as it is dead;
- stop:   SIGSTOP of every process of the host, SIGCONT after --hold seconds;
- link:   its network link down, up again after --hold seconds (a pulled cable);
- freeze: the cgroup v2 freezer on all its processes, thawed after --hold seconds.

Each fault is recorded at the audio host's system:monitor_1 (what its driver played) and
judged sample by sample. Around each fault a timed bundle mutes the tone 120 ms after it is
sent and brings it back 160 ms after (the onset, from exact silence, is found to the sample
and compared with its timetag), and a plain change of the frequency is sent while the host
is down: the judged stretch after the onset must carry the new frequency. Per fault it
counts failovers (exactly one: the host that played is the one that failed), the time from
the fault's end until the host is a warm standby again, and the damage the analyzer finds,
with what the output stage played in those cycles (its trace, SUSTAIN_HOST_OUTPUT_TRACE):
damage in cycles it played a block in step from either host is the driver's (JACK did not
run it, a late wake); damage in cycles without a block in step within D cycles after the
audio host's JACK server stalled (the stage's cycle numbering jumped) is shown apart: the
requests of the cycles not run were never sent and the blocks in flight arrive as many
cycles late; the rest is the engine's.

Prints a summary and writes JSON (--out). Exit 0 when every fault of every kind held:
0 damaged samples, one failover each, the change heard, the onset within 2 samples (the ruler's
jitter, ONSET_TOLERANCE_SAMPLES).
Every namespace, link, cgroup and process it made is removed at the end, also when it is
interrupted (rig.py).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tools", "benchmark"))
import rig as rigmod  # noqa: E402
from figures import percentile  # noqa: E402
from harness import Paths, Recording, TestFailure, onsets  # noqa: E402
from osc_wire import bundle, message, realtime_minus_monotonic_ns, timetag_of_unix_ns  # noqa: E402

RATE = 48000
PERIOD = 64
OSC_PORT = 8000
INSTANCE = "rehearse"
KINDS = ("kill", "stop", "link", "freeze")
MUTE_AFTER_S = 0.12     # the timed bundle: silence from here ...
ONSET_AFTER_S = 0.16    # ... to here (its onset is what is timed)
FAULT_AFTER_S = 0.05    # the fault, after the bundle is sent
CHANGE_AFTER_S = 0.02   # the plain change, after the fault
JUDGE_MARGIN_S = 0.002  # left out around the deliberate silence (its ramps are no damage)
RAMP_S = 0.010          # sustaind's --ramp-ms default
# The onset is timed against JACK's own estimate of when each recorded cycle began, and the
# engine's frame clock is anchored on the same estimate in another cycle: the two differ by
# the driver's wake-up jitter (tens of microseconds here). As tests/integration/test_timed_bundles.py.
# Where JACK's clock was disturbed between the bundle's arrival and its onset (a stall, or its
# timer ahead of the callbacks), the onset is shown, not judged (judge()).
ONSET_TOLERANCE_SAMPLES = 2
XRUN_SETTLE_FRAMES = 8 * PERIOD  # as tests/integration/test_timed_bundles.py
# Above this many stalls a second of the audio host's JACK server (the stage's cycle
# numbering jumped) during a fault's recording, the fault is shown, not judged sample by
# sample: netjack2's own lag moves when stalls come thick (tools/hosts/FACTS.md). Three JACK
# servers and their clients on two cores stall the audio host's about 1 to 4 times a second
# with no fault at all (a bare dummy server: about 0.3); in bursts, 20 to 100 times. As
# MAX_JUDGED_XRUN_RATE in tests/integration/test_timed_bundles.py.
MAX_JUDGED_STALLS_PER_S = 8.0


class HostsRig(rigmod.Rig):
    """The rig without its own netjack2 slaves: each render host's sustaind runs its own."""

    def start_slave(self, host, latency=None, timeout=15):
        return 0.0


class HostRecording(Recording):
    """sustain-record run inside the audio host (its JACK server lives in its namespaces)."""

    def __init__(self, rig, paths, seconds):
        super().__init__(paths, _JackShim(rig), seconds)
        self.rig = rig

    def __enter__(self):
        self.process = self.rig.popen(
            "audio", [self.paths.record, "--port", "system:monitor_1", "--seconds", str(self.seconds),
                      "--out", self.wav, "--ready-file", self.ready, "--json", "--cycle-times", self.cycle_times_path])
        deadline = time.monotonic() + 10
        while not os.path.exists(self.ready) and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if not os.path.exists(self.ready):
            raise TestFailure(f"recorder did not start: {self.process.communicate()[1] if self.process.poll() is not None else 'no ready file'}")
        return self


class _JackShim:
    """What harness.Recording asks of its JACK server."""

    def __init__(self, rig):
        self.name = rig.audio.server
        self.frames = PERIOD

    def env(self):
        return None


class OscSender:
    """Sends OSC to the audio host from inside its namespace (its address exists only there)."""

    SCRIPT = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
              "for line in sys.stdin:\n    s.sendto(bytes.fromhex(line.strip()),(sys.argv[1],int(sys.argv[2])))\n")

    def __init__(self, rig):
        self.process = rig.popen("audio", ["python3", "-u", "-c", self.SCRIPT, rigmod.MASTER_IP, str(OSC_PORT)],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def send(self, packet):
        self.process.stdin.write(packet.hex() + "\n")
        self.process.stdin.flush()

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=5)


class Rehearsal:
    def __init__(self, args):
        self.args = args
        self.paths = Paths([None, args.build])
        self.rig = None
        self.osc = None
        self.sustaind = {}  # host -> its sustaind (Popen)
        self.directory = tempfile.mkdtemp(prefix="sustain-rehearse-")
        self.trace_path = os.path.join(self.directory, "host-output.trace")

    # ---- the hosts ------------------------------------------------------------------
    def start(self):
        print(f"rig: leftovers of killed runs removed: {rigmod.cleanup_stale() or 'none'}", flush=True)
        self.rig = HostsRig(renders=2, latency=self.args.net_latency, keep_logs=self.args.keep_logs)
        self.rig.start()
        self.sustaind["audio"] = self.rig.popen("audio", env=self.env("audio"), log="sustaind", cmd=[
            self.paths.sustaind, "--role", "audio", "--instance", INSTANCE, "--bind", rigmod.MASTER_IP, "--allow",
            rigmod.SUBNET + ".0/24", "--port", str(OSC_PORT), "--gain", "0.5", "--host-latency", str(self.args.host_latency)])
        self.wait(lambda: "hosts" in (self.status(check=False) or {}), 10, "the audio host's sustaind")
        for host in self.rig.renders:
            self.start_render(host.name)
        self.osc = OscSender(self.rig)
        self.wait(lambda: self.both_in_step(), 30, "both render hosts in step")

    def env(self, host):
        """The host's environment, with the real-time guard preloaded into sustaind (and so into
        everything it starts: the render host's callback, the audio host's output stage)."""
        env = self.rig.env(host)
        if host == "audio":
            env["SUSTAIN_HOST_OUTPUT_TRACE"] = self.trace_path
        if self.args.rt_guard:
            env.update(LD_PRELOAD=self.paths.rt_guard, SUSTAIN_RT_GUARD_REPORT=self.args.rt_guard)
        return env

    def start_render(self, host):
        self.sustaind[host] = self.rig.popen(host, env=self.env(host), log="sustaind", cmd=[self.paths.sustaind, "--role", "render", "--audio-host", rigmod.MASTER_IP,
                              "--net-name", host, "--instance", host, "--net-port", str(rigmod.NET_PORT),
                              "--net-latency", str(self.args.net_latency)])

    def close(self):
        if self.osc:
            self.osc.close()
        # Each sustaind stops first, as it would on a machine being shut down: a render host
        # closes its stream before its netjack2 slave; the audio host fades out.
        for host in sorted(self.sustaind, key=lambda h: h == "audio"):
            process = self.sustaind[host]
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
        if self.rig:
            if self.args.keep_logs:
                print(f"logs kept in {self.rig.logdir}", flush=True)
            self.rig.close()
        if self.args.keep_logs:
            print(f"the output stage's trace kept in {self.trace_path}", flush=True)
        else:
            shutil.rmtree(self.directory, ignore_errors=True)

    def status(self, check=True):
        result = self.rig.run("audio", [self.paths.status, "--instance", INSTANCE, "--json", "--once"])
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError:
            if check:
                raise TestFailure(f"sustain-status: {result.stdout}{result.stderr}")
            return None

    def both_in_step(self, status=None):
        status = status or self.status()
        return sum(1 for h in status.get("hosts", []) if h["state"] == "in_step") == 2

    @staticmethod
    def wait(condition, timeout, what):
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                raise TestFailure(f"timed out waiting for {what}")
            time.sleep(0.02)
        return time.monotonic() - start

    # ---- one fault --------------------------------------------------------------------
    def inject(self, kind, host):
        {"kill": lambda: self.rig.kill_all(host), "stop": lambda: self.rig.stop_all(host),
         "link": lambda: self.rig.link_down(host), "freeze": lambda: self.rig.freeze(host)}[kind]()

    def end(self, kind, host):
        if kind == "kill":
            self.rig.boot(host)
            self.start_render(host)
        else:
            {"stop": lambda: self.rig.cont_all(host), "link": lambda: self.rig.link_up(host),
             "freeze": lambda: self.rig.thaw(host)}[kind]()

    def fault(self, kind, index, frequency):
        before = self.status()
        active = [h for h in before["hosts"] if h["role"] == "active"]
        if len(active) != 1 or not self.both_in_step(before):
            raise TestFailure(f"{kind} #{index}: not two hosts in step before the fault: {before['hosts']}")
        host = active[0]["name"]
        seconds = self.args.hold + 2.0 + (3.0 if kind == "kill" else 0.0)
        offset = realtime_minus_monotonic_ns()
        with HostRecording(self.rig, self.paths, seconds) as recording:
            time.sleep(0.2)
            sent = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            mute_ns, onset_ns = sent + int(MUTE_AFTER_S * 1e9), sent + int(ONSET_AFTER_S * 1e9)
            self.osc.send(bundle(message("/engine/gain", "f", 0.0), timetag=timetag_of_unix_ns(mute_ns + offset)))
            self.osc.send(bundle(message("/engine/gain", "f", 0.5), timetag=timetag_of_unix_ns(onset_ns + offset)))
            time.sleep(FAULT_AFTER_S)
            fault_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            self.inject(kind, host)
            time.sleep(CHANGE_AFTER_S)
            self.osc.send(message("/engine/freq", "f", frequency))
            time.sleep(max(0.0, self.args.hold - CHANGE_AFTER_S))
            ended_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            self.end(kind, host)
            warm_s = self.wait(lambda: self.both_in_step(), 30, f"{host} warm again after {kind}")
            after = self.status()
            recording.finish()
            samples = recording.samples()
            if self.args.keep_logs:
                write_wav(os.path.join(self.directory, f"{kind}-{index}.wav"), samples)
            return self.judge(kind, index, host, frequency, recording, samples, before, after,
                              {"sent": sent, "mute": mute_ns, "onset": onset_ns, "fault": fault_ns, "ended": ended_ns},
                              warm_s)

    def judge(self, kind, index, host, frequency, recording, samples, before, after, times, warm_s):
        latency = after["timing"]["output_latency_frames"]
        # The onset: the tone leaving the timed silence, heard time against its timetag.
        found = [i for i in onsets(samples, quiet=RATE * 20 // 1000)]
        heard = [recording.monotonic_ns_at(i - PERIOD) + latency * 1e9 / RATE for i in found]
        nearest = min(heard, key=lambda h: abs(h - times["onset"]), default=None)
        onset_error = None if nearest is None or abs(nearest - times["onset"]) > 0.02e9 else \
            (nearest - times["onset"]) * RATE / 1e9
        # Damage, in two stretches: before the timed silence (the fault and the switch fall
        # here) and after its onset's ramp (the change, the return, the host warm again).
        mute_at = int(recording.index_at_monotonic_ns(times["mute"] - latency * 1e9 / RATE) - JUDGE_MARGIN_S * RATE)
        onset_at = found[heard.index(nearest)] if onset_error is not None else \
            int(recording.index_at_monotonic_ns(times["onset"] - latency * 1e9 / RATE))
        resume_at = onset_at + int((RAMP_S + JUDGE_MARGIN_S) * RATE)
        stretches = {"before": self.analyze(samples, 0, mute_at, []),
                     "after": self.analyze(samples, resume_at, len(samples),
                                           [f"--expect=0:-0:{frequency}:0.5"])}
        damaged = sum(s["damaged_samples"] + s["gap_samples"] for s in stretches.values())
        events = []
        for name, report in stretches.items():
            start = 0 if name == "before" else resume_at
            events += [dict(e, start_s=e["start_s"] + start / RATE, end_s=e["end_s"] + start / RATE)
                       for e in report.get("events", [])]
        engine_damage = 0
        stall_damage = 0
        trace = self.read_trace()
        stalls = stall_ends(trace)
        for event in events:
            played = self.stage_cycles(recording, event, trace)
            event["stage_played"] = [source for _, source in played]
            # The stage's own choice in the cycles the damaged samples were played from: a
            # block in step from either host means the stage played the tone, and what the
            # driver played instead is JACK's or the machine's doing.
            event["stage_played_the_tone"] = bool(played) and all(source in (0, 1) for _, source in played)
            # A cycle without a block in step within D cycles after the audio host's JACK
            # server did not run for some cycles (the stage's cycle numbering jumped: the
            # machine stalled it): the requests of the cycles it did not run were never sent,
            # and the blocks in flight arrive as many cycles later, at or after their cycle.
            event["after_audio_host_stall"] = not event["stage_played_the_tone"] and all(
                source in (0, 1) or after_stall(stalls, cycle, self.args.host_latency) for cycle, source in played)
            amount = event.get("damaged", 0) + event.get("gap_samples", 0)
            if event["after_audio_host_stall"]:
                stall_damage += amount
            elif not event["stage_played_the_tone"]:
                engine_damage += amount
        at = {name: round(recording.index_at_monotonic_ns(ns - latency * 1e9 / RATE) / RATE, 4) for name, ns in times.items()}
        heard_change = stretches["after"].get("windows_ok", 0) == stretches["after"].get("windows", 1) and \
            stretches["after"].get("windows", 0) > 0
        failovers = after["host_output"]["failovers"] - before["host_output"]["failovers"]
        record = {"kind": kind, "index": index, "host": host, "damaged_samples": damaged,
                  "damage_events": events, "times_s": at,
                  "engine_damaged_samples": engine_damage, "damaged_samples_after_audio_host_stall": stall_damage,
                  "audio_host_stalls": self.stalls_recorded(recording, stalls), "failovers": failovers,
                  "warm_again_ms": round(warm_s * 1000, 1), "change_heard": heard_change,
                  "onset_error_samples": onset_error,
                  "blocks_from_standby": after["host_output"]["from_standby"] - before["host_output"]["from_standby"],
                  "unfilled_blocks": after["host_output"]["unfilled_blocks"] - before["host_output"]["unfilled_blocks"],
                  "out_of_step_played": after["host_output"]["out_of_step_played"] - before["host_output"]["out_of_step_played"],
                  "stage_skipped_cycles": after["host_output"]["skipped_cycles"] - before["host_output"]["skipped_cycles"],
                  "late_blocks": {h["name"]: h["late_blocks"] for h in after["hosts"]},
                  "recovered_blocks": {h["name"]: h["recovered_blocks"] for h in after["hosts"]},
                  "timed_late": after["timing"].get("late", 0) - before["timing"].get("late", 0),
                  "recorder_wake_delay_us": wake_delays(recording),
                  "xruns": len(recording.summary.get("xrun_frames", [])),
                  "late_wakes": len(recording.late_wakes()), "cycle_jumps": len(recording.summary.get("cycle_jumps", []))}
        record["stalls_per_s"] = round(record["audio_host_stalls"] * RATE / max(1, len(samples)), 2)
        record["judged"] = record["stalls_per_s"] <= MAX_JUDGED_STALLS_PER_S
        # The engine turned the timetag into a frame when the bundle arrived, by JACK's estimate
        # of cycle starts then; the ruler is the same estimate at the onset. A stall between the
        # two moves that estimate (JACK re-anchors it at a late wake): such an onset is shown.
        # Likewise when JACK's timer ran ahead of the callbacks then (it does for seconds after
        # a disturbance): the frame clock and the ruler both take a callback's own wake-up
        # instead, and two callbacks wake 100 us and more apart here (recorder_wake_delay_us).
        cycles = recording.cycle_times()
        offset_us = cycles["jack_minus_monotonic_us"]
        low, high = times["sent"] / 1000 + offset_us, times["onset"] / 1000 + offset_us
        timer_ahead = any(w < u for u, w in zip(cycles["usecs"], cycles.get("wake_usecs", [])) if low <= u <= high)
        record["onset_judged"] = not timer_ahead and not any(low <= at <= high for _, _, at in stalls)
        # Whole periods off at a JACK-reported xrun: the cycle the driver played a block in and
        # the one JACK's timer names for it part by a period there, and the ruler reads the
        # timer (as tests/integration/test_timed_bundles.py shows, not judges).
        if onset_error is not None and record["onset_judged"]:
            whole = round(onset_error / PERIOD)
            at_xrun = any(abs(onset_at - x) <= XRUN_SETTLE_FRAMES for x in recording.summary.get("xrun_frames", []))
            if whole != 0 and abs(onset_error - whole * PERIOD) <= ONSET_TOLERANCE_SAMPLES and at_xrun:
                record["onset_judged"] = False
        # Where JACK's timer led the callbacks through much of the recording (the median
        # wake-up before JACK's cycle start, after a kill: about 80 us here), the frame clock
        # and the ruler take different callbacks' wake-ups that far apart: the tolerance
        # widens by that lead.
        delays = record["recorder_wake_delay_us"]
        lead_samples = max(0, -delays["p50"]) * RATE / 1e6 if delays else 0.0
        record["onset_tolerance_samples"] = round(ONSET_TOLERANCE_SAMPLES + lead_samples, 2)
        onset_ok = onset_error is not None and (abs(onset_error) <= record["onset_tolerance_samples"] or
                                                not record["onset_judged"])
        rest = failovers == 1 and heard_change and onset_ok
        record["held"] = damaged == 0 and rest
        record["held_by_stage"] = engine_damage == 0 and rest
        verdict = "" if record["held"] else "  <-- not held"
        if not record["judged"]:
            verdict = f"  (not judged: {record['stalls_per_s']} stalls/s of the audio host's JACK server)"
        print(f"{kind:6s} #{index:<3d} {host}: damaged {damaged:5d} (the stage's {engine_damage}, after a stall of the "
              f"audio host {stall_damage})  failovers {failovers}  "
              f"from standby {record['blocks_from_standby']:3d}  warm again {record['warm_again_ms']:7.1f} ms  "
              f"change heard {'yes' if heard_change else 'NO'}  onset {onset_error if onset_error is None else round(onset_error, 2)} "
              f"samples{'' if record['onset_judged'] else ' (JACK clock disturbed before it: shown)'}{verdict}", flush=True)
        return record

    def read_trace(self):
        """The stage's trace (SUSTAIN_HOST_OUTPUT_TRACE): (cycle, JACK usecs, source) per cycle."""
        rows = []
        try:
            with open(self.trace_path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3:
                        rows.append((int(parts[0]), int(parts[1]), int(parts[2])))
        except FileNotFoundError:
            pass
        return rows

    @staticmethod
    def stalls_recorded(recording, stalls):
        """How many of the stage's stalls fall in the recording."""
        usecs = recording.cycle_times()["usecs"]
        return sum(1 for _, _, at in stalls if usecs and usecs[0] <= at <= usecs[-1])

    def stage_cycles(self, recording, event, trace):
        """What the output stage played, (cycle, source) from its trace, in the cycles from one
        before the event's first recorded cycle to its last: the driver plays what the graph
        made in the cycle before the one in which the recorder reads it."""
        import bisect
        cycles = recording.cycle_times()
        frames, usecs = cycles["frame"], cycles["usecs"]
        k0 = max(0, bisect.bisect_right(frames, int(event["start_s"] * RATE)) - 2)
        k1 = max(0, bisect.bisect_right(frames, int(event["end_s"] * RATE)) - 1)
        wanted = set(usecs[k0:k1 + 1])
        return [(cycle, source) for cycle, at, source in trace if at in wanted]

    def analyze(self, samples, start, end, extra):
        """sustain-analyze on samples[start:end] (written as a float WAV of their own)."""
        path = os.path.join(self.directory, "stretch.wav")
        write_wav(path, samples[max(0, start):max(start, end)])
        result = subprocess.run([self.paths.analyze, "--in", path, "--json", *extra], capture_output=True, text=True,
                                timeout=60)
        if result.returncode not in (0, 1):
            raise TestFailure(f"sustain-analyze: {result.stderr}")
        report = json.loads(result.stdout)
        windows = report.get("windows", [])
        report["windows_ok"] = sum(1 for w in windows if w.get("ok"))
        report["windows"] = len(windows)
        return report


def wake_delays(recording):
    """How long after JACK's estimate of each recorded cycle's start the recorder's callback
    began (us, p50 and p99): what a callback's wake-up adds on this machine."""
    cycles = recording.cycle_times()
    delays = sorted(w - u for u, w in zip(cycles["usecs"], cycles.get("wake_usecs", [])))
    if not delays:
        return None
    return {"p50": percentile(delays, 50), "p99": percentile(delays, 99), "min": delays[0]}


def stall_ends(trace):
    """The cycles at which the stage ran again after its cycle numbering jumped (the audio
    host's JACK server did not run it, or ran it twice, in a cycle's time), with the size."""
    return [(cycle, cycle - previous - 1, at) for (previous, _, _), (cycle, at, _) in zip(trace, trace[1:])
            if cycle != previous + 1]


def after_stall(stalls, cycle, playout):
    """Whether `cycle` lies within `playout` cycles after the end of a stall: its block was
    asked for before the stall or in it."""
    return any(0 <= cycle - end <= playout for end, _, _ in stalls)


def write_wav(path, samples):
    import array
    import struct
    body = array.array("f", samples).tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 3, 1, RATE, RATE * 4, 4, 32) + b"data" + struct.pack("<I", len(body))
    with open(path, "wb") as f:
        f.write(header + body)


def summarize(records, args):
    kinds = {}
    for kind in KINDS:
        mine = [r for r in records if r["kind"] == kind]
        if not mine:
            continue
        warm = [r["warm_again_ms"] for r in mine]
        onset = [abs(r["onset_error_samples"]) for r in mine if r["onset_error_samples"] is not None]
        onset_judged = [r for r in mine if r["onset_error_samples"] is not None and r["onset_judged"]]
        damaged = [r["damaged_samples"] for r in mine]
        stage = [r["engine_damaged_samples"] for r in mine]
        stalled = [r["damaged_samples_after_audio_host_stall"] for r in mine]
        judged = [r for r in mine if r["judged"]]
        kinds[kind] = {"faults": len(mine), "held": sum(r["held"] for r in mine),
                       # Faults recorded with at most MAX_JUDGED_STALLS_PER_S stalls a second
                       # of the audio host's JACK server, and of those, held by the stage.
                       "judged": len(judged), "judged_held_by_stage": sum(r["held_by_stage"] for r in judged),
                       "damaged_samples": {"p50": percentile(damaged, 50), "p100": max(damaged), "total": sum(damaged)},
                       # Of those, the samples of cycles in which the stage did not play a block in
                       # step (its trace): the engine's; the rest the driver did not play as given.
                       "damaged_samples_stage": {"p50": percentile(stage, 50), "p100": max(stage), "total": sum(stage)},
                       # Samples without a block in step right after the audio host's own JACK
                       # server stalled (judge()): the machine's, shown apart.
                       "damaged_samples_after_audio_host_stall": {"p100": max(stalled), "total": sum(stalled),
                                                                  "faults": sum(1 for n in stalled if n)},
                       "audio_host_stalls": sum(r["audio_host_stalls"] for r in mine),
                       "held_by_stage": sum(r["held_by_stage"] for r in mine),
                       "failovers": {"total": sum(r["failovers"] for r in mine),
                                     "faults_with_exactly_one": sum(r["failovers"] == 1 for r in mine)},
                       "warm_again_ms": {"p50": percentile(warm, 50), "p99": percentile(warm, 99), "max": max(warm)},
                       "change_heard": sum(r["change_heard"] for r in mine),
                       "onset_error_abs_samples": {"p50": percentile(onset, 50) if onset else None,
                                                   "max": max(onset) if onset else None, "found": len(onset)},
                       # Onsets judged (JACK's clock undisturbed between the bundle and it), and
                       # of them those within their tolerance.
                       "onsets_judged": len(onset_judged),
                       "onsets_judged_within_tolerance": sum(
                           1 for r in onset_judged if abs(r["onset_error_samples"]) <= r["onset_tolerance_samples"]),
                       "onset_judged_max_abs_samples": max((abs(r["onset_error_samples"]) for r in onset_judged),
                                                           default=None),
                       "blocks_from_standby": sum(r["blocks_from_standby"] for r in mine),
                       "unfilled_blocks": sum(r["unfilled_blocks"] for r in mine)}
    return {"net_latency": args.net_latency, "host_latency_periods": args.host_latency,
            "added_latency_periods_over_local_relay": args.host_latency - 1, "kinds": kinds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build", help="the build directory")
    parser.add_argument("--faults", type=int, default=30, help="faults of each kind (default 30)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="kinds to run, comma-separated")
    parser.add_argument("--hold", type=float, default=0.3, help="seconds a stop, link cut or freeze lasts")
    parser.add_argument("--net-latency", type=int, default=1, help="netjack2's network latency (jackd -d net -l)")
    parser.add_argument("--host-latency", type=int, default=5, help="sustaind --host-latency (periods)")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--rt-guard", metavar="DIR", help="preload the real-time guard (tests/rt_guard) into every "
                        "sustain process; each writes its report into DIR")
    parser.add_argument("--retry-noisy", type=int, default=0, metavar="N",
                        help="run up to N more faults of a kind whose faults were too noisy to judge "
                             f"(more than {MAX_JUDGED_STALLS_PER_S} stalls/s of the audio host's JACK server)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the hosts' logs (their directory is printed)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("tools/rehearse-hosts needs root (network namespaces, cgroups)", file=sys.stderr)
        return 77
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {sorted(unknown)}")
    if args.rt_guard:
        os.makedirs(args.rt_guard, exist_ok=True)
    rehearsal = Rehearsal(args)
    records = []
    try:
        rehearsal.start()
        print(f"rehearsal: audio host + 2 render hosts, netjack2 -l {args.net_latency}, blocks asked "
              f"{args.host_latency} periods ahead; {args.faults} faults of each kind: {', '.join(kinds)}", flush=True)
        frequencies = (550.0, 440.0)
        for kind in kinds:
            judged = index = 0
            while judged < args.faults and index < args.faults + args.retry_noisy:
                record = rehearsal.fault(kind, index, frequencies[len(records) % 2])
                records.append(record)
                judged += record["judged"]
                index += 1
    except TestFailure as failure:
        print(f"FAIL: {failure}", flush=True)
        records.append({"kind": "setup", "held": False, "error": str(failure)})
        if rehearsal.rig is not None:
            rehearsal.rig.keep_logs = True  # the hosts' logs say why
            args.keep_logs = True
    finally:
        rehearsal.close()
    faults = [r for r in records if r["kind"] in KINDS]
    summary = summarize(faults, args)
    summary["faults"] = faults
    summary["all_held"] = bool(faults) and all(r["held"] for r in records)
    summary["all_held_by_stage"] = bool(faults) and all(r.get("held_by_stage") for r in records)
    for kind, figures in summary["kinds"].items():
        print(f"{kind:6s}: {figures['held']}/{figures['faults']} held ({figures['held_by_stage']} counting only the "
              f"stage's damage; judged {figures['judged']}, of them {figures['judged_held_by_stage']} held by the stage); damaged samples p50 {figures['damaged_samples']['p50']} p100 "
              f"{figures['damaged_samples']['p100']} (the stage's p100 {figures['damaged_samples_stage']['p100']}; after a stall "
              f"of the audio host {figures['damaged_samples_after_audio_host_stall']['total']} in "
              f"{figures['damaged_samples_after_audio_host_stall']['faults']} faults, "
              f"{figures['audio_host_stalls']} stalls); failovers "
              f"{figures['failovers']['total']} ({figures['failovers']['faults_with_exactly_one']} faults with exactly one); "
              f"warm again p50 {figures['warm_again_ms']['p50']:.1f} ms p99 {figures['warm_again_ms']['p99']:.1f} ms; "
              f"change heard {figures['change_heard']}/{figures['faults']}; onset |error| max "
              f"{figures['onset_error_abs_samples']['max']} samples, judged {figures['onsets_judged']} of which "
              f"{figures['onsets_judged_within_tolerance']} within tolerance (max "
              f"{figures['onset_judged_max_abs_samples']})", flush=True)
    print(f"added latency over the local relay layout: {summary['added_latency_periods_over_local_relay']} periods "
          f"(blocks asked {args.host_latency} periods ahead, netjack2 -l {args.net_latency})")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
        print(f"written {args.out}")
    print("HELD" if summary["all_held"] else "NOT HELD", flush=True)
    return 0 if summary["all_held"] else 1


if __name__ == "__main__":
    sys.exit(main())
