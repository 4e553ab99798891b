"""Clients that come and go, with real sockets against the real engine (docs/clients.md):

- subscribers and control surfaces whose ports close are forgotten at the next feedback
  (the kernel's ICMP "port unreachable", IP_RECVERR), counted as unreachable;
- after 99 clients that subscribed and left, the 100th is heard; so is a newcomer to a
  table full of clients that stopped answering (open ports nobody reads): the quietest
  is evicted and told so; a lease of silence ends the rest, while a client that renews
  keeps hearing;
- OSC over TCP: an idle connection is closed after a lease of silence while an active one
  keeps working;
- beyond loopback (a network namespace of the test's own, over a veth pair), a subscriber
  that never echoes its token gets that one reply and nothing else; one that echoes it is
  subscribed; a control surface there gets no feedback unless --allow names it.
Everything is judged through the status JSON and what the clients receive.
"""
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time

from harness import Engine, JackServer, TestFailure, check, free_udp_port, main, stop_process, wait_until
from osc_wire import drain, message, udp

LEASE_S = 3.0



def subscribe(sock, target):
    sock.sendto(message("/engine/notify", "i", 1), target)
    replies = drain(sock, 0.05)
    check(replies and replies[0] == ("/engine/notify", [1]), f"/engine/notify 1 is confirmed (got {replies[:2]})")


def clients(engine):
    return engine.status()[1]["osc"]["clients"]


def heard_gain(replies, gain):
    return any(address == "/engine/gain" and abs(args[0] - gain) < 1e-6 for address, args in replies)


def test_udp_and_tcp(paths):
    tcp_port = free_udp_port()
    directory = tempfile.mkdtemp(prefix="sustain-clients-")
    mapping = os.path.join(directory, "surface.toml")
    with open(mapping, "w") as f:  # no feedback_port: feedback goes to the port a surface sends from
        f.write('[[map]]\naddress = "/1/fader1"\nparam = "master.gain"\n')
    args = ["--lease", str(LEASE_S), "--tcp-port", str(tcp_port), "--config", mapping]
    with JackServer() as jack, Engine(paths, jack, extra_args=args) as engine:
        target = ("127.0.0.1", engine.port)
        changer = udp()  # makes the changes everybody else hears

        # Three surfaces and nine subscribers go away: their ports close. (Each surface's
        # change is feedback for the ones before it, so some go before the change below.)
        for _ in range(3):
            with udp() as gone:
                gone.sendto(message("/1/fader1", "f", 0.5), target)
                drain(gone, 0.1)
        for _ in range(9):
            with udp() as gone:
                subscribe(gone, target)
        changer.sendto(message("/engine/gain", "f", 0.1), target)
        wait_until(lambda: clients(engine)["left_by_reason"]["unreachable"] == 12, 2,
                   "the twelve to be forgotten at the first feedback sent to their closed ports")
        c = clients(engine)
        check(c["subscribers"] == 0 and c["surfaces"] == 0 and c["icmp_errors"] >= 12, f"the tables are empty: {c}")

        # 99 more subscribe and leave; the 100th is heard.
        for _ in range(90):
            with udp() as gone:
                subscribe(gone, target)
        newcomer = udp()
        subscribe(newcomer, target)
        changer.sendto(message("/engine/gain", "f", 0.2), target)
        check(heard_gain(drain(newcomer, 0.5), 0.2), "the 100th newcomer hears a change")
        wait_until(lambda: clients(engine)["subscribers"] == 1, 2, "the 99 that left to be forgotten")
        newcomer.sendto(message("/engine/notify", "i", 0), target)
        check(drain(newcomer, 0.3) == [("/engine/notify", [0])], "/engine/notify 0 is confirmed")
        c = clients(engine)
        check(c["subscribers"] == 0 and c["left_by_reason"]["unsubscribed"] == 1, f"unsubscribed: {c}")
        evicted_before = c["left_by_reason"]["evicted"]

        # Clients that stop answering: their ports stay open, nobody reads, no ICMP comes.
        # More of them than the table holds: the quietest are evicted, and told so.
        silent = [udp() for _ in range(40)]
        for s in silent:
            s.sendto(message("/engine/notify", "i", 1), target)
            time.sleep(0.005)
        wait_until(lambda: clients(engine)["left_by_reason"]["evicted"] == evicted_before + 8, 2,
                   "eight evictions of the quietest")
        c = clients(engine)
        check(c["subscribers"] == 32, f"the table stays at its bound of 32: {c}")
        evicted = [s for s in silent[:8] if ("/engine/notify", [0]) in drain(s, 0.05)]
        check(len(evicted) == 8, f"each evicted client is told /engine/notify 0 ({len(evicted)} of 8)")
        late = udp()
        subscribe(late, target)
        changer.sendto(message("/engine/gain", "f", 0.3), target)
        check(heard_gain(drain(late, 0.5), 0.3), "a newcomer to a full table of silent clients hears a change")

        # A lease of silence ends the silent ones; a client that renews keeps hearing.
        deadline = time.time() + LEASE_S + 1.0
        while time.time() < deadline:
            late.sendto(message("/engine/notify", "i", 1), target)  # the explicit renewal
            drain(late, 0.4)
        c = clients(engine)
        check(c["subscribers"] == 1 and c["left_by_reason"]["lease_expired"] >= 31,
              f"only the client that renewed is left: {c}")
        changer.sendto(message("/engine/gain", "f", 0.4), target)
        check(heard_gain(drain(late, 0.5), 0.4), "the client that renewed still hears changes")
        for s in silent + [late, newcomer]:
            s.close()

        # TCP: a silent connection is closed after a lease; one that talks keeps working.
        with socket.create_connection(("127.0.0.1", tcp_port)) as quiet, \
                socket.create_connection(("127.0.0.1", tcp_port)) as talker:
            ping = message("/engine/ping")
            framed = struct.pack(">i", len(ping)) + ping
            talker.sendall(framed)
            quiet.settimeout(LEASE_S + 2.0)
            started = time.time()
            for _ in range(int((LEASE_S + 1.0) / 0.3)):
                talker.sendall(framed)
                time.sleep(0.3)
            closed = quiet.recv(1) == b""
            check(closed and time.time() - started < LEASE_S + 2.0, "the silent connection is closed after a lease")
            talker.sendall(framed)
            talker.settimeout(1.0)
            check(b"/engine/pong" in talker.recv(4096), "the talking connection still gets answers")
            tcp = engine.status()[1]["osc"]["tcp"]
            check(tcp["idle_closed"] == 1 and tcp["connections"] == 1 and tcp["closed_on_error"] == 0,
                  f"counted as idle, not as an error: {tcp}")
        changer.close()


# Run inside the namespace: a client at a private address beyond the engine's loopback.
NETNS_CLIENT = r"""
import json, socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
from osc_wire import drain, message
host, port, mode = sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
if mode == "surface":
    s.sendto(message("/1/fader1", "f", 0.5), (host, port))
else:
    s.sendto(message("/engine/notify", "i", 1), (host, port))
first = drain(s, 0.5)
if mode == "echo" and first and first[0][0] == "/engine/notify.proof":
    s.sendto(message("/engine/notify.proof", "i", first[0][1][0]), (host, port))
    first += drain(s, 0.5)
print(json.dumps({"first": first}), flush=True)
sys.stdin.readline()  # the test makes a change now
print(json.dumps({"then": drain(s, 0.8)}), flush=True)
"""


class Namespace:
    """A network namespace of the test's own, joined to this one by a veth pair with
    private addresses; removed on exit."""

    def __init__(self):
        tag = os.getpid() % 100000
        self.name = f"sustain-it-{tag}"
        self.outer, self.inner = f"sus{tag}o", f"sus{tag}i"
        net = 16 + tag % 200
        self.outer_address, self.inner_address = f"10.213.{net}.1", f"10.213.{net}.2"

    def ip(self, *args, netns=False):
        command = ["ip"] + (["netns", "exec", self.name, "ip"] if netns else []) + list(args)
        subprocess.run(command, check=True, capture_output=True, timeout=10)

    def __enter__(self):
        self.__exit__()
        self.ip("netns", "add", self.name)
        self.ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        self.ip("link", "set", self.inner, "netns", self.name)
        self.ip("addr", "add", f"{self.outer_address}/30", "dev", self.outer)
        self.ip("link", "set", self.outer, "up")
        self.ip("addr", "add", f"{self.inner_address}/30", "dev", self.inner, netns=True)
        self.ip("link", "set", self.inner, "up", netns=True)
        self.ip("link", "set", "lo", "up", netns=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)

    def client(self, port, mode):
        return subprocess.Popen(["ip", "netns", "exec", self.name, sys.executable, "-c", NETNS_CLIENT,
                                 os.path.dirname(os.path.abspath(__file__)), self.outer_address, str(port), mode],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def read_line(process, timeout):
    """The process's next line of output, or a failure after `timeout` seconds (a client
    that never answers must not hang the test)."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise TestFailure(f"the namespace client printed nothing in {timeout} s")
    line = process.stdout.readline()
    if not line:
        raise TestFailure(f"the namespace client ended without answering (exit {process.poll()})")
    return json.loads(line)


def run_client(namespace, engine, mode, gain):
    client = namespace.client(engine.port, mode)
    try:
        first = read_line(client, 10)["first"]
        engine.send("/engine/gain", ("f", gain))
        client.stdin.write("\n")
        client.stdin.flush()
        then = read_line(client, 10)["then"]
        client.wait(timeout=5)
    finally:
        stop_process(client)
    return first, [tuple(m) for m in then]


def test_beyond_loopback(paths):
    if os.geteuid() != 0:
        print("note: not run: a network namespace needs root", flush=True)
        return
    directory = tempfile.mkdtemp(prefix="sustain-clients-")
    mapping = os.path.join(directory, "surface.toml")
    with open(mapping, "w") as f:
        f.write('[[map]]\naddress = "/1/fader1"\nparam = "master.gain"\n')
    with Namespace() as namespace, JackServer() as jack, \
            Engine(paths, jack, extra_args=["--bind", "0.0.0.0", "--config", mapping]) as engine:
        # A subscribe that never completes (what a forged source address amounts to: the
        # token goes to whoever owns the address, and nobody echoes it).
        first, then = run_client(namespace, engine, "no-echo", 0.25)
        check(len(first) == 1 and first[0][0] == "/engine/notify.proof", f"only the token comes back: {first}")
        check(then == [], f"and nothing after it, no snapshot, no feedback: {then}")
        c = clients(engine)
        check(c["subscribers"] == 0 and c["proofs_asked"] == 1, f"not subscribed: {c}")

        first, then = run_client(namespace, engine, "echo", 0.35)
        check(("/engine/notify", [1]) in [tuple(m) for m in first], f"the echo subscribes: {first}")
        check(any(a == "/engine/gain" and abs(v[0] - 0.35) < 1e-6 for a, v in then), f"and it hears changes: {then}")

        first, then = run_client(namespace, engine, "surface", 0.45)
        check(first == [] and then == [], f"a surface beyond loopback gets no feedback: {first} {then}")
        c = clients(engine)
        check(c["surfaces"] == 0 and c["surfaces_unproven"] == 1, f"counted: {c}")
        check("name it with --allow" in engine.log(), "the log says how to trust a surface")


def test(paths):
    test_udp_and_tcp(paths)
    test_beyond_loopback(paths)


if __name__ == "__main__":
    main(test)
