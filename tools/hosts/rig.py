#!/usr/bin/env python3
"""A three-host rehearsal rig on one Linux machine: a JACK "audio host" (dummy driver,
netmanager) and netjack2 "render hosts" (`jackd -d net`).  FACTS.md has what it measured.

Why namespaces: a render host must be killable, stoppable, freezable and cut off as a
whole, the way a machine fails, while the audio host runs on.  The audio host has a bridge
br0 = 10.231.0.1/24; render host i has eth0 = 10.231.0.(10+i)/24 on a veth into it.

Why each host also has its own mount, IPC and UTS namespaces with a tmpfs on /dev/shm
(held open by a `sleep`, its "holder"): JACK puts every client's socket at
/dev/shm/jack_<client>_<uid>_0 whatever the server, so two clients of one name on two
servers of one machine (each render host's "loop", anyone's jack_lsp) steal each other's
socket and fail.  Private, the hosts are as separate as machines, nothing lands in the
machine's /dev/shm, and a killed host comes back with an empty one, as after a reboot.
close() removes every namespace, cgroup, process and log the rig made.

    with Rig(renders=2, latency=2) as rig:
        rig.connect("r0", "system:capture_1", "system:playback_1")
        rig.kill_all("r1"); rig.restart_host("r1")
"""
import argparse, atexit, contextlib, glob, itertools, os, re, shutil, signal, subprocess, sys, tempfile, threading, time

SUBNET = "10.231.0"        # assigned only inside the rig's own namespaces
MASTER_IP = SUBNET + ".1"
NET_PORT = 19000           # netjack2's default; the namespaces keep concurrent rigs apart
_LIVE = set()              # rigs to clean up at exit or on a signal


def _ip(*args, check=True):
    """Run `ip`: set-up must fail loudly, clean-up must not."""
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def cgroup2_root():
    """The cgroup v2 mount: /sys/fs/cgroup when unified, /sys/fs/cgroup/unified on hybrid
    systems (where the v2 freezer, cgroup.freeze, still works)."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    return "/sys/fs/cgroup" if "/sys/fs/cgroup" in mounts else (mounts[0] if mounts else None)


def netns_pids(ns):
    """PIDs of every process in network namespace `ns` (`ip netns pids`)."""
    return [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split()]


def _signal_pids(pids, sig):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait(cond, timeout, what=None, t0=None):
    """Poll cond; seconds (from t0) until it held, else TimeoutError(what) or None."""
    t0 = t0 or time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            if what:
                raise TimeoutError(what)
            return None
        time.sleep(0.02)
    return round(time.monotonic() - t0, 3)


def _wait_empty(ns, timeout):
    return _wait(lambda: not netns_pids(ns), timeout) is not None


def _write(path, value):
    with contextlib.suppress(OSError), open(path, "w") as f:
        f.write(value)


def _rmdir(path):
    """A cgroup goes only once its last process has: retry for two seconds."""
    for _ in range(100):
        try:
            return os.rmdir(path) or True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.02)
    return False


def cleanup_stale(prefix="sus-", only_dead=True):
    """Remove namespaces and cgroups of rigs whose names start with `prefix` (their
    processes are killed).  With only_dead, only rigs whose maker (the pid in
    "sus-<pid>-...") is gone, so concurrent runs are left alone.  Returns what went."""
    def stale(name):
        m = re.match(r"sus-(\d+)-", name)
        return not only_dead or not (m and os.path.exists(f"/proc/{m.group(1)}"))
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        ns = line.split()[0] if line.strip() else ""
        if ns.startswith(prefix) and stale(ns):
            _signal_pids(netns_pids(ns), signal.SIGKILL)   # works on stopped and frozen ones too
            _wait_empty(ns, 2)
            _ip("netns", "del", ns, check=False)
            removed.append(ns)
    root = cgroup2_root()
    for path in glob.glob(f"{root}/{prefix}*") if root else []:
        if stale(os.path.basename(path)):
            _write(f"{path}/cgroup.kill", "1")
            if _rmdir(path):
                removed.append(path)
    return removed


class Host:
    """One host: namespace and JACK server name, address, links, cgroup, processes."""
    def __init__(self, rig, name, addr):
        self.name, self.addr = name, addr
        self.ns = self.server = f"{rig.prefix}-{name}"
        self.link, self.peer = "eth0", f"v-{name}"   # its veth end; the bridge's end
        self.cgroup = self.holder = self.jackd = None


class Rig:
    """Builds the rig on start() (or `with`), tears it all down on close().

    renders: number of render hosts r0, r1, ...; latency: the slaves' `-l` (cycles);
    capture/playback: the slaves' `-C`/`-P` (channels from/to the master); sync: slaves
    run `jackd -S`, which sends a cycle's output at its end, one cycle sooner than async
    when a client renders on the slave; rate/period: the master's; keep_logs: keep the
    log directory (self.logdir).
    """

    def __init__(self, renders=2, latency=2, capture=1, playback=2, sync=False, rate=48000, period=64,
                 prefix=None, keep_logs=False):
        self.prefix = prefix or f"sus-{os.getpid()}"
        self.latency, self.capture, self.playback, self.sync = latency, capture, playback, sync
        self.rate, self.period, self.keep_logs = rate, period, keep_logs
        self.audio = Host(self, "audio", MASTER_IP)
        self.renders = [Host(self, f"r{i}", f"{SUBNET}.{10 + i}") for i in range(renders)]
        self.hosts = {h.name: h for h in [self.audio, *self.renders]}
        self.cgroup_root = cgroup2_root()
        self.logdir, self.procs, self._count = None, [], itertools.count()
        self.master_ports = {}   # render host -> its client's ports on the master

    # ---- set-up ---------------------------------------------------------------------
    def start(self):
        """Namespaces, bridge, veths, cgroups, the master with the netmanager, then one
        slave per render host; returns once every slave's ports are on the master."""
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
        # A master whose slave stopped answering asks the netmanager to drop it by a
        # message to the multicast group; without a route it is never dropped (FACTS.md).
        _ip("-n", a, "route", "add", "224.0.0.0/4", "dev", "br0")
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
                                                "-r", str(self.rate), "-p", str(self.period), "-m"], log="jackd")
        _wait(lambda: self.ports("audio") is not None, 10, "the master did not start")
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

    def boot(self, host):
        """Start the host's holder: mount, IPC and UTS namespaces inside its network
        namespace, a private tmpfs on /dev/shm, the host's name as hostname."""
        h = self.hosts[host]
        script = 'mount -t tmpfs -o mode=1777,size=512m sus-shm /dev/shm && hostname "$0" && exec sleep infinity'
        h.holder = self._spawn(h, ["ip", "netns", "exec", h.ns, "unshare", "--mount", "--ipc", "--uts",
                                   "--propagation", "private", "sh", "-c", script, host],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def ready():
            if h.holder.poll() is not None:
                raise RuntimeError(f"{host}: namespaces failed: {h.holder.stderr.read()}")
            with open(f"/proc/{h.holder.pid}/cmdline", "rb") as f:
                return f.read().startswith(b"sleep")
        _wait(ready, 5, f"{host}: holder did not start")

    def alive(self, host):
        h = self.hosts[host]
        return h.holder is not None and h.holder.poll() is None

    def slave_cmd(self, host, latency=None):
        h = self.hosts[host]
        return ["jackd", "-n", h.server, "-R", *(["-S"] if self.sync else []), "-d", "net", "-a", MASTER_IP,
                "-p", str(NET_PORT), "-C", str(self.capture), "-P", str(self.playback), "-n", h.name,
                "-l", str(self.latency if latency is None else latency)]

    def start_slave(self, host, latency=None, timeout=15):
        """Start the host's jackd slave; returns seconds until its ports are on the master
        (they are then in master_ports[host])."""
        t0 = time.monotonic()
        self.hosts[host].jackd = self.popen(host, self.slave_cmd(host, latency), log="jackd")
        return self.wait_ports(host, timeout, t0)

    def restart_host(self, host, latency=None, timeout=15, wait_old=True):
        """After kill_all: boot the host again (empty /dev/shm, like a rebooted machine)
        and start its slave; returns seconds from the slave's start to its ports on the
        master.  wait_old first waits for the master to drop the dead client (2 s after
        the death): a slave that comes back sooner is named "r0-01", not "r0"."""
        if wait_old:
            self.wait_gone(host, 5)
        if not self.alive(host):
            self.boot(host)
        return self.start_slave(host, latency, timeout)

    # ---- running things in a host ---------------------------------------------------
    def env(self, host):
        """Clients find their host's server by name and never start one by accident."""
        return dict(os.environ, JACK_DEFAULT_SERVER=self.hosts[host].server, JACK_NO_START_SERVER="1")

    def popen(self, host, cmd, log=None, **kw):
        """Popen `cmd` in the host's namespaces (network, mount, IPC, UTS); on a render
        host it first enters the host's cgroup, so it is frozen and killed with it.
        log: a name for stdout+stderr in self.logdir (default: pipes)."""
        h = self.hosts[host]
        if not self.alive(host):
            raise RuntimeError(f"{host} is down (restart_host first)")
        logf = open(os.path.join(self.logdir, f"{host}-{log}-{next(self._count)}.log"), "w") if log else None
        kw.setdefault("stdout", logf or subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT if log else subprocess.PIPE)
        kw.setdefault("env", self.env(host))
        try:
            return self._spawn(h, ["nsenter", "-t", str(h.holder.pid), "-n", "-m", "-i", "-u", "--", *cmd], **kw)
        finally:
            if logf:
                logf.close()

    def _spawn(self, h, cmd, **kw):
        if h.cgroup:
            cmd = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', h.cgroup, *cmd]
        p = subprocess.Popen(cmd, text=True, **kw)
        self.procs = [q for q in self.procs if q.poll() is None] + [p]   # reaps, too
        return p

    def run(self, host, cmd, timeout=10):
        """Run `cmd` in the host to completion; returns a CompletedProcess."""
        p = self.popen(host, cmd)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        return subprocess.CompletedProcess(cmd, p.returncode, out, err)

    def pids(self, host):
        return netns_pids(self.hosts[host].ns)

    def ports(self, host="audio"):
        """Port names on the host's JACK server, or None if it does not answer."""
        r = self.run(host, ["jack_lsp"])
        return r.stdout.splitlines() if r.returncode == 0 else None

    def connect(self, host, src, dst):
        return self.run(host, ["jack_connect", src, dst]).returncode == 0

    def clients(self, host, ports=None):
        """The host's clients on the master: "r0", and "r0-01" etc. when a slave came back
        before its dead instance was dropped."""
        ports = self.ports("audio") if ports is None else ports
        return {p.split(":")[0] for p in ports or [] if re.fullmatch(rf"{host}(-\d+)?", p.split(":")[0])}

    def wait_ports(self, host, timeout=15, t0=None):
        """Seconds until an instance of the host's client the rig has not seen before has
        all its ports on the master; they are then in master_ports[host].  Names cannot
        tell instances apart (a slave back after its old client was dropped takes the same
        name, often within one poll), so each instance seen gets a port alias as a mark."""
        def ready():
            lines = self.run("audio", ["jack_lsp", "-A"]).stdout.splitlines()
            ports = [p for p in lines if not p.startswith(" ")]
            marked = {lines[i - 1].split(":")[0] for i, p in enumerate(lines) if p.strip().startswith(self.prefix)}
            for name in sorted(self.clients(host, ports) - marked):
                mine = [p for p in ports if p.startswith(name + ":")]
                if len(mine) >= self.capture + self.playback:
                    self.run("audio", ["jack_alias", mine[0], f"{self.prefix}-{host}-{next(self._count)}"])
                    self.master_ports[host] = mine
                    return True
        return _wait(ready, timeout, f"{host} did not appear on the master", t0)

    def wait_gone(self, host, timeout=10, t0=None):
        """Seconds until none of the host's clients is on the master, or None."""
        return _wait(lambda: not self.clients(host), timeout, None, t0)

    # ---- fault injection on a render host -------------------------------------------
    def _sweep(self, h):
        """Move into the cgroup any process of the namespace started around the rig."""
        for pid in netns_pids(h.ns) if h.cgroup else []:
            _write(f"{h.cgroup}/cgroup.procs", str(pid))

    def kill_all(self, host, timeout=5):
        """SIGKILL every process of the host in one step (cgroup.kill where the kernel has
        it, then SIGKILL to any pid left), like pulling a machine's power."""
        h = self.hosts[host]
        self._sweep(h)
        if h.cgroup:
            _write(f"{h.cgroup}/cgroup.kill", "1")
        _signal_pids(netns_pids(h.ns), signal.SIGKILL)
        ok = _wait_empty(h.ns, timeout)
        self.procs = [p for p in self.procs if p.poll() is None]
        return ok

    def stop_all(self, host):
        _signal_pids(self.pids(host), signal.SIGSTOP)

    def cont_all(self, host):
        _signal_pids(self.pids(host), signal.SIGCONT)

    def link_down(self, host, side="audio"):
        """Cut the host off.  side="audio" downs the bridge's end: both ends lose carrier,
        addresses and routes stay, packets vanish (a pulled cable).  side="render" downs
        eth0 itself: its routes go and its sends fail at once."""
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
            raise RuntimeError("no cgroup v2 freezer here")
        self._sweep(h)
        _write(f"{h.cgroup}/cgroup.freeze", value)

        def settled():
            with open(f"{h.cgroup}/cgroup.events") as f:
                return f"frozen {value}" in f.read()
        return _wait(settled, timeout, f"{host}: cgroup.freeze={value} did not settle")

    def freeze(self, host):
        """Freeze every process of the host (cgroup v2): unlike SIGSTOP, no signal their
        parents can see.  Returns seconds until the kernel reports it frozen."""
        return self._freeze(host, "1")

    def thaw(self, host):
        return self._freeze(host, "0")

    # ---- tear-down ------------------------------------------------------------------
    def close(self):
        """Remove every process, namespace, veth, cgroup and log the rig made (render hosts
        first, then the audio host); safe to call twice and from a signal handler."""
        if self not in _LIVE:
            return
        _LIVE.discard(self)
        for group in (self.renders, [self.audio]):
            for h in group:
                if h.cgroup:
                    _write(f"{h.cgroup}/cgroup.freeze", "0")
                pids = netns_pids(h.ns)
                _signal_pids(pids, signal.SIGCONT)
                _signal_pids(pids, signal.SIGTERM)
            for h in group:
                if not _wait_empty(h.ns, 3):
                    _signal_pids(netns_pids(h.ns), signal.SIGKILL)
                    _wait_empty(h.ns, 2)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for h in self.hosts.values():
            _ip("netns", "del", h.ns, check=False)   # takes its veth ends with it
            if h.cgroup:
                _rmdir(h.cgroup)
        if self.logdir and not self.keep_logs:
            shutil.rmtree(self.logdir, ignore_errors=True)


def _close_all():
    for rig in list(_LIVE):
        rig.close()


_PREVIOUS = {}
atexit.register(_close_all)


def _on_signal(sig, frame):
    """Clean up, then do what the signal did before (KeyboardInterrupt, or death)."""
    _close_all()
    if callable(_PREVIOUS.get(sig)):
        return _PREVIOUS[sig](sig, frame)
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def _install_handlers():
    if not _PREVIOUS and threading.current_thread() is threading.main_thread():
        _PREVIOUS.update({sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)})


def _iodelay(rig, send, back):
    """Round trip in frames, by jack_iodelay on the master sending to `send`."""
    p = rig.popen("audio", ["timeout", "3", "stdbuf", "-oL", "jack_iodelay"])
    _wait(lambda: "jack_delay:in" in (rig.ports() or []), 5, "jack_iodelay did not start")
    rig.connect("audio", "jack_delay:out", send)
    rig.connect("audio", back, "jack_delay:in")
    found = re.findall(r"([\d.]+) frames +[\d.]+ ms total", p.communicate()[0])
    return float(found[-1]) / rig.period if found else None


def selftest(latency=2):
    """Build a rig, print what it finds, try every fault once on r1; 0 if all went."""
    with Rig(renders=2, latency=latency) as rig:
        print(f"cgroup v2 at {rig.cgroup_root}, freezer: {os.path.exists(rig.renders[0].cgroup + '/cgroup.freeze')}")
        print(f"slave ports on the master: {rig.master_ports}\nports on r0's own server: {rig.ports('r0')}")
        print(f"r0's /dev/shm: {rig.run('r0', ['ls', '/dev/shm']).stdout.split()}")
        rig.connect("r0", "system:capture_1", "system:playback_1")
        direct = _iodelay(rig, "r0:to_slave_1", "r0:from_slave_1")
        rig.run("r0", ["jack_disconnect", "system:capture_1", "system:playback_1"])
        rig.popen("r0", ["jack_thru", "thru"])
        _wait(lambda: "thru:input_1" in (rig.ports("r0") or []), 5, "jack_thru did not start")
        rig.connect("r0", "system:capture_1", "thru:input_1")
        rig.connect("r0", "thru:output_1", "system:playback_1")
        print(f"round trip at -l {latency}, one client on the master sending and receiving: {direct} "
              f"periods, slave wiring capture_1 to playback_1; {_iodelay(rig, 'r0:to_slave_1', 'r0:from_slave_1')}"
              f" through a client on the slave")
        t0 = time.monotonic()
        rig.kill_all("r1")
        print(f"kill_all r1: {len(rig.pids('r1'))} pids left; dropped by the master {rig.wait_gone('r1', 10, t0)} s"
              f" later; restart_host: back {rig.restart_host('r1')} s after its jackd started")
        for fault, undo in (("stop_all", "cont_all"), ("freeze", "thaw"), ("link_down", "link_up")):
            old = rig.clients("r1")
            getattr(rig, fault)("r1")
            time.sleep(0.5)
            getattr(rig, undo)("r1")
            back = rig.wait_ports("r1", 10)
            new = rig.master_ports["r1"][0].split(":")[0]
            gone = _wait(lambda: not rig.clients("r1") & (old - {new}), 5)
            print(f"{fault} 0.5 s: back as {new} {back} s after {undo}; {sorted(old)} dropped {gone} s after that")
    left = [n for n in _ip("netns", "list").stdout.split() if n.startswith(rig.prefix)]
    print(f"after close: namespaces left {left}")
    return 1 if left else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--selftest", action="store_true", help="build a rig, measure, print facts")
    ap.add_argument("--latency", type=int, default=2, help="the slaves' -l (default 2)")
    ap.add_argument("--cleanup-stale", metavar="PREFIX", nargs="?", const="sus-",
                    help="remove what killed runs left (default prefix sus-)")
    args = ap.parse_args()
    if args.cleanup_stale:
        print("\n".join(cleanup_stale(args.cleanup_stale)) or "nothing stale")
    sys.exit(selftest(args.latency) if args.selftest else 0)
