"""The chaos explorer (tools/chaos; the `chaos` test runs a short fixed schedule of it).

Runs the real engine on a private JACK dummy server and injects faults at the named fault
points of every process (shm/fault_point.h: inside seqlock writes, half a block published,
between the state-table write and the ring push, inside a ring push, inside the output
stage's choice of block, during a replacement's start, in sustaind between fencing and
switching; and the worker prepared ahead, waiting for a slot), of every kind (SIGKILL,
SIGSTOP for a while then SIGCONT, SIGSEGV, an endless loop), in an order drawn from a seed (printed; the same seed replays the same schedule).
After every fault it checks from outside, through the status JSON, OSC and the driver's
own output (system:monitor_1):

- exactly the failovers the fault calls for (one when the active worker dies or hangs,
  none otherwise) and no more crashes than processes the fault took down (no healthy
  process fenced or killed);
- the spare (standby worker and standby output stage) warm again, and how long that took;
- a change sent right after the fault applied (/engine/sync answered after it);
- a timed bundle sent after the fault applied on time (not counted late);
- the status consistent all along (a pid is never 0, at most one active, counters never
  go back);
- damage at the driver's output not at a JACK-reported xrun: none for any worker or
  sustaind fault (the relay layout's promise); for faults of the playing output stage (a
  process in JACK's mix) it is measured and reported per fault, not judged here;
- at the end: no leaked segment, process or file descriptor.

Faults of sustaind are stops only: sustaind is the one process whose death ends the engine
(its children die with it); the service manager restarts it (docs/service.md).
"""
import argparse
import ctypes
import json
import os
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
from harness import (Engine, JackServer, Paths, Recording, TestFailure, children_of, eventually,  # noqa: E402
                     wait_until)
from figures import percentile  # noqa: E402
import osc_wire  # noqa: E402

RATE = 48000
STOP_S = 0.3                 # how long a SIGSTOPped process stays stopped before SIGCONT
FAULT_WINDOW_S = 1.0         # damage this soon after a fault is the fault's
DIRECT_DAMAGE_TARGET = 320   # direct layout: damaged samples per worker fault at most (five periods)
SPARE_WARM_TARGET_MS = 200   # the spare must be warm again this soon after the fault took effect
ARM_SIGNAL = signal.SIGRTMIN + 5  # shm/fault_point.cpp: armFaultSignal()

# shm/fault_point.h: FaultPoint and FaultKind, by name.
POINTS = {"callback_entry": 1, "published_state_write": 2, "frame_clock_write": 3, "audio_block_write": 4,
          "control_drain": 5, "replacement_attach": 6, "output_choice": 7, "state_table_before_ring": 8,
          "ring_push": 9, "fence_before_switch": 10}
KINDS = {"kill": 0, "stop": 1, "segv": 2, "loop": 3}

# Which process each point is injected into, and the kinds it takes. The active worker is
# the process whose faults the relay layout promises to hide; the standby takes every point
# it passes (it publishes no frame clock).
CELLS = ([("active", p, k) for p in ("callback_entry", "published_state_write", "frame_clock_write",
                                     "audio_block_write", "control_drain") for k in KINDS] +
         [("standby", p, k) for p in ("callback_entry", "published_state_write", "audio_block_write",
                                      "control_drain") for k in KINDS] +
         [("replacement", "replacement_attach", k) for k in KINDS] +
         [("output", "output_choice", k) for k in KINDS] +
         [("sustaind", p, "stop") for p in ("state_table_before_ring", "ring_push", "fence_before_switch")] +
         # Not a fault point: the prepared worker only waits (killed or stopped by a signal).
         [("prepared", "prepared_wait", k) for k in ("kill", "stop")])
CELL_POINTS = list(POINTS) + ["prepared_wait"]  # what --only and --exclude name, and the coverage rows


class _SigVal(ctypes.Union):
    _fields_ = [("sival_int", ctypes.c_int), ("sival_ptr", ctypes.c_void_p)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.sigqueue.argtypes = [ctypes.c_int, ctypes.c_int, _SigVal]


def handler_installed(pid):
    """True once the process catches the arming signal (its fault points are installed)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
        return bool(caught & (1 << (int(ARM_SIGNAL) - 1)))
    except (OSError, StopIteration):
        return False


def arm(pid, point, kind):
    """Arms `point` in process `pid`; point None disarms."""
    value = 0 if point is None else (POINTS[point] << 8) | KINDS[kind]
    if _libc.sigqueue(pid, int(ARM_SIGNAL), _SigVal(sival_int=value)) != 0:
        raise ProcessLookupError(os.strerror(ctypes.get_errno()))


def process_state(pid):
    """'gone', 'stopped' or 'running'."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
    return {"Z": "gone", "X": "gone", "T": "stopped", "t": "stopped"}.get(state, "running")


class StatusWatch:
    """Polls the status JSON in the background and keeps every inconsistency it sees."""

    MONOTONIC = (("supervisor", "failovers"), ("supervisor", "crash_count"), ("supervisor", "replacements"),
                 ("supervisor", "prepared_used"), ("supervisor", "prepared_lost"),
                 ("supervisor", "fencings"), ("osc", "received"), ("osc", "accepted"))

    def __init__(self, paths, engine, interval=0.1):
        self.paths, self.engine, self.interval = paths, engine, interval
        self.violations, self.polls = [], 0
        self._last = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def status(self):
        out = subprocess.run([self.paths.status, "--instance", self.engine.instance, "--json", "--once"],
                             capture_output=True, text=True, timeout=10)
        return json.loads(out.stdout)

    def judge(self, s):
        self.polls += 1
        workers = s.get("workers", [])
        for w in workers:
            if w.get("pid") == 0:
                self.violations.append(f"status lists {w.get('kind')} slot {w.get('slot')} ({w.get('role')}) with pid 0")
        actives = [w for w in workers if w.get("role") == "active" and w.get("pid")]
        if len(actives) > 1:
            self.violations.append(f"status lists {len(actives)} active workers: {[w['pid'] for w in actives]}")
        for group, key in self.MONOTONIC:
            value = s.get(group, {}).get(key)
            if value is None:
                continue
            if value < self._last.get((group, key), 0):
                self.violations.append(f"{group}.{key} went back from {self._last[(group, key)]} to {value}")
            self._last[(group, key)] = value

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.judge(self.status())
            except (ValueError, subprocess.TimeoutExpired):
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


class OscClient:
    """A UDP socket of our own: sends, and receives the engine's replies to it."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.next_id = 1

    def send(self, packet):
        self.sock.sendto(packet, ("127.0.0.1", self.port))

    def sync(self, timeout=2.0):
        """Sends /engine/sync <id>; True once /engine/synced <id> comes back."""
        sync_id = self.next_id
        self.next_id += 1
        self.send(osc_wire.message("/engine/sync", "i", sync_id))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if data.startswith(b"/engine/synced\0") and data.endswith(struct.pack(">i", sync_id)):
                return True
        return False

    def close(self):
        self.sock.close()


class Explorer:
    def __init__(self, paths, jack, engine, args, rng):
        self.paths, self.jack, self.engine, self.args, self.rng = paths, jack, engine, args, rng
        self.watch = StatusWatch(paths, engine)
        self.client = OscClient(engine.port)
        self.faults, self.violations = [], []
        self.quiet_damage_at_xruns = 0  # damage at JACK-reported xruns away from any fault: the machine's
        self.baseline = None  # sustaind's fds and children after the first fault
        self.prepared_seen = set()  # every prepared worker a fault was aimed at
        self.quiet_damage_engine = []  # damage not at a JACK-reported xrun, away from any fault
        self.late_wakes = 0  # cycles the driver began a period or more late, in every recording

    def status(self):
        return self.watch.status()

    def pid_of(self, s, kind, role):
        for w in s["workers"]:
            if w.get("kind", "worker") == kind and w.get("role") == role and w.get("pid"):
                return w["pid"]
        return None

    def spare_ready(self, s):
        sup = s["supervisor"]
        return bool(sup.get("spare_ready")) and (s.get("layout") != "relay" or bool(sup.get("output_spare_ready")))

    def wait_spare(self, timeout=5.0):
        """Seconds until the spare is warm (None on timeout) and the status then."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            s = self.status()
            if self.spare_ready(s) and s.get("health") == "healthy":
                return time.monotonic() - started, s
            time.sleep(0.01)
        return None, self.status()

    def prepared_pid(self, timeout):
        """The worker prepared ahead (waiting for a slot), once it can be armed; None if there
        is none within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.status()["supervisor"].get("prepared_worker_pid", 0)
            if pid and handler_installed(pid):
                self.prepared_seen.add(pid)
                return pid
            time.sleep(0.01)
        return None

    def children(self):
        """sustaind's children, not counting the prepared worker (there or not, by timing)."""
        prepared = self.status()["supervisor"].get("prepared_worker_pid", 0)
        return [p for p in children_of(self.engine.process.pid) if p != prepared]

    def sustaind_fds(self):
        """sustaind's file descriptors, not counting the prepared worker's pidfd and socket."""
        prepared = self.status()["supervisor"].get("prepared_worker_pid", 0)
        return len(os.listdir(f"/proc/{self.engine.process.pid}/fd")) - (2 if prepared else 0)

    def new_worker(self, known, timeout=3.0):
        """The pid of a worker sustaind started that is not in `known`, once its fault points
        are installed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in children_of(self.engine.process.pid):
                if pid not in known and handler_installed(pid):
                    try:
                        with open(f"/proc/{pid}/comm") as f:
                            if f.read().strip() == "sustain-worker":
                                return pid
                    except OSError:
                        pass
            time.sleep(0.002)
        return None

    def change(self, value):
        self.client.send(osc_wire.message("/engine/voice/1/freq", "f", value))

    def inject(self, number, cell):
        role, point, kind = cell
        # One fault at a time: a fault while the spare is still being rebuilt (after a fault
        # that was not taken, say) is a double fault, which no failover can hide.
        warm_s, before = self.wait_spare()
        if warm_s is None:
            return {"n": number, "role": role, "point": point, "kind": kind, "t": time.monotonic(),
                    "missed": "the spare was not warm before the fault",
                    "problems": ["the spare was not warm within 5 s before this fault"]}
        record = {"n": number, "role": role, "point": point, "kind": kind, "t": time.monotonic()}
        expected_failovers, expected_deaths = 0, 1
        trigger = None
        if role == "sustaind":
            target = self.engine.process.pid
            expected_deaths = 0
            if point == "fence_before_switch":
                # A worker fault makes sustaind fence; it stops right there, before the switch.
                expected_failovers, expected_deaths = 1, 1
                victim = self.pid_of(before, "worker", "active")
                trigger = lambda: os.kill(victim, signal.SIGKILL)  # noqa: E731
            else:
                trigger = lambda: self.change(self.rng.uniform(300, 900))  # noqa: E731
        elif role == "replacement":
            # The standby dies; its replacement fails during its start. Two processes go
            # down, no failover. The replacement is the prepared worker when there is one
            # (armed before the standby dies), otherwise a new process, armed the moment its
            # fault points exist.
            prepared = self.prepared_pid(timeout=1.5)
            record["prepared"] = prepared is not None
            if prepared is not None:
                arm(prepared, point, kind)
            known = set(children_of(self.engine.process.pid))
            os.kill(self.pid_of(before, "worker", "standby"), signal.SIGKILL)
            target = prepared or self.new_worker(known)
            expected_deaths = 2
            if target is None:
                record["missed"] = "no replacement appeared"
                return record
        elif role == "prepared":
            # Its death or stop costs nothing heard and is no crash: it is counted lost when
            # sustaind sees it (a stopped one within 50 ms).
            target = self.prepared_pid(timeout=3.0)
            expected_deaths = 0
        elif role == "output":
            target = self.pid_of(before, "output", "output")
        else:
            target = self.pid_of(before, "worker", role)
            if role == "active":
                expected_failovers = 1
            if point == "control_drain":
                trigger = lambda: self.change(self.rng.uniform(300, 900))  # noqa: E731
        record["pid"] = target
        if target is None:
            record["missed"] = f"no {role} process in the status"
            return record
        if role == "prepared":
            os.kill(target, signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
        elif role != "replacement" or not record["prepared"]:
            arm(target, point, kind)
        fired_at = time.monotonic()
        # The fault took effect once the process is gone or stopped (an endless loop: once
        # sustaind found it hung and killed it). A point passed only on an event (a command
        # drained, pushed, a worker fenced) gets the event again until then: the signal that
        # arms it may be taken after the first event already went by.
        deadline = fired_at + 3.0
        state = process_state(target)
        next_trigger = fired_at + 0.02  # the arming signal is usually taken by then
        while state == "running" and time.monotonic() < deadline:
            if trigger and time.monotonic() >= next_trigger:
                trigger()
                trigger = trigger if point != "fence_before_switch" else None
                next_trigger = time.monotonic() + 0.05
            time.sleep(0.002)
            state = process_state(target)
        took_effect = time.monotonic()
        record["took_effect_ms"] = round((took_effect - fired_at) * 1000, 1)
        if state == "running":
            record["missed"] = "the point was not passed within 3 s"
            try:
                arm(target, None, None)
            except ProcessLookupError:
                pass
            return record
        if kind == "stop":
            # Continued later, from another thread: the spare is judged meanwhile.
            def resume():
                if process_state(target) == "stopped":
                    os.kill(target, signal.SIGCONT)
            threading.Timer(STOP_S, resume).start()
        # The fault is counted by sustaind before the spare is judged (its status says the
        # spare is ready until it has noticed anything).
        if expected_deaths:
            wait_until(lambda: self.status()["supervisor"]["crash_count"]
                       >= before["supervisor"]["crash_count"] + expected_deaths
                       or time.monotonic() - took_effect > 3, 5, "sustaind to count the fault")
        warm_s, after = self.wait_spare()
        # From the moment the fault took effect (a process gone or stopped). Not judged for
        # sustaind's own stops: the spare is not lost, but nothing is rebuilt while it is stopped.
        record["spare_warm_ms"] = None if warm_s is None else round((time.monotonic() - took_effect) * 1000, 1)
        if kind == "stop":
            time.sleep(max(0.0, took_effect + STOP_S + 0.05 - time.monotonic()))
            warm_s, after = self.wait_spare()
        # A stop is cut short by sustaind (fenced, killed) unless it is sustaind's own; the
        # spare is judged from the moment the process is gone.
        record["failovers"] = after["supervisor"]["failovers"] - before["supervisor"]["failovers"]
        record["crashes"] = after["supervisor"]["crash_count"] - before["supervisor"]["crash_count"]
        record["output_failovers"] = (after["supervisor"]["output_failovers"]
                                      - before["supervisor"]["output_failovers"])
        record["output_covers"] = (after["supervisor"].get("output_covers", 0)
                                   - before["supervisor"].get("output_covers", 0))
        # What the output stages did meanwhile, to explain damage: blocks that were nowhere
        # (silence), blocks from the standby, cycles one stage took from the other.
        record["output"] = {key: after["output"][key] - before["output"][key]
                            for key in ("unfilled_blocks", "blocks_from_standby", "blocks_from_fenced", "takeovers",
                                        "resyncs")}
        problems = []
        if role == "prepared" and kind == "kill":
            lost = before["supervisor"]["prepared_lost"] + 1
            if not eventually(lambda: self.status()["supervisor"]["prepared_lost"] >= lost, 2):
                problems.append("the prepared worker's death was not counted (prepared_lost)")
        if warm_s is None:
            problems.append("the spare was not warm again within 5 s")
        if record["failovers"] != expected_failovers:
            problems.append(f"{record['failovers']} failovers for a fault that calls for {expected_failovers}")
        # The playing output stage lost: one output failover; anything else: none (a stage
        # JACK merely ran late is a cover, output_covers, and no loss).
        expected_output_failovers = 1 if role == "output" else 0
        if record["output_failovers"] != expected_output_failovers:
            problems.append(f"{record['output_failovers']} output failovers for a fault that calls for "
                            f"{expected_output_failovers}")
        if record["crashes"] != expected_deaths:
            problems.append(f"{record['crashes']} crashes counted for {expected_deaths} process(es) the fault took down")
        # A change right after the fault, then /engine/sync: answered once it is applied.
        value = round(self.rng.uniform(300, 900), 2)
        self.change(value)
        if not self.client.sync():
            problems.append("/engine/sync not answered after a change sent right after the fault")
        # A timed bundle after the fault: applied at its time, not late.
        late_before = after["timing"]["late"]
        timed_value = round(self.rng.uniform(300, 900), 2)
        when = time.clock_gettime_ns(time.CLOCK_REALTIME) + 150_000_000
        self.client.send(osc_wire.bundle(osc_wire.message("/engine/voice/2/freq", "f", timed_value),
                                         timetag=osc_wire.timetag_of_unix_ns(when)))
        time.sleep(0.3)
        final = self.status()
        heard = final["params"]["voices"][2]["freq"]
        if abs(heard - timed_value) > 0.01:
            problems.append(f"a timed bundle sent after the fault did not apply ({heard} Hz, sent {timed_value})")
        if final["timing"]["late"] != late_before:
            by_osc = final["timing"]["late_ms"]["count"] - after["timing"]["late_ms"]["count"]
            problems.append(f"a timed bundle sent after the fault was counted late (by the OSC thread: {by_osc}, "
                            f"by the active worker: {final['timing']['late'] - late_before - by_osc}; "
                            f"{final['timing']['late_frames_last']} frames late; "
                            f"frame clock {final['timing']['frame_clock_source']}, play latency "
                            f"{final['timing']['play_latency_frames']} frames)")
        record["problems"] = problems
        return record

    def run(self, schedule, recording_seconds):
        """Runs `schedule` (cells) in recordings of at most recording_seconds each."""
        done = 0
        while done < len(schedule):
            with Recording(self.paths, self.jack, seconds=recording_seconds, cycle_times=True,
                           keep=self.args.keep_recordings) as recording:
                time.sleep(0.3)
                batch = []
                started = time.monotonic()
                while done < len(schedule) and time.monotonic() - started < recording_seconds - 6:
                    record = self.inject(len(self.faults) + len(batch) + 1, schedule[done])
                    done += 1
                    if self.baseline is None:
                        # sustaind opens its JACK graph client at the first graph change it
                        # makes (in the direct layout, the first fault): what it holds after
                        # the first fault is what it must hold at the end.
                        time.sleep(0.5)
                        self.baseline = (self.sustaind_fds(), len(self.children()))
                    batch.append(record)
                    self.report_fault(record)
                    time.sleep(0.2)
                recording.finish()
                self.judge_recording(recording, batch)
                self.late_wakes += len(recording.late_wakes())
            self.faults.extend(batch)

    def report_fault(self, r):
        if not self.args.verbose and not r.get("problems") and "missed" not in r:
            return
        print(f"fault {r['n']}: {r['role']} {r['point']} {r['kind']} (pid {r.get('pid')}): "
              + (f"missed ({r['missed']})" if "missed" in r else
                 f"failovers {r['failovers']}, crashes {r['crashes']}, spare warm after {r['spare_warm_ms']} ms"
                 + (f"; PROBLEMS: {r['problems']}" if r["problems"] else "")), flush=True)

    def judge_recording(self, recording, batch):
        report = recording.analyze("--gap-min", "16")
        engine_events, machine_events = recording.split_damage(report)
        for r in batch:
            r["damage_samples"], r["damage_at_xruns"] = 0, 0
        for events, key in ((engine_events, "damage_samples"), (machine_events, "damage_at_xruns")):
            for event in events:
                index = int(event["start_s"] * RATE)
                try:
                    at = recording.monotonic_ns_at(index) / 1e9
                except TestFailure:
                    at = None
                # The fault the event follows within FAULT_WINDOW_S; damage outside every
                # such window happened in quiet running.
                owner = None
                for r in batch:
                    if at is not None and r["t"] - 0.05 <= at <= r["t"] + FAULT_WINDOW_S:
                        owner = r
                samples = event["damaged"] + event["gap_samples"]
                if owner is None:
                    if key == "damage_samples":
                        # Not a fault's: the engine's open defect of quiet running (docs/chaos.md),
                        # reported on its own, not charged to the fault points.
                        self.quiet_damage_engine.append(event)
                    else:
                        self.quiet_damage_at_xruns += samples
                    continue
                owner[key] += samples
                owner.setdefault("events", []).append(event)
        # The relay layout hides every worker fault: no damage at all. The direct layout has
        # the failed worker's ports in the mix until sustaind takes them out: a bound per fault.
        bound = 0 if self.args.layout == "relay" else DIRECT_DAMAGE_TARGET
        for r in batch:
            if r["damage_samples"] > bound and r["role"] != "output":
                r.setdefault("problems", []).append(f"{r['damage_samples']} damaged samples not at a JACK-reported xrun"
                                                    + (f" (bound {bound})" if bound else ""))
                self.report_fault(r)


def coverage(faults):
    table = {}
    for f in faults:
        if "missed" in f:
            continue
        table.setdefault(f["point"], {}).setdefault(f["kind"], 0)
        table[f["point"]][f["kind"]] += 1
    return table


EXCLUDED = set()  # points left out with --exclude
ONLY = set()      # with --only: the points kept (for replaying one finding)


def cells_for(layout):
    """The cells a layout has: the direct layout has no output stages and no audio ring."""
    cells = [c for c in CELLS if c[1] not in EXCLUDED and (not ONLY or c[1] in ONLY)]
    if layout == "relay":
        return cells
    return [c for c in cells if c[0] != "output" and c[1] != "audio_block_write"]


def build_schedule(rng, count, layout):
    """`count` cells: whole shuffled decks of every cell, so that each is covered evenly."""
    schedule = []
    while len(schedule) < count:
        deck = cells_for(layout)
        rng.shuffle(deck)
        schedule.extend(deck)
    return schedule[:count]


def main():
    parser = argparse.ArgumentParser(description="seeded fault explorer")
    parser.add_argument("build")
    parser.add_argument("--seed", type=int, default=None, help="replays a run (printed at the start)")
    parser.add_argument("--minutes", type=float, default=None, help="run for this long (faults drawn until then)")
    parser.add_argument("--faults", type=int, default=None, help="run this many faults (default: 3 of every cell)")
    parser.add_argument("--layout", default="relay", choices=["relay", "direct"])
    parser.add_argument("--recording-seconds", type=float, default=60.0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--exclude", action="append", default=[], choices=CELL_POINTS,
                        help="leave this fault point out (repeatable)")
    parser.add_argument("--only", action="append", default=[], choices=CELL_POINTS,
                        help="inject at this fault point only (repeatable)")
    parser.add_argument("--keep-recordings", action="store_true",
                        help="keep the recordings of the driver's output (their paths are printed)")
    args = parser.parse_args()
    EXCLUDED.update(args.exclude)
    ONLY.update(args.only)
    paths = Paths([None, args.build])
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    print(f"chaos: seed {seed} (tools/chaos --seed {seed} replays this run)", flush=True)
    rng = random.Random(seed)
    shm_before = sorted(n for n in os.listdir("/dev/shm") if n.startswith("sustain-"))
    result = {"benchmark": "chaos", "seed": seed, "layout": args.layout,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "violations": []}
    with JackServer() as jack, Engine(paths, jack, ["--layout", args.layout, "--restart-limit", "1000000",
                                                    "--gain", "0.5"]) as engine:
        explorer = Explorer(paths, jack, engine, args, rng)
        warm_s, first = explorer.wait_spare(10)
        if warm_s is None:
            raise TestFailure("the engine never had its spare warm")
        if not handler_installed(engine.process.pid):
            raise TestFailure("this build has no fault points (meson option fault_points is off)")
        time.sleep(0.5)
        started = time.monotonic()
        with explorer.watch:
            if args.minutes:
                while time.monotonic() - started < args.minutes * 60:
                    explorer.run(build_schedule(rng, len(cells_for(args.layout)), args.layout), args.recording_seconds)
            else:
                explorer.run(build_schedule(rng, args.faults or 3 * len(cells_for(args.layout)), args.layout),
                             args.recording_seconds)
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        fds_after = explorer.sustaind_fds()
        children_after = len(explorer.children())
        fds_before, children_before = explorer.baseline or (fds_after, children_after)
        final = explorer.status()
        result["handbacks"] = sum(w.get("handbacks", 0) for w in final["workers"])
        known = engine.worker_pids() + sorted(explorer.prepared_seen)
        exit_code = engine.stop()
    time.sleep(0.3)
    leftovers = [p for p in known if process_state(p) != "gone"]
    shm_after = sorted(n for n in os.listdir("/dev/shm") if n.startswith("sustain-"))
    violations = list(explorer.violations) + list(explorer.watch.violations)
    for f in explorer.faults:
        for p in f.get("problems", []):
            violations.append(f"fault {f['n']} ({f['role']} {f['point']} {f['kind']}): {p}")
    if fds_after > fds_before:
        violations.append(f"sustaind holds {fds_after} file descriptors, {fds_before} after the first fault")
    if children_after != children_before:
        violations.append(f"sustaind has {children_after} children, {children_before} after the first fault")
    if leftovers:
        violations.append(f"processes left running after sustaind stopped: {leftovers}")
    leaked = [n for n in shm_after if n not in shm_before]
    if leaked:
        violations.append(f"leaked segments: {leaked}")
    if exit_code != 0:
        violations.append(f"sustaind exited with {exit_code}")
    injected = [f for f in explorer.faults if "missed" not in f]
    warm = [f["spare_warm_ms"] for f in injected
            if f.get("spare_warm_ms") is not None and f["role"] not in ("sustaind", "prepared")]
    worker_damage = [f["damage_samples"] for f in injected if f["role"] != "output"]
    output_damage = [f["damage_samples"] + f["damage_at_xruns"] for f in injected if f["role"] == "output"]
    result.update({
        "minutes": round(elapsed / 60, 2), "faults_injected": len(injected),
        "faults_missed": len(explorer.faults) - len(injected),
        "failovers": sum(f["failovers"] for f in injected),
        "failovers_expected": sum(1 for f in injected if f["role"] == "active" or f["point"] == "fence_before_switch"),
        "damaged_samples_engine_worker_faults": {"total": sum(worker_damage), "max": max(worker_damage, default=0)},
        # The machine's: at a JACK-reported xrun, a cycle the driver began a period late or a
        # cycle jump of the recording (Recording.split_damage).
        "damaged_samples_at_jack_xruns": sum(f["damage_at_xruns"] for f in injected),
        "driver_late_wakes": explorer.late_wakes,
        "damaged_samples_at_jack_xruns_quiet_running": explorer.quiet_damage_at_xruns,
        "quiet_running_damage_events_not_at_xruns": explorer.quiet_damage_engine,
        "damaged_samples_output_faults": {"p50": percentile(output_damage, 50), "p99": percentile(output_damage, 99),
                                          "max": max(output_damage, default=None), "count": len(output_damage)},
        "spare_warm_ms": {"p50": percentile(warm, 50), "p99": percentile(warm, 99), "max": max(warm, default=None)},
        "status_polls": explorer.watch.polls,
        "coverage": coverage(explorer.faults),
        "violations": violations,
        "faults": [{k: v for k, v in f.items() if k != "t"} for f in explorer.faults],
    })
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print_summary(result, args)
    return 1 if violations else 0


def print_summary(r, args):
    print(f"chaos: seed {r['seed']}, {r['layout']} layout, {r['minutes']} min, {r['faults_injected']} faults injected "
          f"({r['faults_missed']} not taken: the point was not reached)")
    print(f"  failovers {r['failovers']} for {r['failovers_expected']} faults that call for one")
    d = r["damaged_samples_engine_worker_faults"]
    print(f"  damaged samples the engine answers for, worker and sustaind faults: {d['total']} (max {d['max']} "
          f"per fault); the machine's (at JACK-reported xruns, at {r['driver_late_wakes']} cycles the driver "
          f"began a period late, at the recording's cycle jumps): {r['damaged_samples_at_jack_xruns']} near faults, "
          f"{r['damaged_samples_at_jack_xruns_quiet_running']} in quiet running")
    q = r["quiet_running_damage_events_not_at_xruns"]
    print(f"  away from any fault, not at a JACK-reported xrun: {len(q)} damage events "
          f"({sum(e['damaged'] + e['gap_samples'] for e in q)} samples): the open quiet-running defect, not judged here")
    o = r["damaged_samples_output_faults"]
    print(f"  output-stage faults (a process in the mix): {o['count']}, damage p50 {o['p50']} p99 {o['p99']} "
          f"max {o['max']} samples")
    w = r["spare_warm_ms"]
    print(f"  spare warm again after the fault took effect (worker and output faults): p50 {w['p50']} ms, p99 {w['p99']} ms, max {w['max']} ms "
          f"(target {SPARE_WARM_TARGET_MS})")
    kinds = list(KINDS)
    print("  coverage (point x kind):")
    print("    " + " " * 24 + "".join(f"{k:>6}" for k in kinds))
    for point in CELL_POINTS:
        row = r["coverage"].get(point, {})
        print(f"    {point:24}" + "".join(f"{row.get(k, '-'):>6}" for k in kinds))
    print(f"  status polled {r['status_polls']} times")
    print(f"  invariant violations: {len(r['violations'])}")
    for v in r["violations"][:20]:
        print(f"    {v}")
    print(f"all figures: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
