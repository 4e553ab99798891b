"""sustaind under a service manager, and its Zeroconf advertisement:

- a bad --notify-fd (0-2, not open) is refused with one clear line;
- with NOTIFY_SOCKET (a unix datagram socket this test listens on) and WATCHDOG_USEC set
  (WATCHDOG_PID unset: the watchdog is for whichever process reads it): READY=1 arrives
  only once the engine plays with a warm spare (the status shows it), together with the
  --notify-fd newline (with --no-standby: once the active renders); STATUS= lines follow the health (a killed standby shows, then its
  replacement); WATCHDOG=1 comes every half interval and stops while sustaind is stopped;
  the workers do not inherit the watchdog variables; SIGTERM sends STOPPING=1;
- without the system D-Bus, --zeroconf warns and the engine runs anyway;
- with a private D-Bus and avahi-daemon (loopback only, nothing leaves the machine):
  `avahi-browse` finds _osc._udp on the OSC port, a second engine asking for the same name
  is renamed, and the service comes back after avahi-daemon restarts. Where no
  avahi-daemon can run, that part is skipped with the reason printed.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import Engine, JackServer, TestFailure, check, main, wait_until

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: every datagram, with the time it came and,
    for READY=1, what sustain-status said right then."""

    def __init__(self, directory, on_ready=None):
        self.path = os.path.join(directory, "notify")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.path)
        self.socket.settimeout(0.05)
        self.messages = []  # (monotonic time, text)
        self.on_ready = on_ready
        self.ready_snapshot = None
        self.running = True
        self.thread = threading.Thread(target=self.listen, daemon=True)
        self.thread.start()

    def listen(self):
        while self.running:
            try:
                data = self.socket.recv(4096)
            except socket.timeout:
                continue
            text = data.decode()
            if "READY=1" in text.splitlines() and self.on_ready and self.ready_snapshot is None:
                self.ready_snapshot = self.on_ready()
            self.messages.append((time.monotonic(), text))

    def lines(self, key):
        """(time, value) of every `key=value` line received."""
        found = []
        for when, text in list(self.messages):
            for line in text.splitlines():
                if line.startswith(key + "="):
                    found.append((when, line[len(key) + 1:]))
        return found

    def close(self):
        self.running = False
        self.thread.join(2)
        self.socket.close()


def status_json(paths, instance):
    result = subprocess.run([paths.status, "--instance", instance, "--json", "--once"], capture_output=True, text=True,
                            timeout=10)
    return result.returncode, json.loads(result.stdout)


def bad_notify_fds(paths):
    for fd, words in ((1, "0, 1 and 2 are standard input, output and error"), (97, "not an open file descriptor")):
        result = subprocess.run([paths.sustaind, "--instance", f"svc-bad-{os.getpid()}", "--notify-fd", str(fd)],
                                capture_output=True, text=True, timeout=10)
        lines = (result.stdout + result.stderr).strip().splitlines()
        check(result.returncode == 64 and len(lines) == 1 and words in lines[0],
              f"--notify-fd {fd} refused with one clear line ({lines[-1] if lines else ''})")


def journal_priorities(paths, directory):
    """Under systemd (JOURNAL_STREAM names stderr) every line carries the journal's priority
    prefix instead of a timestamp; with JOURNAL_STREAM naming another stream, it does not."""
    log_path = os.path.join(directory, "journal-stream.log")
    env = dict(os.environ, JACK_DEFAULT_SERVER=f"sustain-absent-{os.getpid()}")
    for names_stderr in (True, False):
        with open(log_path, "w") as log:
            status = os.fstat(log.fileno())
            env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino + (0 if names_stderr else 1)}"
            result = subprocess.run([paths.sustaind, "--instance", f"journal-{os.getpid()}", "--port", "0",
                                     "--device", "system"], env=env, stdout=log, stderr=log, timeout=20)
        with open(log_path) as f:
            lines = [line for line in f.read().splitlines() if line]
        check(result.returncode == 69, f"no device: exits 69 (got {result.returncode})")
        errors = [line for line in lines if "cannot start the engine" in line]
        if names_stderr:
            check(errors and errors[0].startswith(f"<3>[journal-{os.getpid()}/sustaind] "),
                  f"an error carries <3> and no timestamp for the journal: {errors[:1]}")
            check(all(re.match(r"<[2-7]>\[", line) for line in lines if line.startswith("<")) and
                  all(line.startswith("<") for line in lines if "/sustaind]" in line),
                  f"every line of sustaind carries a priority: {lines[:3]}")
        else:
            check(errors and not errors[0].startswith("<") and " error " in errors[0],
                  f"JOURNAL_STREAM naming another stream changes nothing: {errors[:1]}")


def notify_and_watchdog(paths, jack, directory):
    read_end, write_end = os.pipe()
    engine = Engine(paths, jack, ["--notify-fd", str(write_end), "--zeroconf"], pass_fds=(write_end,),
                    env_extra={"WATCHDOG_USEC": str(WATCHDOG_USEC),
                               # No system D-Bus at this address: Zeroconf can only warn.
                               "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={directory}/no-bus"})
    listener = NotifyListener(directory, on_ready=lambda: (status_json(paths, engine.instance), engine.log()))
    engine.env["NOTIFY_SOCKET"] = listener.path
    engine.env.pop("WATCHDOG_PID", None)
    try:
        with engine:
            os.close(write_end)
            wait_until(lambda: listener.lines("READY"), 10, "READY=1")
            (code, status), log = listener.ready_snapshot
            check("spare ready" in log and "sustain ready" in log, "READY=1 came after the engine played with a warm spare")
            check(code == 0 and status["supervisor"]["spare_ready"] is True and
                  status["supervisor"]["output_spare_ready"] is True,
                  "sustain-status at READY=1: healthy, spare and spare output stage ready")
            ready_text = [text for _, text in listener.messages if "READY=1" in text][0]
            check("STATUS=playing, spare warm, 0 crashes" in ready_text, f"READY=1 carries the status ({ready_text!r})")
            statuses = [value for _, value in listener.lines("STATUS")]
            check(statuses[0].startswith("starting"), f"a STATUS= line came while starting ({statuses[0]!r})")
            check(all(a != b for a, b in zip(statuses, statuses[1:])), "STATUS= sent only when the text changes")
            ready, _, _ = select.select([read_end], [], [], 2)
            check(ready and os.read(read_end, 16) == b"\n", "--notify-fd: the newline arrived")
            check(os.read(read_end, 16) == b"", "--notify-fd: then sustaind closed it")
            check("Zeroconf: cannot reach avahi-daemon" in engine.log() and "the engine runs anyway" in engine.log(),
                  "--zeroconf without the system D-Bus: a warning, the engine runs")

            # The watchdog: every half interval, from the supervision loop.
            time.sleep(2.2)
            pings = [when for when, _ in listener.lines("WATCHDOG")]
            recent = [when for when in pings if when > time.monotonic() - 2.0]
            check(3 <= len(recent) <= 6, f"WATCHDOG=1 every {WATCHDOG_USEC / 2e6} s ({len(recent)} in the last 2 s)")
            for pid in engine.worker_pids():
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environment = f.read().split(b"\0")
                check(not any(v.startswith(b"WATCHDOG_") for v in environment),
                      f"worker {pid} did not inherit WATCHDOG_USEC")
            os.kill(engine.process.pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            time.sleep(1.5)
            os.kill(engine.process.pid, signal.SIGCONT)
            during = [when for when, _ in listener.lines("WATCHDOG") if stopped_at + 0.1 < when < stopped_at + 1.45]
            check(not during, "no WATCHDOG=1 while sustaind is stopped (a hung loop would be restarted)")
            wait_until(lambda: any(w > stopped_at + 1.5 for w, _ in listener.lines("WATCHDOG")), 3,
                       "WATCHDOG=1 after SIGCONT")
            check(True, "WATCHDOG=1 again once sustaind runs")
            wait_until(lambda: status_json(paths, engine.instance)[0] == 0, 10, "healthy again after the stop")

            # The status follows the health: the standby killed, then replaced.
            code, status = status_json(paths, engine.instance)
            standby = [w for w in status["workers"] if w["role"] == "standby"][0]["pid"]
            os.kill(standby, signal.SIGKILL)
            wait_until(lambda: any(v.startswith("degraded: no spare") for _, v in listener.lines("STATUS")), 5,
                       "STATUS= degraded")
            wait_until(lambda: listener.lines("STATUS")[-1][1] == "playing, spare warm, 1 crash", 10,
                       "STATUS= playing again with the crash counted")
            check(True, f"STATUS= lines follow the health: {[v for _, v in listener.lines('STATUS')][-3:]}")
            check(len(listener.lines("READY")) == 1, "READY=1 was sent once")

            check(engine.stop() == 0, "sustaind stops cleanly on SIGTERM")
            check(listener.lines("STOPPING"), "STOPPING=1 at SIGTERM")
    finally:
        listener.close()
        os.close(read_end)


def no_standby_ready(paths, jack, directory):
    """--no-standby has no spare to wait for: ready once the active renders."""
    listener = NotifyListener(tempfile.mkdtemp(dir=directory))
    try:
        with Engine(paths, jack, ["--no-standby", "--layout", "direct"],
                    env_extra={"NOTIFY_SOCKET": listener.path}) as engine:
            wait_until(lambda: listener.lines("READY"), 10, "READY=1 without a standby")
            ready_text = [text for _, text in listener.messages if "READY=1" in text][0]
            check("STATUS=playing without a standby (--no-standby), 0 crashes" in ready_text,
                  f"--no-standby: READY=1 once the active renders ({ready_text!r})")
            check(engine.stop() == 0 and listener.lines("STOPPING"), "--no-standby: STOPPING=1 at SIGTERM")
    finally:
        listener.close()


def zeroconf_unavailable_reason():
    for tool in ("dbus-daemon", "avahi-daemon", "avahi-browse"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        with open("/run/avahi-daemon/pid") as f:
            pid = int(f.read().strip() or 0)
        if pid and os.path.exists(f"/proc/{pid}"):
            return "an avahi-daemon already runs on this machine (one per machine), and this test leaves it alone"
    except (OSError, ValueError):
        pass
    return None


class PrivateAvahi:
    """A D-Bus of its own (DBUS_SYSTEM_BUS_ADDRESS points there) and an avahi-daemon on it,
    serving the loopback interface only: no mDNS packet leaves the machine."""

    def __init__(self, directory):
        self.directory = directory
        self.bus = os.path.join(directory, "system_bus")
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={self.bus}")
        with open(os.path.join(directory, "bus.conf"), "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={self.bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
""")
        with open(os.path.join(directory, "avahi.conf"), "w") as f:
            f.write("[server]\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=lo\nenable-dbus=yes\n"
                    "[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\npublish-workstation=no\n")
        self.dbus = None
        self.avahi = None

    def start_bus(self):
        self.dbus = subprocess.Popen(["dbus-daemon", "--nofork", "--config-file", os.path.join(self.directory, "bus.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 5
        while not os.path.exists(self.bus):
            if self.dbus.poll() is not None or time.monotonic() > deadline:
                return f"dbus-daemon did not start: {self.dbus.stderr.read() if self.dbus.poll() is not None else 'timeout'}"
            time.sleep(0.02)
        return None

    def start_avahi(self):
        self.avahi_log = os.path.join(self.directory, f"avahi-{time.monotonic_ns()}.log")
        with open(self.avahi_log, "w") as log:
            self.avahi = subprocess.Popen(["avahi-daemon", "--no-drop-root", "--no-chroot", "--no-rlimits", "-f",
                                           os.path.join(self.directory, "avahi.conf")],
                                          env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while "Server startup complete" not in open(self.avahi_log).read():
            if self.avahi.poll() is not None or time.monotonic() > deadline:
                return f"avahi-daemon did not start: {open(self.avahi_log).read()[-600:]}"
            time.sleep(0.05)
        return None

    def stop_avahi(self):
        if self.avahi and self.avahi.poll() is None:
            self.avahi.terminate()
            self.avahi.wait(5)

    def browse(self):
        """{name: (address, port)} of every _osc._udp service avahi-browse resolves."""
        result = subprocess.run(["avahi-browse", "-rtp", "_osc._udp"], env=self.env, capture_output=True, text=True,
                                timeout=15)
        found = {}
        for line in result.stdout.splitlines():
            fields = line.split(";")
            if fields[0] == "=" and len(fields) >= 9:
                name = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), fields[3])  # -p escapes in decimal
                found[name] = (fields[7], int(fields[8]))
        return found

    def close(self):
        self.stop_avahi()
        if self.dbus and self.dbus.poll() is None:
            self.dbus.terminate()
            self.dbus.wait(5)


def zeroconf(paths, jack, directory):
    reason = zeroconf_unavailable_reason()
    if reason:
        print(f"SKIPPED the Zeroconf part: {reason}", flush=True)
        return
    avahi = PrivateAvahi(directory)
    try:
        reason = avahi.start_bus()
        if reason:
            print(f"SKIPPED the Zeroconf part: {reason}", flush=True)
            return
        bus = {"DBUS_SYSTEM_BUS_ADDRESS": avahi.env["DBUS_SYSTEM_BUS_ADDRESS"]}
        with Engine(paths, jack, ["--zeroconf"], env_extra=bus) as first:
            name = f"sustain ({first.instance})"
            check("no avahi-daemon is running" in first.log() and "the engine runs anyway" in first.log(),
                  "--zeroconf without avahi-daemon: a warning, the engine runs")
            check("advertised on the loopback interface (lo) only" in first.log(),
                  "OSC on 127.0.0.1: the warning says it is advertised on loopback only")
            reason = avahi.start_avahi()
            if reason:
                print(f"SKIPPED the rest of the Zeroconf part: {reason}", flush=True)
                return
            wait_until(lambda: f'Zeroconf: advertised as "{name}"' in first.log(), 10, "the advertisement")
            found = avahi.browse()
            check(found.get(name) == ("127.0.0.1", first.port),
                  f"avahi-browse finds \"{name}\" on 127.0.0.1 port {first.port} ({found})")

            with Engine(paths, jack, ["--zeroconf", "--zeroconf-name", name, "--no-standby"], env_extra=bus) as second:
                renamed = f"{name} #2"
                wait_until(lambda: f'advertised as "{renamed}"' in second.log(), 10, "the second advertisement")
                check(f'the service name "{name}" is taken: advertising as "{renamed}"' in second.log(),
                      "the second engine's name was taken: renamed, and the log says so")
                found = avahi.browse()
                check(found.get(renamed) == ("127.0.0.1", second.port) and found.get(name) == ("127.0.0.1", first.port),
                      f"avahi-browse finds both, each on its own port ({found})")
                check(second.stop() == 0, "the second engine stops cleanly")

            avahi.stop_avahi()
            wait_until(lambda: "avahi-daemon went away" in first.log(), 5, "the engine to notice avahi-daemon left")
            reason = avahi.start_avahi()
            if reason:
                raise TestFailure(f"avahi-daemon did not start again: {reason}")
            wait_until(lambda: f'advertised again as "{name}"' in first.log(), 10, "the advertisement after the restart")
            check(avahi.browse().get(name) == ("127.0.0.1", first.port), "avahi-daemon restarted: advertised again")
            check(first.stop() == 0, "sustaind stops cleanly")
            # Withdrawn at once; the daemon's own cache forgets it a second after the goodbye.
            wait_until(lambda: name not in avahi.browse(), 10, "the service to be withdrawn")
            check(True, "after sustaind stopped, the service is gone")
    finally:
        avahi.close()


def zeroconf_refused(paths):
    """A build without Zeroconf refuses --zeroconf as a usage error, saying why."""
    result = subprocess.run([paths.sustaind, "--zeroconf", "--instance", f"nozc{os.getpid()}"],
                            capture_output=True, text=True, timeout=30)
    check(result.returncode == 64 and "built without Zeroconf" in result.stderr + result.stdout,
          f"--zeroconf is refused with the reason in a build without it (exit {result.returncode})")


def test(paths):
    bad_notify_fds(paths)
    journal_priorities(paths, tempfile.mkdtemp(prefix="sustain-journal-"))
    directory = tempfile.mkdtemp(prefix="sustain-svc-")
    try:
        with JackServer() as jack:
            if paths.features["systemd"]:
                notify_and_watchdog(paths, jack, directory)
                no_standby_ready(paths, jack, directory)
            else:
                print("SKIPPED systemd notification: this build has none (meson -Dsystemd=disabled)", flush=True)
            if paths.features["zeroconf"]:
                zeroconf(paths, jack, directory)
            else:
                zeroconf_refused(paths)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main(test)
