#!/usr/bin/env python3
"""A three-host rehearsal rig on one Linux machine: one JACK "audio host" and netjack2
"render hosts", each in its own network namespace.

Why namespaces: a render host must be killable, stoppable, freezable and cut off from the
network as a whole, the way a real machine fails, while the audio host keeps running.
The audio namespace holds a bridge (br0, 10.231.0.1/24) with a JACK server using the dummy
driver and the netmanager; render host i has eth0 = 10.231.0.(10+i)/24, a veth into that
bridge, and a netjack2 slave server (`jackd -d net`).  Nothing outside the namespaces is
addressed; only the namespaces, a cgroup v2 directory per render host and the JACK files
named after this run's servers are created, and close() removes them all.

Each host also gets its own mount, IPC and UTS namespaces, held open by a `sleep` process,
with a private tmpfs on /dev/shm: JACK puts every client's notification socket at
/dev/shm/jack_<client>_<uid>_0, whatever the server, so two clients of the same name on two
servers of one machine (two render hosts' "loop", or anyone's jack_lsp) steal each other's
socket.  With a private /dev/shm each host is as separate as a real machine, nothing is
left in the machine's /dev/shm, and a killed host comes back with an empty one (FACTS.md).

    with Rig(renders=2, latency=2) as rig:
        rig.popen("r0", ["jack_connect", "system:capture_1", "system:playback_1"]).wait()
        rig.kill_all("r1"); rig.wait_gone("r1"); rig.restart_host("r1")

`python3 tools/hosts/rig.py --selftest` builds a rig, measures and prints facts.
"""
import argparse, atexit, glob, os, re, shutil, signal, subprocess, sys, tempfile, threading, time

SUBNET = "10.231.0"        # only ever assigned inside the rig's own namespaces
MASTER_IP = SUBNET + ".1"
NET_PORT = 19000           # netjack2's default port; namespaces keep runs apart
MCAST_ROUTE = "224.0.0.0/4"
_LIVE = set()              # rigs to clean up on exit or signal


def _ip(*args, check=True):
    """Run an `ip` command; the rig's set-up must fail loudly, its clean-up must not."""
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def cgroup2_root():
    """The cgroup v2 mount: /sys/fs/cgroup on unified systems, .../unified on hybrid ones."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    for m in mounts:
        if m == "/sys/fs/cgroup":
            return m
    return mounts[0] if mounts else None


def netns_pids(ns):
    """PIDs of every process whose network namespace is `ns` (`ip netns pids`)."""
    r = _ip("netns", "pids", ns, check=False)
    return [int(p) for p in r.stdout.split()]


def _signal_pids(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_empty(ns, timeout):
    deadline = time.monotonic() + timeout
    while netns_pids(ns) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not netns_pids(ns)


def cleanup_stale(prefix="sus-", only_dead=True):
    """Remove namespaces, cgroups and JACK files of rigs whose names start with `prefix`.
    With only_dead, a rig is removed only if the process that made it (the pid in
    "sus-<pid>-...") is gone, so concurrent runs are left alone."""
    def stale(name):
        m = re.match(r"sus-(\d+)-", name)
        return not only_dead or not (m and os.path.exists(f"/proc/{m.group(1)}"))
    names = [l.split()[0] for l in _ip("netns", "list", check=False).stdout.splitlines() if l.strip()]
    root = cgroup2_root()
    groups = [os.path.basename(p) for p in glob.glob(f"{root}/{prefix}*")] if root else []
    removed = []
    for ns in [n for n in names if n.startswith(prefix) and stale(n)]:
        _signal_pids(netns_pids(ns), signal.SIGCONT)
        _signal_pids(netns_pids(ns), signal.SIGKILL)
        _wait_empty(ns, 2)
        _ip("netns", "del", ns, check=False)
        removed.append(ns)
    for g in [g for g in groups if stale(g)]:
        path = f"{root}/{g}"
        try:
            with open(f"{path}/cgroup.freeze", "w") as f:
                f.write("0")
            with open(f"{path}/cgroup.kill", "w") as f:
                f.write("1")
        except OSError:
            pass
        time.sleep(0.05)
        try:
            os.rmdir(path)
            removed.append(path)
        except OSError:
            pass
    return removed


class Host:
    """One namespace: its name, its JACK server's name, address, link and cgroup."""
    def __init__(self, rig, name, addr):
        self.name, self.addr = name, addr
        self.ns = self.server = f"{rig.prefix}-{name}"
        self.link = "eth0" if name != "audio" else "br0"   # the render end of its veth
        self.peer = f"v-{name}"                             # the bridge end, in audio
        self.cgroup = None
        self.holder = None   # the `sleep` that keeps the host's mount/IPC/UTS namespaces
        self.jackd = None


class Rig:
    """Builds the rig on start() (or `with`), tears it all down on close().

    renders: number of render hosts (r0, r1, ...); latency: the slaves' `-l`; capture and
    playback: the slaves' `-C`/`-P` (audio from and to the master); rate/period: the master's.
    """

    def __init__(self, renders=2, latency=2, capture=1, playback=2, rate=48000, period=64,
                 prefix=None, keep_logs=False):
        self.prefix = prefix or f"sus-{os.getpid()}"
        self.latency, self.capture, self.playback = latency, capture, playback
        self.rate, self.period, self.keep_logs = rate, period, keep_logs
        self.audio = Host(self, "audio", MASTER_IP)
        self.renders = [Host(self, f"r{i}", f"{SUBNET}.{10 + i}") for i in range(renders)]
        self.hosts = {h.name: h for h in [self.audio, *self.renders]}
        self.cgroup_root = cgroup2_root()
        self.logdir = None
        self.procs = []
        self.master_ports = {}   # render host name -> its client's ports on the master

    # ---- set-up ---------------------------------------------------------------------
    def start(self):
        """Namespaces, bridge, veths, cgroups, the master server with the netmanager, then
        one slave per render host; returns once every slave's ports are on the master."""
        _LIVE.add(self)
        _install_handlers()
        self.logdir = tempfile.mkdtemp(prefix=self.prefix + "-logs-")
        a = self.audio.ns
        for h in self.hosts.values():
            _ip("netns", "add", h.ns)
            _ip("-n", h.ns, "link", "set", "lo", "up")
        _ip("-n", a, "link", "add", "br0", "type", "bridge")
        _ip("-n", a, "addr", "add", f"{MASTER_IP}/24", "dev", "br0")
        _ip("-n", a, "link", "set", "br0", "up")
        # The netmanager removes a dead slave's client only when it hears the KILL_MASTER
        # message its master sends to the multicast group: without this route, never.
        _ip("-n", a, "route", "add", MCAST_ROUTE, "dev", "br0")
        for h in self.renders:
            _ip("-n", a, "link", "add", h.peer, "type", "veth", "peer", "name", h.link, "netns", h.ns)
            _ip("-n", a, "link", "set", h.peer, "master", "br0", "up")
            _ip("-n", h.ns, "addr", "add", f"{h.addr}/24", "dev", h.link)
            _ip("-n", h.ns, "link", "set", h.link, "up")
            if self.cgroup_root:
                h.cgroup = f"{self.cgroup_root}/{h.ns}"
                os.mkdir(h.cgroup)
        for h in self.hosts.values():
            self.boot(h.name)
        self.audio.jackd = self.popen("audio", ["jackd", "-n", self.audio.server, "-R", "-d", "dummy",
                                                "-r", str(self.rate), "-p", str(self.period), "-m"],
                                      log="jackd")
        self._wait(lambda: self._lsp("audio") is not None, 10, "master server did not start")
        load = self.run("audio", ["jack_load", "-i", f"-p {NET_PORT}", "netmanager"])
        if load.returncode != 0:
            raise RuntimeError(f"jack_load netmanager failed: {load.stdout}{load.stderr}")
        for h in self.renders:
            self.start_slave(h.name)
        return self

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    def slave_cmd(self, host, latency=None):
        h = self.hosts[host]
        lat = self.latency if latency is None else latency
        return ["jackd", "-n", h.server, "-R", "-d", "net", "-a", MASTER_IP, "-p", str(NET_PORT),
                "-C", str(self.capture), "-P", str(self.playback), "-n", h.name, "-l", str(lat)]

    def start_slave(self, host, latency=None, timeout=15):
        """Start the render host's jackd slave; returns seconds until its ports are on the
        master (the port names are kept in master_ports[host])."""
        t0 = time.monotonic()
        self.hosts[host].jackd = self.popen(host, self.slave_cmd(host, latency), log="jackd")
        return self.wait_ports(host, timeout, t0)

    def restart_host(self, host, latency=None, timeout=15):
        """After kill_all: boot the host again (empty /dev/shm, like a rebooted machine) and
        start its slave with the same names; returns seconds until it is on the master."""
        t0 = time.monotonic()
        if not self.alive(host):
            self.boot(host)
        self.start_slave(host, latency, timeout)
        return time.monotonic() - t0

    # ---- running things in a host ---------------------------------------------------
    def env(self, host):
        """Clients find their host's server by name and never start a server by accident."""
        return dict(os.environ, JACK_DEFAULT_SERVER=self.hosts[host].server,
                    JACK_NO_START_SERVER="1", JACK_NO_AUDIO_RESERVATION="1")

    def boot(self, host):
        """Start the host's holder: new mount, IPC and UTS namespaces inside its network
        namespace, a private tmpfs on /dev/shm, the host's name as hostname."""
        h = self.hosts[host]
        script = ('mount -t tmpfs -o mode=1777,size=512m sus-shm /dev/shm && hostname "$0" '
                  '&& exec sleep infinity')
        h.holder = self._spawn(h, ["ip", "netns", "exec", h.ns, "unshare", "--mount", "--ipc",
                                   "--uts", "--propagation", "private", "sh", "-c", script, host],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def ready():
            if h.holder.poll() is not None:
                raise RuntimeError(f"{host}: namespaces failed: {h.holder.stderr.read()}")
            with open(f"/proc/{h.holder.pid}/cmdline", "rb") as f:
                return f.read().startswith(b"sleep")
        self._wait(ready, 5, f"{host}: holder did not start")

    def alive(self, host):
        h = self.hosts[host]
        return h.holder is not None and h.holder.poll() is None

    def popen(self, host, cmd, log=None, **kw):
        """Popen `cmd` in the host's namespaces (network, mount, IPC, UTS).  A render host's
        process enters its cgroup before it execs, so its children and threads are frozen
        and killed with it.  log: a name for stdout+stderr in the rig's log directory
        (default: pipes)."""
        h = self.hosts[host]
        if not self.alive(host):
            raise RuntimeError(f"{host} is down (restart_host first)")
        logf = open(os.path.join(self.logdir, f"{host}-{log}-{len(self.procs)}.log"), "w") if log else None
        kw.setdefault("stdout", logf or subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT if log else subprocess.PIPE)
        try:
            return self._spawn(h, ["nsenter", "-t", str(h.holder.pid), "-n", "-m", "-i", "-u", "--", *cmd],
                               env=kw.pop("env", self.env(host)), **kw)
        finally:
            if logf:
                logf.close()

    def _spawn(self, h, full, **kw):
        if h.cgroup:
            full = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', h.cgroup, *full]
        p = subprocess.Popen(full, text=True, **kw)
        self.procs.append(p)
        return p

    def run(self, host, cmd, timeout=10):
        """Run `cmd` in the host's namespace to completion; returns CompletedProcess."""
        p = self.popen(host, cmd)
        out, err = p.communicate(timeout=timeout)
        return subprocess.CompletedProcess(cmd, p.returncode, out, err)

    def pids(self, host):
        return netns_pids(self.hosts[host].ns)

    def _lsp(self, host, *args):
        r = self.run(host, ["jack_lsp", *args])
        return r.stdout.split("\n")[:-1] if r.returncode == 0 else None

    def ports(self, host="audio"):
        """Port names on the host's JACK server (None if it does not answer)."""
        return self._lsp(host)

    def connect(self, host, src, dst):
        return self.run(host, ["jack_connect", src, dst]).returncode == 0

    @staticmethod
    def _wait(cond, timeout, what=None, t0=None):
        t0 = t0 or time.monotonic()
        while not cond():
            if time.monotonic() - t0 > timeout:
                if what:
                    raise TimeoutError(what)
                return None
            time.sleep(0.02)
        return time.monotonic() - t0

    def _slave_ports(self, host):
        return [p for p in (self.ports("audio") or []) if p.startswith(host + ":")]

    def wait_ports(self, host, timeout=15, t0=None):
        """Seconds until the host's client ports appear on the master."""
        dt = self._wait(lambda: len(self._slave_ports(host)) >= self.capture + self.playback,
                        timeout, f"{host} did not appear on the master", t0)
        self.master_ports[host] = self._slave_ports(host)
        return dt

    def wait_gone(self, host, timeout=10, t0=None):
        """Seconds until the netmanager removes the host's client, or None if it does not."""
        return self._wait(lambda: not self._slave_ports(host), timeout, None, t0)

    # ---- fault injection on a render host -------------------------------------------
    def _sweep(self, h):
        """Move into the cgroup any process in the namespace started around the rig."""
        if h.cgroup:
            for pid in netns_pids(h.ns):
                try:
                    with open(f"{h.cgroup}/cgroup.procs", "w") as f:
                        f.write(str(pid))
                except OSError:
                    pass

    def kill_all(self, host, timeout=5):
        """SIGKILL every process in the namespace in one step (cgroup.kill where the kernel
        has it, then a SIGKILL to any pid left), like pulling a machine's power."""
        h = self.hosts[host]
        self._sweep(h)
        if h.cgroup and os.path.exists(f"{h.cgroup}/cgroup.kill"):
            with open(f"{h.cgroup}/cgroup.kill", "w") as f:
                f.write("1")
        _signal_pids(netns_pids(h.ns), signal.SIGKILL)
        for p in self.procs:
            p.poll()
        return _wait_empty(h.ns, timeout)

    def stop_all(self, host):
        _signal_pids(self.pids(host), signal.SIGSTOP)

    def cont_all(self, host):
        _signal_pids(self.pids(host), signal.SIGCONT)

    def link_down(self, host, side="audio"):
        """Cut the render host off.  side="audio" downs the bridge end: both ends lose
        carrier, addresses and routes stay, packets vanish (a pulled cable).  side="render"
        downs eth0 itself: its routes go and its sends fail at once."""
        h = self.hosts[host]
        _ip("-n", *((self.audio.ns, "link", "set", h.peer) if side == "audio" else
                    (h.ns, "link", "set", h.link)), "down")

    def link_up(self, host):
        h = self.hosts[host]
        _ip("-n", self.audio.ns, "link", "set", h.peer, "up")
        _ip("-n", h.ns, "link", "set", h.link, "up")

    def _freeze(self, host, value, timeout=2):
        h = self.hosts[host]
        if not (h.cgroup and os.path.exists(f"{h.cgroup}/cgroup.freeze")):
            raise RuntimeError("cgroup v2 freezer not available")
        self._sweep(h)
        with open(f"{h.cgroup}/cgroup.freeze", "w") as f:
            f.write(value)

        def done():
            with open(f"{h.cgroup}/cgroup.events") as f:
                return f"frozen {value}" in f.read()
        return self._wait(done, timeout, f"{host}: cgroup.freeze={value} did not settle")

    def freeze(self, host):
        """Freeze every process of the host (cgroup v2): unlike SIGSTOP, invisible to the
        processes and their parents.  Returns seconds until the kernel reports frozen."""
        return self._freeze(host, "1")

    def thaw(self, host):
        return self._freeze(host, "0")

    # ---- tear-down ------------------------------------------------------------------
    def close(self):
        """Remove every process, namespace, veth, cgroup and JACK file the rig made; safe
        to call twice and from a signal handler."""
        if self not in _LIVE:
            return
        _LIVE.discard(self)
        for h in self.hosts.values():
            if h.cgroup and os.path.exists(f"{h.cgroup}/cgroup.freeze"):
                with open(f"{h.cgroup}/cgroup.freeze", "w") as f:
                    f.write("0")
            pids = netns_pids(h.ns) if os.path.exists(f"/run/netns/{h.ns}") else []
            _signal_pids(pids, signal.SIGCONT)
            _signal_pids(pids, signal.SIGTERM)
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for h in self.hosts.values():
            if os.path.exists(f"/run/netns/{h.ns}") and not _wait_empty(h.ns, 3):
                _signal_pids(netns_pids(h.ns), signal.SIGKILL)
                _wait_empty(h.ns, 2)
        for p in self.procs:
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for h in self.hosts.values():
            _ip("netns", "del", h.ns, check=False)   # takes its veth ends with it
            if h.cgroup:
                for _ in range(50):
                    try:
                        os.rmdir(h.cgroup)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)
        if self.logdir and not self.keep_logs:
            shutil.rmtree(self.logdir, ignore_errors=True)


def _close_all():
    for rig in list(_LIVE):
        rig.close()


_PREVIOUS = {}


def _on_signal(sig, frame):
    """Clean up, then behave as before the rig was made (KeyboardInterrupt, or death)."""
    _close_all()
    prev = _PREVIOUS.get(sig)
    if callable(prev):
        prev(sig, frame)
    else:
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)


def _install_handlers():
    if _PREVIOUS or threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        _PREVIOUS[sig] = signal.signal(sig, _on_signal)


atexit.register(_close_all)
