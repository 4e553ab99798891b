"""The SuperCollider Quark (examples/supercollider/Sustain) drives the real engine: sclang,
headless, with the Quark on its class path (a private language configuration), runs
sc_quark.scd against sustaind on a private JACK dummy server, through a relay that keeps
a copy of every packet sclang sends (what went over the wire is judged as well as what
the engine did and what the driver played):

- `Sustain:voices` reads the engine's number of voices (started with --voices 6);
- `Pbind(\\type, \\sustain, ...)` sends each event as ONE timed bundle (voice 0's freq and
  gain), stamped at the event's logical time plus the latency (0.2 s): the timetags are
  `dur` apart, the rest sends nothing and leaves a gap of two `dur`s;
- the engine scheduled every timed message on the wire and applied each on time, none
  late; the final values are the last event's, a chord event's degrees and a bind's;
- every event is heard at its time: the recording of the driver's output
  (system:monitor_1) has a change of pitch at each event (found from the tone itself:
  where the 10 ms glide to the new frequency begins), at the time its timetag asks for and
  `dur` after the one before, within a period; sustain-analyze measures each note's
  frequency and level;
- `Sustain:sync` waits for /engine/synced (true), and gives up on an engine that never
  answers (false); Cmd-. (CmdPeriod.run) sends /engine/panic, and a sync afterwards is
  still answered (the Quark's OSCFuncs outlive Cmd-.).

Without sclang, or if sclang cannot start here, the test is skipped (77).
"""
import math
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from harness import (SKIP, Engine, JackServer, Recording, TestFailure, check, check_heard, main, onsets,
                     wait_until)
from osc_wire import NTP_TO_UNIX_S, message, realtime_minus_monotonic_ns, udp
from sclang import SCLANG_TIMEOUT_S, sclang_command, sclang_env, sclang_usable

HERE = os.path.dirname(os.path.abspath(__file__))
QUARK = os.path.normpath(os.path.join(HERE, "..", "..", "examples", "supercollider", "Sustain"))
SCRIPT = os.path.join(HERE, "sc_quark.scd")

RATE = 48000
PERIOD = 64
RAMP = 480                 # sustaind's --ramp-ms 10 at 48 kHz: every change glides this long
FREQ_HALF_WINDOW = 32      # local_frequencies fits the tone over this many samples each side
VOICES = 6
LATENCY_S = 0.2
DUR_S = 0.125
# The pattern sc_quark.scd plays on voice 0 (handed to it in its environment), None a rest.
FREQS = [440.0, 550.0, 660.0, 495.0, None, 587.5, 392.0, 523.25]
AMP = 0.3
MASTER = 0.5
# Heard minus requested time, and the spacing of two changes against that of their
# timetags: within a period. The engine places a timed change to the sample; what is
# left is the ruler (JACK's cycle-time estimates) and finding a glide's start in the tone.
TOLERANCE_S = PERIOD / RATE
# As test_timed_bundles: when JACK skips a cycle (an xrun it reports), the render-to-play
# delay changes by a period and the engine follows after a few cycles; and with more than
# one xrun a second, JACK's cycle times (the ruler) are re-anchored too often to measure by.
XRUN_SETTLE_FRAMES = 8 * PERIOD
MAX_JUDGED_XRUN_RATE = 1.0
# The recording starts when sclang is ready to play: the pattern takes a second and is
# heard 0.2 s after it is sent; the rest is margin for a slow language.
RECORD_S = 4.0


def osc_string(data, offset):
    end = data.index(b"\0", offset)
    return data[offset:end].decode(errors="replace"), (end // 4 + 1) * 4


def parse_message(data):
    """(address, [arguments]) of an OSC message with i, f, d, h and s arguments."""
    address, offset = osc_string(data, 0)
    types, offset = osc_string(data, offset)
    args = []
    for t in types[1:]:
        if t in "if":
            args.append(struct.unpack(">" + t, data[offset:offset + 4])[0])
            offset += 4
        elif t in "dh":
            args.append(struct.unpack(">d" if t == "d" else ">q", data[offset:offset + 8])[0])
            offset += 8
        elif t == "s":
            value, offset = osc_string(data, offset)
            args.append(value)
        else:
            raise TestFailure(f"sclang sent an argument of type {t!r} the test does not read: {data!r}")
    return address, args


def parse_packet(data):
    """(timetag, [(address, args)]): timetag None for a plain message, 1 for "immediately"."""
    if not data.startswith(b"#bundle\0"):
        return None, [parse_message(data)]
    timetag = struct.unpack(">Q", data[8:16])[0]
    messages, offset = [], 16
    while offset + 4 <= len(data):
        size = struct.unpack(">i", data[offset:offset + 4])[0]
        inner = parse_packet(data[offset + 4:offset + 4 + size])
        messages += inner[1]
        offset += 4 + size
    return timetag, messages


def unix_ns_of_timetag(timetag):
    return ((timetag >> 32) - NTP_TO_UNIX_S) * 1_000_000_000 + ((timetag & 0xFFFFFFFF) * 1_000_000_000 >> 32)


class Relay:
    """A UDP relay between sclang and the engine: forwards both ways (the engine answers the
    relay, which passes the answers on to sclang) and keeps every packet sclang sends with
    the CLOCK_REALTIME time it arrived."""

    def __init__(self, engine_port):
        self.engine = ("127.0.0.1", engine_port)
        self.sock = udp()
        self.port = self.sock.getsockname()[1]
        self.client = None
        self.sent = []  # (arrival, realtime ns; packet) of what sclang sent
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def run(self):
        self.sock.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                data, source = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:  # an ICMP error from a peer gone away: nothing to relay
                continue
            if source == self.engine:
                if self.client is not None:
                    self.sock.sendto(data, self.client)
            else:
                self.client = source
                self.sent.append((time.clock_gettime_ns(time.CLOCK_REALTIME), data))
                self.sock.sendto(data, self.engine)

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def local_frequencies(x, begin, end, half=FREQ_HALF_WINDOW):
    """Frequency (Hz) of the tone around each sample n in [begin, end): the sine recurrence
    x[m] + x[m-2] = 2cos(w) x[m-1], fitted by least squares over the 2*half samples around n
    (running sums: one pass over the recording). None where the tone is too quiet."""
    lo, hi = max(2, begin - half), min(len(x), end + half)
    num, den = [0.0], [0.0]
    for m in range(lo, hi):
        num.append(num[-1] + x[m - 1] * (x[m] + x[m - 2]))
        den.append(den[-1] + x[m - 1] * x[m - 1])
    out = []
    for n in range(begin, end):
        a, b = max(lo, n - half) - lo, min(hi, n + half) - lo
        energy = den[b] - den[a]
        if energy < 1e-6:
            out.append(None)
            continue
        c = max(-1.0, min(1.0, (num[b] - num[a]) / energy / 2))
        out.append(math.acos(c) * RATE / (2 * math.pi))
    return out


def glide_start(freqs, offset, start, f_old, f_new, hold=200):
    """The sample at which the glide from f_old to f_new began, searched from `start` on;
    `freqs` are local_frequencies() of the samples from `offset` on, None where unknown (too
    quiet, or damage the machine explains). The glide is linear over RAMP samples: its
    midpoint is the first place where the local frequency passes halfway and every known
    estimate of the next `hold` samples stays past it, refined by a straight line through
    the known estimates of the glide's linear part (10-90 % of the way); half the glide
    before that. Within about 2 samples of the sample the engine applied the change at.
    None if there is no such glide, or too little of it is known to place it."""
    mid = (f_old + f_new) / 2
    sign = 1 if f_new > f_old else -1
    n = start - offset
    while n < len(freqs) - hold:
        if freqs[n] is None or (freqs[n] - mid) * sign <= 0:
            n += 1
            continue
        window = [f for f in freqs[n:n + hold] if f is not None]
        if len(window) < hold // 2 or any((f - mid) * sign <= 0 for f in window):
            n += 1
            continue
        low, high = min(f_old, f_new) + 0.1 * abs(f_new - f_old), max(f_old, f_new) - 0.1 * abs(f_new - f_old)
        linear = [(m, freqs[m]) for m in range(n - RAMP // 2, n + RAMP // 2)
                  if 0 <= m < len(freqs) and freqs[m] is not None and low <= freqs[m] <= high]
        if len(linear) < RAMP // 4:
            return None
        mean_m = sum(m for m, _ in linear) / len(linear)
        mean_f = sum(f for _, f in linear) / len(linear)
        slope = sum((m - mean_m) * (f - mean_f) for m, f in linear) / sum((m - mean_m) ** 2 for m, _ in linear)
        if slope * sign <= 0:
            return None
        return offset + mean_m + (mid - mean_f) / slope - RAMP / 2
    return None


def pattern_bundles(relay):
    """The pattern's bundles on the wire: (arrival, timetag: realtime ns; messages) of each
    timed bundle that sets voice 0's frequency."""
    found = []
    for arrival, data in relay.sent:
        timetag, messages = parse_packet(data)
        if timetag not in (None, 1) and any(address == "/engine/voice/0/freq" for address, _ in messages):
            found.append((arrival, unix_ns_of_timetag(timetag), messages))
    return found


def judge_wire(relay):
    """One timed bundle per event that is not a rest, each with voice 0's freq and gain,
    stamped at the event's logical time plus the latency: `dur` apart."""
    bundles = pattern_bundles(relay)
    steps = [i for i, f in enumerate(FREQS) if f is not None]
    check(len(bundles) == len(steps), f"one bundle per event, none for the rest: {len(bundles)} bundles for "
          f"{len(FREQS)} events, {len(FREQS) - len(steps)} of them a rest")
    first = bundles[0][1]
    aheads = []
    for (arrival, due, messages), step in zip(bundles, steps):
        freq = FREQS[step]
        check([address for address, _ in messages] == ["/engine/voice/0/freq", "/engine/voice/0/gain"]
              and abs(messages[0][1][0] - freq) < 1e-3 and abs(messages[1][1][0] - AMP) < 1e-6,
              f"event {step}'s bundle sets voice 0 to {freq} Hz, gain {AMP}: {messages}")
        # The stamp is the event's logical time plus the latency. sclang sends at the logical
        # time or later, never earlier: its interpreter runs at normal priority, so a machine
        # that leaves its CPU unrun delays a send by as long (100 ms and more); the stamp
        # must not move with it. Never more than the latency ahead.
        ahead = (due - arrival) / 1e9
        aheads.append(ahead)
        check(0 < ahead <= LATENCY_S + 0.002,
              f"event {step}'s bundle is stamped at most the latency ahead of when it left: {ahead * 1000:.1f} ms")
        # Logical times are exact multiples of dur; sclang may re-estimate its wall clock
        # between two events (by microseconds).
        check(abs((due - first) / 1e9 - step * DUR_S) < 100e-6,
              f"event {step} is stamped {step} x {DUR_S} s after the first: {(due - first) / 1e9:.6f} s")
    # Stamps dur apart, one of them the latency ahead of its send: each is its logical time
    # plus the latency. The median send leaves on time.
    aheads.sort()
    print(f"bundles stamped ahead of their send: min {aheads[0] * 1000:.1f} ms, median "
          f"{aheads[len(aheads) // 2] * 1000:.1f} ms, max {aheads[-1] * 1000:.1f} ms", flush=True)
    check(LATENCY_S - 0.005 <= aheads[len(aheads) // 2],
          f"the median bundle is stamped the latency ahead of when it left: {aheads[len(aheads) // 2] * 1000:.1f} ms")


def judge_engine(engine, relay, before):
    """The engine scheduled every timed message sclang sent and applied each on time; the
    final values; the panic of Cmd-."""
    packets = [parse_packet(data) for _, data in relay.sent]
    timed = [messages for timetag, messages in packets if timetag not in (None, 1)]
    timed_messages = sum(len(messages) for messages in timed)
    # The pattern's, the bind's (2 messages) and the chord event's (4).
    check(len(timed) == len(pattern_bundles(relay)) + 2 and timed_messages == 2 * len(pattern_bundles(relay)) + 6,
          f"sclang sent {len(timed)} timed bundles of {timed_messages} messages: the pattern's, the bind's "
          "and the chord's")
    _, status = engine.status()
    timing = status["timing"]
    scheduled = timing["scheduled"] - before["timing"]["scheduled"]
    on_time = timing["applied_on_time"] - before["timing"]["applied_on_time"]
    check(scheduled == timed_messages, f"the engine scheduled each of the {timed_messages} timed messages: {timing}")
    check(on_time == timed_messages, f"and applied each on time: {timing}")
    check_heard(timing["late"] == 0, f"none was late: {timing}")
    check(status["osc"]["panics"] == 1, f"Cmd-. sent one /engine/panic: {status['osc']['panics']}")
    params = status["params"]
    voices = params["voices"]
    print(f"params: {params}", flush=True)
    check(len(voices) == VOICES and params["master_gain"] == 0.0,
          f"{VOICES} voices; the panic silenced the master")
    check(voices[0]["freq"] == FREQS[-1] and abs(voices[0]["gain"] - AMP) < 1e-6,
          f"voice 0 ends at the last event's {FREQS[-1]} Hz, gain {AMP}")
    check(voices[1]["freq"] == 330.0 and voices[1]["gain"] == 0.0, "the bind set voice 1")
    # Degrees 0 and 2 of the default scale are MIDI notes 60 and 64.
    for voice, note in ((2, 60), (3, 64)):
        freq = 440.0 * 2 ** ((note - 69) / 12)
        check(abs(voices[voice]["freq"] - freq) < 1e-3 and voices[voice]["gain"] == 0.0,
              f"the chord event set voice {voice} to MIDI note {note} ({freq:.3f} Hz): {voices[voice]}")


def judge_heard(relay, recording, output_latency):
    """Each event heard at its timetag's time and `dur` after the one before, within a
    period; each note's frequency and level as sent (sustain-analyze)."""
    samples = recording.samples()
    bundles = pattern_bundles(relay)
    notes = [messages[0][1][0] for _, _, messages in bundles]
    dues = [due for _, due, _ in bundles]
    found = onsets(samples)
    check(len(found) == 1, f"the tone comes in once, with the first event (onsets at {found})")

    def heard_ns(index):
        # The dummy driver copies what it played into system:monitor_1 after the graph ran:
        # a client reads in cycle c what was played in cycle c - 1.
        return recording.monotonic_ns_at(round(index) - PERIOD) + (index - round(index)) * 1e9 / RATE \
            + output_latency * 1e9 / RATE

    offset = realtime_minus_monotonic_ns()

    def index_due(due):
        # heard_ns's inverse: the sample of the recording the timetag `due` asks to be heard at,
        # by JACK's cycle times (a driver that woke late may have skipped ahead).
        return recording.index_at_monotonic_ns(due - offset - output_latency * 1e9 / RATE) + PERIOD

    # sustain-analyze: each note from 20 ms after its glide began (the glide takes 10 ms) to
    # 5 ms before the next; the last for 0.1 s (Cmd-. silences the engine 0.2 s after it).
    # Placed after the onset (the first note) by JACK's cycle times.
    expected = [index_due(due) for due in dues]
    starts = [(at - expected[0]) / RATE for at in expected]
    ends = starts[1:] + [starts[-1] + 0.105]
    report = recording.analyze(*[f"--expect={start + 0.02:.4f}:{end - 0.005:.4f}:{freq}:{MASTER * AMP}"
                                 for start, end, freq in zip(starts, ends, notes)])
    xruns = sorted(set(recording.summary.get("xrun_frames", [])))
    # Damage the machine explains (the recorder skipped, the driver woke late, a reported
    # xrun) is printed; any other is the engine's, and fails the test.
    engine_damage, machine_damage = recording.split_damage(report)
    if machine_damage:
        print(f"note: damage the machine explains: {[(e['start_s'], e['damaged'], e['cause']) for e in machine_damage]}; "
              f"JACK reported {len(xruns)} xruns during the recording", flush=True)
    check_heard(not engine_damage, f"no damage the engine answers for: {engine_damage}")
    for window in report["windows"]:
        check_heard(window["ok"], f"sustain-analyze: {window['expected_freq']} Hz at {window['expected_amp']} "
                    f"from {window['start_s']:.3f} to {window['end_s']:.3f} s after the onset: "
                    f"{window['freq_hz']} Hz at {window['amp']:.4f} {window['problem']}")

    # Where each note began: the first from silence (its level glides up from 0, so its
    # first sample is the first that is not 0), each later one where its glide began,
    # searched from 20 ms before its timetag asks for it. Estimates whose window touches
    # damage the machine explains are unknown; a glide that damage hides is not judged.
    begun = [float(found[0])]
    base = found[0] + RAMP
    freqs = local_frequencies(samples, base, len(samples))
    hidden = [(round(e["start_s"] * RATE) - FREQ_HALF_WINDOW, round(e["end_s"] * RATE) + FREQ_HALF_WINDOW)
              for e in machine_damage]
    for first, last in hidden:
        for m in range(max(first, base), min(last + 1, base + len(freqs))):
            freqs[m - base] = None
    unjudged = set()
    for k in range(1, len(notes)):
        near = found[0] + expected[k] - expected[0]
        at = glide_start(freqs, base, round(near) - 2 * RAMP, notes[k - 1], notes[k])
        if at is None and any(first <= near + RAMP and near - 2 * RAMP <= last for first, last in hidden):
            print(f"note: note {k}'s glide is hidden by damage the machine explains; not judged", flush=True)
            unjudged.add(k)
            at = near
        begun.append(at)
    check_heard(all(at is not None for at in begun), f"each note's change is in the recording: at samples {begun}")
    if any(at is None for at in begun):
        return

    heard = [heard_ns(at) for at in begun]
    errors = [(h - (due - offset)) / 1e9 for h, due in zip(heard, dues)]
    print("heard - requested, samples: " + ", ".join(f"{e * RATE:+.1f}" for e in errors), flush=True)
    xrun_rate = len(xruns) / (len(samples) / RATE)

    def excused(error, first, last):
        """Whether an error beyond the tolerance is the machine's (see XRUN_SETTLE_FRAMES)."""
        if abs(error) <= TOLERANCE_S:
            return False
        if xrun_rate > MAX_JUDGED_XRUN_RATE:
            print(f"note: not judged, JACK reported {xrun_rate:.1f} xruns/s during the recording (its cycle times, "
                  f"the ruler here, are re-anchored at each): {error * 1000:+.3f} ms off", flush=True)
            return True
        if any(first - XRUN_SETTLE_FRAMES <= x <= last + XRUN_SETTLE_FRAMES for x in xruns) and \
                abs(error * RATE - round(error * RATE / PERIOD) * PERIOD) <= 4:
            print(f"note: {error * 1000:+.3f} ms off, whole periods, at a JACK-reported xrun", flush=True)
            return True
        return False

    for k, (error, at) in enumerate(zip(errors, begun)):
        if k not in unjudged and not excused(error, at, at):
            check_heard(abs(error) <= TOLERANCE_S, f"note {k} ({notes[k]} Hz) is heard within a period of the time "
                        f"its timetag asks for: {error * RATE:+.1f} samples")
    for k in range(1, len(notes)):
        if k in unjudged or k - 1 in unjudged:
            continue
        spacing, asked = (heard[k] - heard[k - 1]) / 1e9, (dues[k] - dues[k - 1]) / 1e9
        if not excused(spacing - asked, begun[k - 1], begun[k]):
            check_heard(abs(spacing - asked) <= TOLERANCE_S,
                        f"note {k} is heard {spacing * 1000:.3f} ms after the one before "
                        f"({begun[k] - begun[k - 1]:.0f} samples), {asked * 1000:.0f} ms asked")


def wait_for_ready(control, sclang, deadline):
    """The address sclang sent /test/ready from; a failure if sclang quit first or the
    deadline passed."""
    while time.monotonic() < deadline:
        if sclang.poll() is not None:
            raise TestFailure(f"sclang exited with {sclang.returncode} before it was ready to play")
        readable, _, _ = select.select([control], [], [], 0.1)
        if readable:
            data, source = control.recvfrom(65536)
            if parse_packet(data)[1][0][0] == "/test/ready":
                return source
    raise TestFailure(f"sclang was not ready to play within {SCLANG_TIMEOUT_S} s")


def test(paths):
    home = tempfile.mkdtemp(prefix="sustain-sc-quark-")
    sclang = None
    output_path = os.path.join(home, "sclang.out")

    def output():
        with open(output_path, errors="replace") as f:
            return f.read()

    try:
        reason = sclang_usable(home)
        if reason:
            print(f"{reason}\nskipping", flush=True)
            sys.exit(SKIP)
        config = os.path.join(home, "sclang_conf.yaml")
        with open(config, "w") as f:
            # The Quark's folder on the class path beside the standard library, as
            # Quarks.install puts it in a user's own configuration.
            f.write(f"includePaths:\n    - {QUARK}\nexcludePaths:\n    []\n"
                    "postInlineWarnings: false\nexcludeDefaultPaths: false\n")

        with JackServer() as jack, Engine(paths, jack, extra_args=["--voices", str(VOICES)]) as engine, \
                Relay(engine.port) as relay, udp() as control, udp() as silent:
            wait_until(lambda: engine.status()[1]["timing"]["frame_clock"], 5, "the frame clock")
            before = engine.status()[1]
            env = sclang_env(home)
            env.update(SUSTAIN_PORT=str(relay.port), SUSTAIN_TEST_PORT=str(control.getsockname()[1]),
                       SUSTAIN_SILENT_PORT=str(silent.getsockname()[1]),
                       SUSTAIN_TEST_FREQS=" ".join("rest" if f is None else str(f) for f in FREQS),
                       SUSTAIN_TEST_DUR=str(DUR_S), SUSTAIN_TEST_AMP=str(AMP), SUSTAIN_TEST_MASTER=str(MASTER),
                       SUSTAIN_TEST_LATENCY=str(LATENCY_S))
            with open(output_path, "w") as output_file:
                sclang = subprocess.Popen(sclang_command(SCRIPT, config=config), env=env, cwd=home,
                                          stdin=subprocess.DEVNULL, stdout=output_file, stderr=subprocess.STDOUT)
            language = wait_for_ready(control, sclang, time.monotonic() + SCLANG_TIMEOUT_S)
            with Recording(paths, jack, seconds=RECORD_S, cycle_times=True) as recording:
                control.sendto(message("/test/go"), language)
                try:
                    code = sclang.wait(RECORD_S + 10)
                except subprocess.TimeoutExpired:
                    code = None
                recording.finish()
                lines = [line.strip() for line in output().splitlines()]
                print("--- sclang, the script's lines ---\n" + "\n".join(
                    line for line in lines if line.split(" ")[0] in
                    ("VOICES", "SYNC", "SILENT", "NO", "TIMEOUT", "DONE", "EXIT")), flush=True)
                if code != 0:
                    raise TestFailure(f"sclang exited with {code} (None: still running {RECORD_S + 10} s after "
                                      "it was told to play)")
                check("DONE" in lines, "the script got through and quit")
                check(f"VOICES {VOICES}" in lines, f"Sustain:voices read the engine's {VOICES} voices")
                check(lines.count("SYNC true") == 2, "Sustain:sync waited for /engine/synced (true, twice)")
                check("SILENT SYNC false" in lines, "Sustain:sync gave up on an engine that never answers (false)")
                check("SYNC AFTER PATTERN true" in lines, "Sustain:sync after the pattern")
                check("SYNC AFTER CMD-PERIOD true" in lines,
                      "Sustain:sync after Cmd-.: the Quark's OSCFuncs outlived Cmd-.")
                judge_wire(relay)
                judge_engine(engine, relay, before)
                judge_heard(relay, recording, before["timing"]["output_latency_frames"])
    except TestFailure:
        if sclang is not None:
            print(f"--- sclang's output ---\n{output()[-4000:]}", flush=True)
        raise
    finally:
        if sclang is not None and sclang.poll() is None:
            sclang.kill()
            sclang.wait()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main(test)
