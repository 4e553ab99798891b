"""Shared pieces of the integration tests: a private JACK dummy server, the real sustaind,
real OSC through liblo's oscsend, and a recording of what the driver itself played
(system:monitor_1), judged by sustain-analyze.

Every wait has a deadline (a hang is a failure), and every process started here is
stopped again, whatever happens. A machine without jackd skips (exit 77), never passes.
"""
import array
import bisect
import fcntl
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
# Port slots of the private JACK server (tools/lib/common.sh starts tools/run's the same way):
# each JACK client that opens scans every slot once, which costs a replacement worker 45 ms
# of its start at JACK2's default 2048 and 22 ms at 256 (qjackctl's default).
JACK_PORT_MAX = 256
# Frames around a damage event within which an xrun reported to the recorder explains it.
# JACK tells clients about an xrun from its notification thread, a few periods late: up to
# ~15 ms late on a loaded 2-core machine (an xrun reported 704 frames after 2 damaged
# samples, with JACK reporting 100 xruns a second), and later still in a sanitizer build
# (the server busy with instrumented clients that overran).
XRUN_WINDOW = 1024 if not os.environ.get("SUSTAIN_SANITIZER") else 2048
# Periods of damage one JACK-reported xrun explains (Recording.split_damage): the stale or
# silent periods while JACK waits for a late client (two at most) and the period on either
# side, where the analyzer flags the edges of the step.
XRUN_PERIODS = 4


class TestFailure(Exception):
    pass


def guarded_reports(directory):
    """The real-time guard's reports (tests/rt_guard) in `directory` of the processes whose
    audio callbacks ran under it (guarded_calls > 0)."""
    reports = []
    for path in glob.glob(os.path.join(directory, "rtguard.*.json")):
        with open(path) as f:
            report = json.load(f)
        if report["guarded_calls"] > 0:
            reports.append(report)
    return reports


def check(condition, message):
    if not condition:
        raise TestFailure(message)
    print(f"ok: {message}", flush=True)


# A sanitizer slows every instrumented access (ASan about twice, TSan several times over):
# an audio callback then overruns its 1.33 ms period now and then, the driver plays a stale
# period, and an output stage that JACK ran late for two cycles is taken over as if it had
# died (a period of silence; telling late from dead is its own open issue). In a sanitizer
# build (tools/test --sanitize sets SUSTAIN_SANITIZER) the sample-exact judgements of what
# was heard are printed, not enforced; everything else is. The plain build enforces them all.
TIMING_JUDGED = not os.environ.get("SUSTAIN_SANITIZER")
# Under TSan sustaind counts hangs after 40 times as many cycles (supervisor/main.cpp), and
# waits for the engine (a replacement warm, a state reached) get 3 times as long.
TSAN_BUILD = os.environ.get("SUSTAIN_SANITIZER") == "thread"
TIMEOUT_SCALE = 3 if TSAN_BUILD else 1


def check_heard(condition, message):
    """check() for a sample-exact judgement of the recorded sound (see TIMING_JUDGED)."""
    if condition or TIMING_JUDGED:
        check(condition, message)
    else:
        print(f"not judged in a sanitizer build (would fail): {message}", flush=True)


def eventually(predicate, timeout):
    """Whether `predicate` became true within `timeout` seconds (scaled as wait_until),
    for a state the test then judges with its own message."""
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def wait_until(predicate, timeout, what):
    if not eventually(predicate, timeout):
        raise TestFailure(f"timed out after {timeout * TIMEOUT_SCALE} s waiting for {what}")


def stop_process(process, timeout=5):
    """SIGTERM, then SIGKILL if `process` (a Popen) has not exited within `timeout` s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children_of(pid):
    """The live (not zombie) child processes of `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] not in "ZX":
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def active_worker_pid(log):
    """pid of the worker sustaind last made active, read from its log."""
    pid = None
    for line in log.splitlines():
        if "worker " in line and "started as active (pid " in line:
            pid = int(line.split("(pid ")[1].split(")")[0])
        if "failover: worker" in line:
            pid = int(line.split("(pid ")[1].split(")")[0])
    return pid


def prepared_worker_pid(engine, timeout=8):
    """The pid of the worker sustaind prepared ahead (docs/failover.md), once there is one."""
    wait_until(lambda: engine.status()[1]["supervisor"]["prepared_worker_pid"] != 0, timeout,
               "a worker prepared ahead")
    return engine.status()[1]["supervisor"]["prepared_worker_pid"]


def active_worker_in_status(engine):
    """pid of the worker the status shows as active (there must be exactly one): exact at
    any moment, where the log (active_worker_pid) may not yet hold the newest line."""
    _, status = engine.status()
    active = [w for w in status["workers"] if w["role"] == "active"]
    check(len(active) == 1, f"one worker is active: {status['workers']}")
    return active[0]["pid"]


def playing_output_stage(engine):
    """(slot, pid) of the output stage that plays, as the status says (relay layout)."""
    _, status = engine.status()
    playing = [w for w in status["workers"] if w["role"] == "output"]
    check(len(playing) == 1, f"one output stage plays: {status['workers']}")
    return str(playing[0]["slot"]), playing[0]["pid"]


class Paths:
    def __init__(self, argv):
        # meson passes: build root
        self.build = os.path.abspath(argv[1])
        self.sustaind = os.path.join(self.build, "supervisor", "sustaind")
        self.record = os.path.join(self.build, "tools", "audio", "sustain-record")
        self.analyze = os.path.join(self.build, "tools", "audio", "sustain-analyze")
        self.rt_guard = os.path.join(self.build, "tests", "rt_guard", "librtguard.so")
        self.fault_injector = os.path.join(self.build, "tests", "fault_injector", "libfaultinjector.so")
        self.osc_flood = os.path.join(self.build, "tools", "benchmark", "sustain-osc-flood")
        self.status = os.path.join(self.build, "tools", "status", "sustain-status")
        self.osc_query = os.path.join(self.build, "tools", "status", "sustain-osc-query")
        self.features = built_features(self.build)


def built_features(build):
    """The optional parts this build has (meson_options.txt), from its sustain_features.h:
    {"systemd": bool, "zeroconf": bool, "live_view": bool}."""
    features = {}
    with open(os.path.join(build, "sustain_features.h")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "#define" and parts[1].startswith("SUSTAIN_HAVE_"):
                features[parts[1][len("SUSTAIN_HAVE_"):].lower()] = parts[2] == "1"
    return features


def jackd_running():
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() in ("jackd", "jackdbus"):
                        return True
            except OSError:
                pass
    return False


def stop_stale_jackd(name):
    """Kills a JACK server of this name whose test run is gone (the name's lock was free):
    one a test killed without cleanup (SIGKILL) left running in its own session."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) in (b"jackd", b"jackdbus") and name.encode() in argv:
            try:
                os.kill(int(entry), signal.SIGKILL)
                print(f"note: stopped a JACK server named {name} left by an earlier run (pid {entry})", flush=True)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 2
            while os.path.exists(f"/proc/{entry}/cmdline") and time.monotonic() < deadline:
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        break  # a zombie holds nothing any more
                time.sleep(0.01)


def remove_stale_jack_registry():
    for name in os.listdir("/dev/shm"):
        path = os.path.join("/dev/shm", name)
        if name == "jack-shm-registry" or name.startswith("jack-") or name.startswith("jack_sem.") or \
                (name.startswith("jack_") and not name.startswith("jack_db")):
            try:
                os.unlink(path)
            except OSError:
                pass
        elif name.startswith("jack_db"):
            shutil.rmtree(path, ignore_errors=True)


class JackServer:
    """jackd -d dummy -m under a unique name, in its own session."""

    # JACK2 keeps at most 8 servers in its registry and reclaims an entry only for a server
    # of the same name whose process is gone. Random names would leak an entry each time a
    # server dies uncleanly, until no server can start on the machine. So the names come
    # from a small pool: a name no running server uses, held with a lock for this run.
    POOL = 6

    def __init__(self, rate=48000, frames=64):
        self.lock = None
        for index in range(self.POOL):
            lock = open(f"/tmp/sustain-test-jack-{index}.lock", "w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            self.lock = lock
            self.name = f"sustain-test-{index}"
            stop_stale_jackd(self.name)
            break
        if self.lock is None:
            raise TestFailure(f"all {self.POOL} test JACK server names are in use by other test runs")
        self.rate = rate
        self.frames = frames
        self.process = None
        self.log = tempfile.NamedTemporaryFile(prefix="jackd-", suffix=".log", delete=False)

    def env(self):
        env = dict(os.environ)
        env["JACK_DEFAULT_SERVER"] = self.name
        return env

    def __enter__(self):
        if shutil.which("jackd") is None:
            print("jackd is not installed: skipping", flush=True)
            sys.exit(SKIP)
        for attempt in range(2):
            self.launch()
            try:
                wait_until(self.up, 10, "the JACK dummy server")
                return self
            except TestFailure:
                output = open(self.log.name).read()
                stop_process(self.process)
                if attempt == 0 and not jackd_running():
                    # JACK's state in /dev/shm, shared by every server of this user, can be
                    # left unusable by processes that died uncleanly: stale entries fill
                    # its server registry ("Too many servers"); and every later jackd stayed
                    # asleep as it started, saying nothing, in one full test run (one thread,
                    # waiting; what it waited on was not caught, a lock in that shared state
                    # held by a process killed while it held it fits). With no server running
                    # at all it is safe to let JACK start afresh.
                    print("note: jackd did not start and no jackd runs: removing JACK's stale state in /dev/shm",
                          flush=True)
                    remove_stale_jack_registry()
                    continue
                raise TestFailure(f"jackd did not start: {output[-2000:]}")
        return self

    def launch(self):
        self.process = subprocess.Popen(
            ["jackd", "-n", self.name, "-R", "--port-max", str(JACK_PORT_MAX), "-d", "dummy", "-r", str(self.rate),
             "-p", str(self.frames), "-m"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def crash(self):
        """The server dies at once (SIGKILL), as when it crashes: no client is told first."""
        self.process.kill()
        self.process.wait()

    def restart(self):
        """A server of the same name comes back (after crash())."""
        self.launch()
        wait_until(self.up, 10, "the JACK dummy server to come back")

    def up(self):
        if self.process.poll() is not None:
            raise TestFailure("jackd exited")
        try:
            # A server asleep as it starts keeps jack_lsp waiting too.
            return subprocess.run(["jack_lsp"], env=self.env(), capture_output=True, timeout=3).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def __exit__(self, *exc):
        stop_process(self.process)
        os.unlink(self.log.name)
        if self.lock is not None:
            self.lock.close()


class Engine:
    """The real sustaind (which starts the real worker)."""

    def __init__(self, paths, jack, extra_args=(), env_extra=None, instance=None, pass_fds=(), trace=True):
        self.paths = paths
        self.pass_fds = tuple(pass_fds)  # file descriptors sustaind inherits (e.g. for --notify-fd)
        self.jack = jack
        self.instance = instance or f"it-{os.getpid()}-{random.randrange(1 << 20)}"
        self.port = free_udp_port()
        self.args = [paths.sustaind, "--instance", self.instance, "--port", str(self.port),
                     "--device", "system"] + list(extra_args)
        self.env = jack.env()
        self.log_path = tempfile.mktemp(prefix="sustaind-", suffix=".log")
        # Every output stage writes its per-cycle decisions here, so a failure can show what
        # the stage did at the damaged sample (where it read from, how far behind it played).
        # (trace=False for a benchmark of the engine's own cost: a user's engine writes none.)
        if trace:
            self.env["SUSTAIN_OUTPUT_TRACE"] = self.log_path + ".trace"
        if env_extra:
            self.env.update(env_extra)
        self.process = None

    def start(self, wait_ready=True):
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        pass_fds=self.pass_fds)
        if wait_ready:
            wait_until(lambda: "sustain ready" in self.log() or self.process.poll() is not None, 15,
                       "sustaind to say it is ready")
            if self.process.poll() is not None:
                raise TestFailure(f"sustaind exited with {self.process.returncode}:\n{self.log()}")
        return self

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def worker_pids(self):
        """Every worker sustaind started, in order (not the output stages)."""
        return [int(pid) for pid in re.findall(r"worker \d started (?:as \w+ )?\(pid (\d+)\)", self.log())]

    def send_raw(self, packet):
        """Sends one datagram exactly as given (see osc_wire for building one)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(packet, ("127.0.0.1", self.port))

    def status(self):
        """sustain-status --json --once for this engine: (exit code, the JSON object)."""
        out = subprocess.run([self.paths.status, "--instance", self.instance, "--json", "--once"],
                             capture_output=True, text=True, timeout=10)
        return out.returncode, json.loads(out.stdout)

    def send(self, address, *args):
        """Sends one OSC message with liblo's oscsend: args are (type, value) pairs."""
        command = ["oscsend", "127.0.0.1", str(self.port), address]
        if args:
            command.append("".join(type_tag for type_tag, _ in args))
            command += [str(value) for _, value in args]
        subprocess.run(command, check=True, timeout=5)

    def stop(self, timeout=5):
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise TestFailure(f"sustaind did not stop within {timeout} s after SIGTERM")

    def shm_objects(self):
        return [n for n in os.listdir("/dev/shm") if n.startswith(f"sustain-{self.instance}")]

    def __enter__(self):
        return self.start()

    def diagnose(self):
        """What the output stage saw: its counters, and the cycles where it had no block to
        play (source 2) with their neighbours, from the trace."""
        if self.process and self.process.poll() is None:
            status = subprocess.run([self.paths.status, "--instance", self.instance, "--json", "--once"],
                                    capture_output=True, text=True, timeout=10)
            try:
                print(f"--- output stage ---\n{json.dumps(json.loads(status.stdout).get('output'))}", flush=True)
            except ValueError:
                print(f"--- status ---\n{status.stdout}{status.stderr}", flush=True)
        for path in sorted(glob.glob(self.env.get("SUSTAIN_OUTPUT_TRACE", "/nonexistent/none") + ".*")):
            with open(path) as f:
                lines = f.readlines()
            marks = [i for i, line in enumerate(lines) if line.split()[2:3] == ["2"]]
            print(f"--- {os.path.basename(path)}: {len(lines)} cycles, {len(marks)} without a block "
                  f"(cycle number source active_last standby_last active lag start_ns block_start_ns) ---")
            shown = set()
            for i in marks[:5]:
                for j in range(max(0, i - 3), min(len(lines), i + 3)):
                    if j not in shown:
                        shown.add(j)
                        print(lines[j], end="")

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.diagnose()
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        # SUSTAIN_KEEP_TRACES=DIR keeps sustaind's log and the output stages' traces there
        # (for a benchmark whose damage is to be explained afterwards).
        keep = os.environ.get("SUSTAIN_KEEP_TRACES")
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(self.log_path, keep)
        for path in glob.glob(self.env.get("SUSTAIN_OUTPUT_TRACE", "/nonexistent/none") + ".*"):
            if keep:
                shutil.copy(path, keep)
            os.unlink(path)
        for pid in self.worker_pids():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        for name in self.shm_objects():  # left by a sustaind this test had to kill
            os.unlink(os.path.join("/dev/shm", name))
        if exc[0] is not None:
            print(f"--- sustaind log ---\n{self.log()}", flush=True)
        os.unlink(self.log_path)


class Recording:
    """sustain-record on system:monitor_1: what the driver itself played."""

    def __init__(self, paths, jack, seconds, cycle_times=True, keep=False):
        self.keep = keep  # leaves the recording's directory in place (its path is printed)
        self.paths = paths
        self.jack = jack
        self.seconds = seconds
        self.directory = tempfile.mkdtemp(prefix="sustain-rec-")
        self.wav = os.path.join(self.directory, "monitor.wav")
        self.ready = os.path.join(self.directory, "ready")
        self.cycle_times_path = os.path.join(self.directory, "cycles.json") if cycle_times else None
        self.process = None

    def __enter__(self):
        extra = ["--cycle-times", self.cycle_times_path] if self.cycle_times_path else []
        self.process = subprocess.Popen(
            [self.paths.record, "--server", self.jack.name, "--port", "system:monitor_1",
             "--seconds", str(self.seconds), "--out", self.wav, "--ready-file", self.ready, "--json"] + extra,
            env=self.jack.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: os.path.exists(self.ready) or self.process.poll() is not None, 10, "the recorder")
        except TestFailure:
            self.__exit__(None, None, None)  # a recorder left running would hold the server's name
            raise
        if self.process.poll() is not None:
            raise TestFailure(f"recorder failed: {self.process.stderr.read()}")
        return self

    def finish(self):
        out, err = self.process.communicate(timeout=self.seconds + 15)
        if self.process.returncode != 0:
            raise TestFailure(f"recorder exited {self.process.returncode}: {err}")
        summary = json.loads(out)
        check(summary["recorder_overflows"] == 0, "the recorder lost no samples itself")
        self.summary = summary
        if self.cycle_times_path:
            self.cycle_times()  # read now: the directory goes when the recording is left
        return summary

    def samples(self):
        """The recording as a list of floats (the recorder writes 32-bit float WAV, one channel)."""
        with open(self.wav, "rb") as f:
            data = f.read()
        offset = 12
        while offset + 8 <= len(data):
            chunk, size = data[offset:offset + 4], int.from_bytes(data[offset + 4:offset + 8], "little")
            if chunk == b"data":
                body = array.array("f")
                body.frombytes(data[offset + 8:offset + 8 + size - size % 4])
                return body
            offset += 8 + size + (size & 1)
        raise TestFailure("the recording has no data chunk")

    def cycle_times(self):
        """JACK's start time of each of the recorder's cycles (--cycle-times), read once."""
        if not hasattr(self, "cycles"):
            with open(self.cycle_times_path) as f:
                self.cycles = json.load(f)
        return self.cycles

    def cycle_starts(self):
        """When each recorded cycle began, on JACK's clock: JACK's estimate of the driver's
        wake-up, or the recorder's own wake-up when that came first: JACK's filtered timer can
        lie ahead of the callbacks by milliseconds for seconds after a disturbance (the
        engine's frame clock takes the same rule, shm/frame_clock.h)."""
        cycles = self.cycle_times()
        if "starts" not in cycles:
            wakes = cycles.get("wake_usecs") or cycles["usecs"]
            cycles["starts"] = [min(u, w) for u, w in zip(cycles["usecs"], wakes)]
        return cycles["starts"]

    def monotonic_ns_at(self, index):
        """When the driver played sample `index` of the recording, on CLOCK_MONOTONIC: the start
        of its JACK cycle (cycle_starts) plus its place in the cycle."""
        cycles = self.cycle_times()
        frames, usecs = cycles["frame"], self.cycle_starts()
        k = bisect.bisect_right(frames, index) - 1
        if k < 0:
            raise TestFailure(f"sample {index} lies before the first recorded cycle")
        rate = cycles["sample_rate"]
        jack_us = usecs[k] + (index - frames[k]) * 1e6 / rate
        return (jack_us - cycles["jack_minus_monotonic_us"]) * 1000.0

    def index_at_monotonic_ns(self, ns):
        """The recording's sample the driver played at `ns` (CLOCK_MONOTONIC): the inverse of
        monotonic_ns_at. A time the driver skipped (it woke late and jumped ahead) maps to the
        first sample played after it."""
        cycles = self.cycle_times()
        frames, usecs = cycles["frame"], self.cycle_starts()
        jack_us = ns / 1000.0 + cycles["jack_minus_monotonic_us"]
        k = bisect.bisect_right(usecs, jack_us) - 1
        if k < 0:
            raise TestFailure(f"{ns} ns lies before the first recorded cycle")
        rate, period = cycles["sample_rate"], self.jack.frames
        return frames[k] + min((jack_us - usecs[k]) * rate / 1e6, period if k + 1 < len(frames) else float("inf"))

    def analyze(self, *args):
        result = subprocess.run([self.paths.analyze, "--in", self.wav, "--json", "--damage-report", "10"] + list(args),
                                capture_output=True, text=True, timeout=60)
        if result.returncode not in (0, 1):
            raise TestFailure(f"analyzer failed ({result.returncode}): {result.stderr}")
        report = json.loads(result.stdout)
        if result.returncode != 0:
            print(f"analyzer: {result.stdout}\n{result.stderr}", flush=True)
        return report

    def split_damage(self, report, window=XRUN_WINDOW, max_periods_per_xrun=XRUN_PERIODS):
        """Splits the analyzer's damage events into those the machine explains and the rest,
        which the engine must answer for. Returns (engine_events, machine_events); each of
        the latter has a "cause":
        - "recording": the event lies exactly at the recorder's cycle jumps (cycle_jumps:
          JACK skipped the recorder for a cycle, or ran it after the driver had begun the
          next one), at most 3 damaged samples per boundary, no silence. The recording is
          not continuous there, whatever was played; the positions are exact, so the test
          is too.
        - "late_wake": no silence, and it starts within a period of a cycle the driver began
          late, a period or more after the one before (JACK's own cycle times, recorded for
          every cycle): the driver then runs two cycles back to back and plays the second
          before the graph has filled it. The dummy driver's timer does this on a loaded VM
          (140 to 340 a minute here); a single JACK client playing a sine is damaged at the
          same places (39 of its 40 damage events in 45 s; docs/quality.md). Exact, not a window.
        - "xrun": within `window` frames of an xrun JACK reported to the recorder (the driver
          played a stale period because a client was late; the report itself comes late),
          and no longer than what those xruns explain: JACK waits at most two periods for a
          late client before it runs the next cycle, so each reported xrun explains up to
          XRUN_PERIODS periods of damage or silence. A longer event is the engine's, xrun or
          not (pass max_periods_per_xrun=None for a test that bounds such events itself)."""
        summary = self.summary if hasattr(self, "summary") else {}
        xruns = summary.get("xrun_frames", [])
        jumps = sorted(at for at, _ in summary.get("cycle_jumps", []))
        period = self.jack.frames
        rate = report.get("sample_rate", 48000)
        wakes = self.late_wakes()
        engine, machine = [], []
        for event in report.get("events", []):
            start, end = event["start_s"] * rate, event["end_s"] * rate
            near = [x for x in xruns if start - window <= x <= end + window]
            # Where the nearest reported xrun was (frames from the event's start), for the
            # record when an event is judged the engine's.
            event["nearest_xrun"] = min((x - start for x in xruns), key=abs, default=None)
            k = bisect.bisect_left(wakes, start - period)
            late_wake = k < len(wakes) and wakes[k] <= start + period
            if event["gap_samples"] == 0 and self._at_cycle_jumps(jumps, round(start), round(end), event["damaged"], period):
                event["cause"] = "recording"
                machine.append(event)
            elif event["gap_samples"] == 0 and late_wake:
                event["cause"] = "late_wake"
                machine.append(event)
            elif near and (max_periods_per_xrun is None or
                           event["damaged"] + event["gap_samples"] <= max_periods_per_xrun * period * len(set(near))):
                event["cause"] = "xrun"
                machine.append(event)
            else:
                engine.append(event)
        return engine, machine

    def late_wakes(self):
        """Frames (recording indices) of the cycles the driver began a period or more late:
        JACK's cycle start came at least 1.5 periods after the previous cycle's."""
        if not self.cycle_times_path:
            return []
        cycles = self.cycle_times()
        frames, usecs = cycles["frame"], cycles["usecs"]
        period_us = self.jack.frames * 1e6 / cycles["sample_rate"]
        return [frames[i] for i in range(1, len(frames)) if usecs[i] - usecs[i - 1] >= 1.5 * period_us]

    @staticmethod
    def _at_cycle_jumps(jumps, start, end, damaged, period):
        """Do the damaged samples [start, end] lie at boundaries a cycle jump of the recording
        makes suspect? A jump at frame p (the recorder's cycle there was not the one after
        its previous cycle, by JACK's timer) breaks the recording at p or, since the timer
        and the port buffer are not read at one instant, at p + period. A break between
        samples n-1 and n breaks the sine recurrence at n and n+1: the event must start at
        such a boundary, end within 2 samples of one in the same run of boundaries at most a
        period apart, and have at most 3 damaged samples per boundary it spans."""
        boundaries = sorted({b for p in jumps for b in (p, p + period)})
        first = bisect.bisect_left(boundaries, start - 2)
        if first == len(boundaries) or boundaries[first] > start:
            return False
        last = first
        while (last + 1 < len(boundaries) and boundaries[last + 1] - boundaries[last] <= period
               and boundaries[last] + 2 < end):
            last += 1
        return end <= boundaries[last] + 2 and damaged <= 3 * (last - first + 1)

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.keep:
            print(f"recording kept: {self.directory}", flush=True)
        else:
            shutil.rmtree(self.directory, ignore_errors=True)


def onsets(samples, quiet=1500):
    """Indices where a recording leaves exact silence after at least `quiet` silent samples
    (a tone brought in from gain 0: its first sample is not 0, the silence before is)."""
    found, silent = [], 0
    for i, x in enumerate(samples):
        if x == 0.0:
            silent += 1
        else:
            if silent >= quiet:
                found.append(i)
            silent = 0
    return found


def main(test):
    """Runs `test(paths)`, turning failures into exit code 1 with the reason."""
    # meson stops a test that runs out of time with SIGTERM: leave through the context
    # managers, so that its JACK server and engine go too (a JACK server left running
    # would keep its name from the next test that takes it).
    def stop_on_sigterm(signum, _frame):
        raise TestFailure(f"stopped by signal {signum} (out of time?)")
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        test(Paths(sys.argv))
    except TestFailure as failure:
        print(f"FAIL: {failure}", flush=True)
        sys.exit(1)
    print("PASS", flush=True)
