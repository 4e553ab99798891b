"""sustain side by side with scsynth (Debian's supercollider-server) on one private JACK
dummy server: the same tone, the same OSC traffic, windows alternating between the two
engines in every round (which one goes first alternates too). Run through tools/bench-peer.

Per round and engine, a fresh engine is started, then:
- idle: 4 voices, one sounding (440 Hz, gain 0.2), no OSC, for --idle-seconds: CPU of each
  of the engine's processes (every thread's schedstat), context switches per second (every
  thread's, voluntary and not), PSS without JACK's shared segments (see pss_kb) and with
  them; jackd's CPU and PSS in the same window;
- round trip: --round-trips times a change and a confirmation from one socket, 3-7 ms apart:
  sustain /engine/voice/0/freq + /engine/sync ID -> /engine/synced ID; scsynth
  /n_set 1000 freq + /sync ID -> /synced ID (each engine's own "applied" answer);
- intake, 1 and 4 senders: sustain-osc-flood unpaced (--rate 0), --messages per sender,
  each sender on its own voice (sustain /engine/voice/K/freq; scsynth /n_set 100K freq),
  the last message of each a value no other carries. Taken in = sent - the kernel's drops
  on the engine's socket (/proc/net/udp, the same source for both) - what the engine
  dropped itself (scsynth: "command FIFO full"; sustain drops nothing after the kernel).
  Then the engine is asked to confirm (/engine/sync, /sync) and each voice's frequency is
  read back (sustain-status --json --once; /s_get): did the last value of every sender win?
Each round also measures the floor: one and four plain JACK clients playing a sine
(jack_simple_client), idle, the same way.

Prints a table and the ratios sustain / scsynth (medians over rounds); writes JSON.
"""
import argparse
import json
import os
import random
import re
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
import osc_wire  # noqa: E402
from harness import (Engine, JackServer, Paths, TestFailure, children_of, free_udp_port, stop_process,  # noqa: E402
                     wait_until)
from figures import machine, percentile, write_report  # noqa: E402

VOICES = 4
TONE_GAIN = 0.2


# ---- OSC over one socket -------------------------------------------------------------------

def parse_message(data):
    """(address, [arguments]) of one OSC message (types i f s d only); None if not one."""
    try:
        end = data.index(b"\0")
        address = data[:end].decode()
        offset = (end + 4) & ~3
        end = data.index(b"\0", offset)
        types = data[offset + 1:end].decode()
        offset = (end + 4) & ~3
        args = []
        for t in types:
            if t in "if":
                args.append(struct.unpack(">" + t, data[offset:offset + 4])[0])
                offset += 4
            elif t == "d":
                args.append(struct.unpack(">d", data[offset:offset + 8])[0])
                offset += 8
            elif t == "s":
                end = data.index(b"\0", offset)
                args.append(data[offset:end].decode())
                offset = (end + 4) & ~3
            elif t == "b":
                size = struct.unpack(">i", data[offset:offset + 4])[0]
                offset += 4 + ((size + 3) & ~3)
                args.append(None)
        return address, args
    except (ValueError, struct.error, UnicodeDecodeError):
        return None


class Client:
    """One UDP socket that sends to an engine and hears its replies."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.to = ("127.0.0.1", port)

    def send(self, packet):
        self.sock.sendto(packet, self.to)

    def wait_for(self, predicate, timeout):
        """The first reply (address, args) for which predicate holds, or None by the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            parsed = parse_message(self.sock.recv(65536))
            if parsed and predicate(*parsed):
                return parsed

    def close(self):
        self.sock.close()


# ---- /proc ---------------------------------------------------------------------------------

def cpu_seconds(pid):
    """CPU time of every live thread of `pid` (schedstat: nanoseconds, not clock ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def context_switches(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def pss_kb(pid):
    """(all, JACK's shared segments) PSS of `pid`, kB. JACK's segments (/dev/shm/jack-*) are
    the server's: every client process maps them, and PSS charges each mapper an equal part,
    so an engine of five such processes is charged 5/6 of them and one of one process 1/2. Compared
    without them; reported with them too."""
    total = jack = 0
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if line.startswith("Pss:"):
                kb = int(line.split()[1])
                total += kb
                if name.startswith("/dev/shm/jack"):
                    jack += kb
            elif re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                parts = line.split()
                name = parts[5] if len(parts) > 5 else ""
    return total, jack


def udp_drops(port):
    """The kernel's drop count of the UDP socket bound to `port` (IPv4), 0 if none is."""
    wanted = f":{port:04X}"
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1].endswith(wanted):
                return int(fields[-1])
    return 0


def process_tree(pid):
    found = [pid]
    for child in children_of(pid):
        found += process_tree(child)
    return found


def measure_idle(pids, jackd_pid, seconds):
    watched = pids + [jackd_pid]
    before = {p: (cpu_seconds(p), context_switches(p)) for p in watched}
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    after = {p: (cpu_seconds(p), context_switches(p)) for p in watched}
    cpu = {p: 100.0 * (after[p][0] - before[p][0]) / elapsed for p in watched}
    switches = {p: (after[p][1] - before[p][1]) / elapsed for p in watched}
    pss = {p: pss_kb(p) for p in watched}
    return {
        "cpu_percent": sum(cpu[p] for p in pids),
        "cpu_percent_with_jackd": sum(cpu.values()),
        "context_switches_per_s": sum(switches[p] for p in pids),
        "pss_mb": sum(pss[p][0] - pss[p][1] for p in pids) / 1024.0,
        "pss_mb_with_jack_segments": sum(pss[p][0] for p in pids) / 1024.0,
        "pss_mb_with_jackd": sum(pss[p][0] for p in watched) / 1024.0,
        "processes": len(pids),
        "per_process": [{"pid": p, "command": os.path.basename(open(f"/proc/{p}/cmdline").read().split("\0")[0]),
                         "cpu_percent": cpu[p], "context_switches_per_s": switches[p],
                         "pss_mb": (pss[p][0] - pss[p][1]) / 1024.0} for p in pids],
    }


# ---- the two engines -----------------------------------------------------------------------

def pstring(text):
    return bytes([len(text)]) + text.encode()


def tone_synthdef():
    """A SynthDef file (SCgf version 2) for Out.ar(0, SinOsc.ar(freq) * amp), with controls
    freq and amp: scsynth's own binary format, written here so that the benchmark needs no
    sclang."""
    def ugen(name, rate, inputs, outputs, special=0):
        out = pstring(name) + struct.pack(">biih", rate, len(inputs), len(outputs), special)
        for source, index in inputs:
            out += struct.pack(">ii", source, index)
        return out + bytes(outputs)
    constants = [0.0]
    body = pstring("sustain_peer_tone")
    body += struct.pack(">i", len(constants)) + b"".join(struct.pack(">f", c) for c in constants)
    body += struct.pack(">i", 2) + struct.pack(">ff", 440.0, 0.0)
    body += struct.pack(">i", 2) + pstring("freq") + struct.pack(">i", 0) + pstring("amp") + struct.pack(">i", 1)
    ugens = [
        ugen("Control", 1, [], [1, 1]),                  # 0: freq, amp (control rate)
        ugen("SinOsc", 2, [(0, 0), (-1, 0)], [2]),       # 1: SinOsc.ar(freq, phase 0)
        ugen("BinaryOpUGen", 2, [(1, 0), (0, 1)], [2], special=2),  # 2: * amp
        ugen("Out", 2, [(-1, 0), (2, 0)], []),           # 3: Out.ar(bus 0, ...)
    ]
    body += struct.pack(">i", len(ugens)) + b"".join(ugens) + struct.pack(">h", 0)
    return b"SCgf" + struct.pack(">ih", 2, 1) + body


def blob_message(address, blob):
    return osc_wire.pad(address.encode()) + osc_wire.pad(b",b") + struct.pack(">i", len(blob)) + blob + \
        b"\0" * ((4 - len(blob) % 4) % 4)


class Scsynth:
    name = "scsynth"

    def __init__(self, jack, max_logins=4):
        self.jack = jack
        self.max_logins = max_logins  # -l: clients /notify can register (scsynth's default is 64)
        self.port = free_udp_port()
        self.log = tempfile.NamedTemporaryFile(prefix="scsynth-", suffix=".log", delete=False)
        self.process = None
        self.client = None

    def start(self):
        env = self.jack.env()
        env["SC_JACK_DEFAULT_OUTPUTS"] = "system:playback_1"
        # -R 0: no Zeroconf; -B: loopback only, as sustain; -z 64: JACK's period.
        self.process = subprocess.Popen(["scsynth", "-u", str(self.port), "-B", "127.0.0.1", "-R", "0", "-i", "0",
                                         "-o", "1", "-z", "64", "-l", str(self.max_logins)], env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.client = Client(self.port)
        wait_until(lambda: self.ping() or self.process.poll() is not None, 15, "scsynth to answer /status")
        if self.process.poll() is not None:
            raise TestFailure(f"scsynth exited: {open(self.log.name).read()[-2000:]}")
        self.client.send(blob_message("/d_recv", tone_synthdef()))
        if not self.client.wait_for(lambda a, args: a == "/done" and args[:1] == ["/d_recv"], 10):
            raise TestFailure("scsynth did not load the tone's SynthDef")
        for voice in range(VOICES):
            self.client.send(osc_wire.message("/s_new", "siiisfsf", "sustain_peer_tone", 1000 + voice, 1, 0, "freq",
                                              440.0 * (voice + 1), "amp", TONE_GAIN if voice == 0 else 0.0))
        if not self.sync(1):
            raise TestFailure("scsynth did not answer /sync after starting the tones")
        return self

    def ping(self):
        self.client.send(osc_wire.message("/status"))
        return self.client.wait_for(lambda a, args: a == "/status.reply", 0.2) is not None

    def sync(self, ident, timeout=10):
        self.client.send(osc_wire.message("/sync", "i", ident))
        return self.client.wait_for(lambda a, args: a == "/synced" and args == [ident], timeout) is not None

    def pids(self):
        return process_tree(self.process.pid)

    def set_message(self, voice, value):
        return osc_wire.message("/n_set", "isf", 1000 + voice, "freq", value)

    def sync_message(self, ident):
        return osc_wire.message("/sync", "i", ident), lambda a, args: a == "/synced" and args == [ident]

    def flood_args(self, voice):
        return ["--address", "/n_set", "--prefix", f"i:{1000 + voice},s:freq"]

    def frequencies(self):
        found = []
        for voice in range(VOICES):
            self.client.send(osc_wire.message("/s_get", "is", 1000 + voice, "freq"))
            reply = self.client.wait_for(lambda a, args, v=voice: a == "/n_set" and args[:1] == [1000 + v], 5)
            found.append(reply[1][2] if reply else None)
        return found

    def own_drops(self):
        with open(self.log.name, errors="replace") as f:
            return f.read().count("command FIFO full")

    def stop(self):
        if self.client:
            self.client.close()
        stop_process(self.process)
        os.unlink(self.log.name)


class Sustain:
    name = "sustain"

    def __init__(self, jack, paths, extra_args=()):
        self.engine = Engine(paths, jack, extra_args=["--gain", str(TONE_GAIN), "--voices", str(VOICES)] + list(extra_args),
                             trace=False)
        self.paths = paths
        self.port = self.engine.port
        self.client = None

    def start(self):
        self.engine.start()
        wait_until(lambda: self.spare_ready(), 15, "sustain's spare to be ready")
        self.client = Client(self.port)
        return self

    def spare_ready(self):
        code, status = self.engine.status()
        return code == 0 and status["supervisor"]["spare_ready"] and status["supervisor"]["output_spare_ready"]

    def sync(self, ident, timeout=10):
        packet, matches = self.sync_message(ident)
        self.client.send(packet)
        return self.client.wait_for(matches, timeout) is not None

    def pids(self):
        return process_tree(self.engine.process.pid)

    def set_message(self, voice, value):
        return osc_wire.message(f"/engine/voice/{voice}/freq", "f", value)

    def sync_message(self, ident):
        return osc_wire.message("/engine/sync", "i", ident), lambda a, args: a == "/engine/synced" and args == [ident]

    def flood_args(self, voice):
        return ["--address", f"/engine/voice/{voice}/freq"]

    def frequencies(self):
        code, status = self.engine.status()
        return [v["freq"] for v in status["params"]["voices"]][:VOICES] if code == 0 else [None] * VOICES

    def received(self):
        return self.osc_counters()["received"]

    def osc_counters(self):
        code, status = self.engine.status()
        return status["osc"] if code == 0 else {}

    def own_drops(self):
        return 0  # after the kernel every message is applied or coalesced, never dropped

    def stop(self):
        if self.client:
            self.client.close()
        self.engine.stop()
        self.engine.__exit__(None, None, None)


class PlainClients:
    """The floor: `count` plain JACK clients playing a sine (jackd2's jack_simple_client), no
    OSC. What JACK itself charges per client in the graph (a wake-up and a context switch per
    cycle each), against which the engines' idle cost is read: sustain runs four JACK clients
    (two workers, two output stages), scsynth one."""

    def __init__(self, jack, count):
        self.jack = jack
        self.count = count
        self.name = f"{count} plain client{'s' if count > 1 else ''}"
        self.processes = []

    def start(self):
        for k in range(self.count):
            self.processes.append(subprocess.Popen(["jack_simple_client", f"sustain-peer-floor-{k}"], env=self.jack.env(),
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        names = [f"sustain-peer-floor-{k}" for k in range(self.count)]
        wait_until(lambda: all(n in subprocess.run(["jack_lsp"], env=self.jack.env(), capture_output=True,
                                                   text=True).stdout for n in names), 10, "the plain clients")
        return self

    def pids(self):
        return [p.pid for p in self.processes]

    def stop(self):
        for p in self.processes:
            stop_process(p)


# ---- the scenarios -------------------------------------------------------------------------

def round_trip(engine, count):
    """Milliseconds from sending a change to the engine's confirmation that it is applied.
    3-7 ms apart at random, so that the changes arrive at every phase of the audio cycle
    (a fixed pace can lock onto one phase, and the figure then says more about the pace)."""
    pacing = random.Random(20261204)
    times = []
    for i in range(count):
        ident = 10_000 + i
        packet, matches = engine.sync_message(ident)
        start = time.monotonic_ns()
        engine.client.send(engine.set_message(0, 440.0 + (i % 2)))
        engine.client.send(packet)
        if engine.client.wait_for(matches, 2) is not None:
            times.append((time.monotonic_ns() - start) / 1e6)
        time.sleep(pacing.uniform(0.003, 0.007))
    return times


def intake(engine, flood, senders, messages):
    """Every sender floods its own voice at once; what the engine took in, and whether the
    last value of every sender won."""
    drops_before = udp_drops(engine.port)
    own_before = engine.own_drops()
    counters_before = engine.osc_counters() if hasattr(engine, "osc_counters") else None
    pids = engine.pids()
    cpu_before = sum(cpu_seconds(p) for p in pids)
    started = time.monotonic()
    finals = [500.0 + 10 * k for k in range(senders)]
    processes = [subprocess.Popen([flood, "--port", str(engine.port), "--rate", "0", "--count", str(messages),
                                   "--values", f"{300 + k},{301 + k}", "--final", str(finals[k])] + engine.flood_args(k),
                                  stdout=subprocess.PIPE, text=True) for k in range(senders)]
    reports = [json.loads(p.communicate(timeout=120)[0]) for p in processes]
    flood_seconds = time.monotonic() - started
    # The engine's CPU while the senders ran, per message taken in: what intake costs.
    engine_cpu_s = sum(cpu_seconds(p) for p in pids) - cpu_before
    time.sleep(0.3)  # the engine drains what reached its socket
    confirmed = engine.sync(99, timeout=10)
    sent = sum(r["sent"] for r in reports)
    kernel = udp_drops(engine.port) - drops_before
    own = engine.own_drops() - own_before
    heard = engine.frequencies()
    winners = [heard[k] is not None and abs(heard[k] - finals[k]) < 1e-3 for k in range(senders)]
    result = {
        "senders": senders, "sent": sent, "kernel_drops": kernel, "engine_drops": own,
        "taken_in_share": (sent - kernel - own) / sent if sent else None,
        "send_rate": sum(r["rate_achieved"] for r in reports),
        "flood_seconds": flood_seconds,
        "engine_cpu_s": engine_cpu_s,
        "engine_cpu_us_per_message": 1e6 * engine_cpu_s / (sent - kernel - own) if sent > kernel + own else None,
        "confirmed": confirmed, "last_values_won": sum(winners), "frequencies": heard[:senders], "finals": finals,
    }
    if counters_before is not None:
        counters = engine.osc_counters()
        result["engine_received"] = counters["received"] - counters_before["received"]
        batches = counters["receive_batches"] - counters_before["receive_batches"]
        wakes = counters["worker_wakes"] - counters_before["worker_wakes"]
        result["receive_batches"] = batches
        result["worker_wakes"] = wakes
        # two workers (active and standby) each woken at most once per batch: <= 1.0
        result["wakes_per_batch_per_worker"] = wakes / batches / 2 if batches else None
        result["messages_per_batch"] = result["engine_received"] / batches if batches else None
    return result


def run_window(engine, jack, flood, args):
    engine.start()
    try:
        time.sleep(args.settle_seconds)
        window = {"idle": measure_idle(engine.pids(), jack.process.pid, args.idle_seconds)}
        trips = round_trip(engine, args.round_trips)
        # Every round trip is kept, in order, for the histogram in tools/report.
        window["round_trip_ms"] = {"n": len(trips), "p50": percentile(trips, 50), "p99": percentile(trips, 99),
                                   "lost": args.round_trips - len(trips), "samples": [round(t, 4) for t in trips]}
        window["intake_1"] = intake(engine, flood, 1, args.messages)
        window["intake_4"] = intake(engine, flood, 4, args.messages)
        return window
    finally:
        engine.stop()


def median_of(windows, *keys):
    values = []
    for w in windows:
        value = w
        for k in keys:
            value = value[k]
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build")
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--settle-seconds", type=float, default=2.0)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--messages", type=int, default=200_000, help="per sender, per intake window")
    args = parser.parse_args()

    paths = Paths([None, args.build])
    flood = paths.osc_flood
    results = {"sustain": [], "scsynth": []}
    floor = {"1 plain client": [], "4 plain clients": []}
    version = subprocess.run(["scsynth", "-v"], capture_output=True, text=True).stdout.strip()
    with JackServer() as jack:
        for r in range(args.rounds):
            order = ["sustain", "scsynth"] if r % 2 == 0 else ["scsynth", "sustain"]
            for name in order:
                engine = Sustain(jack, paths) if name == "sustain" else Scsynth(jack)
                window = run_window(engine, jack, flood, args)
                results[name].append(window)
                print(f"round {r + 1} {name:8s} idle cpu {window['idle']['cpu_percent']:.1f} % "
                      f"({window['idle']['context_switches_per_s']:.0f} switches/s, pss {window['idle']['pss_mb']:.0f} MB), "
                      f"round trip p50 {window['round_trip_ms']['p50']:.2f} ms, "
                      f"intake 1: {100 * window['intake_1']['taken_in_share']:.1f} % "
                      f"(last won {window['intake_1']['last_values_won']}/1), "
                      f"intake 4: {100 * window['intake_4']['taken_in_share']:.1f} % "
                      f"(last won {window['intake_4']['last_values_won']}/4)", flush=True)
            if shutil.which("jack_simple_client"):
                for count in (1, 4):
                    clients = PlainClients(jack, count).start()
                    try:
                        time.sleep(args.settle_seconds)
                        idle = measure_idle(clients.pids(), jack.process.pid, args.idle_seconds)
                    finally:
                        clients.stop()
                    floor[clients.name].append(idle)
                    print(f"round {r + 1} {clients.name}: idle cpu {idle['cpu_percent']:.1f} % "
                          f"({idle['context_switches_per_s']:.0f} switches/s)", flush=True)

    summary = {}
    for name, windows in results.items():
        trips = [t for w in windows for t in [w["round_trip_ms"]["p50"]] if t is not None]
        summary[name] = {
            "idle_cpu_percent": median_of(windows, "idle", "cpu_percent"),
            "idle_cpu_percent_with_jackd": median_of(windows, "idle", "cpu_percent_with_jackd"),
            "idle_context_switches_per_s": median_of(windows, "idle", "context_switches_per_s"),
            "pss_mb": median_of(windows, "idle", "pss_mb"),
            "pss_mb_with_jack_segments": median_of(windows, "idle", "pss_mb_with_jack_segments"),
            "pss_mb_with_jackd": median_of(windows, "idle", "pss_mb_with_jackd"),
            "round_trip_p50_ms": statistics.median(trips) if trips else None,
            "round_trip_p99_ms": median_of(windows, "round_trip_ms", "p99"),
            "intake_1_share": median_of(windows, "intake_1", "taken_in_share"),
            "intake_4_share": median_of(windows, "intake_4", "taken_in_share"),
            "intake_1_send_rate": median_of(windows, "intake_1", "send_rate"),
            "intake_4_send_rate": median_of(windows, "intake_4", "send_rate"),
            "intake_1_cpu_us_per_message": median_of(windows, "intake_1", "engine_cpu_us_per_message"),
            "intake_4_cpu_us_per_message": median_of(windows, "intake_4", "engine_cpu_us_per_message"),
            "intake_1_last_won": f"{sum(w['intake_1']['last_values_won'] for w in windows)}/{len(windows)}",
            "intake_4_last_won": f"{sum(w['intake_4']['last_values_won'] for w in windows)}/{4 * len(windows)}",
        }

    def ratio(key):
        a, b = summary["sustain"][key], summary["scsynth"][key]
        return a / b if a is not None and b else None
    ratios = {key: ratio(key) for key in ("idle_cpu_percent", "idle_cpu_percent_with_jackd", "idle_context_switches_per_s",
                                          "pss_mb", "pss_mb_with_jack_segments", "pss_mb_with_jackd",
                                          "round_trip_p50_ms", "round_trip_p99_ms", "intake_1_share",
                                          "intake_4_share", "intake_1_send_rate", "intake_4_send_rate",
                                          "intake_1_cpu_us_per_message", "intake_4_cpu_us_per_message")}
    print(f"\n{'median over ' + str(args.rounds) + ' rounds':40s} {'sustain':>10s} {'scsynth':>10s} {'ratio':>7s}")
    for key, value in ratios.items():
        a, b = summary["sustain"][key], summary["scsynth"][key]
        fmt = (lambda v: f"{v:10.2f}") if "share" not in key else (lambda v: f"{100 * v:9.1f}%")
        print(f"{key:40s} {fmt(a) if a is not None else '         -'} {fmt(b) if b is not None else '         -'} "
              f"{value:7.2f}" if value is not None else f"{key:40s} (not measured)")
    for key in ("intake_1_last_won", "intake_4_last_won"):
        print(f"{key:40s} {summary['sustain'][key]:>10s} {summary['scsynth'][key]:>10s}")
    floor_summary = {name: {"idle_cpu_percent": statistics.median(w["cpu_percent"] for w in windows),
                            "idle_context_switches_per_s": statistics.median(w["context_switches_per_s"] for w in windows)}
                     for name, windows in floor.items() if windows}
    for name, figures in floor_summary.items():
        print(f"floor, {name} playing a sine: idle cpu {figures['idle_cpu_percent']:.2f} %, "
              f"{figures['idle_context_switches_per_s']:.0f} switches/s")
    report = {"benchmark": "peer", "scsynth_version": version, "jack": {"rate": 48000, "frames": 64},
              "parameters": vars(args), "machine": machine(),
              "summary": summary, "ratios_sustain_over_scsynth": ratios, "floor": floor_summary,
              "floor_windows": floor, "windows": results}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
