"""A Node.js client built on the `osc` package from npm (osc.js, the library Open Stage
Control is built on), sending from one osc.UDPPort and listening on another, follows a change
another client makes, on its own addresses, with the real engine:

- it names its receive port with /engine/notify 1 <port>; the answer, the snapshot,
  /engine/pong and /engine/status.reply all arrive there, nothing at the port it sends from;
- it set voice 0's frequency in Hz on /engine/voice/0/freq, voice 1's gain and voice 2's
  frequency on their /norm addresses; when another client changes them (through other forms
  of address), it hears voice 0's frequency in Hz on /engine/voice/0/freq, voice 1's gain
  on /engine/voice/1/gain/norm (linear: the same number) and voice 2's frequency on
  /engine/voice/2/freq/norm (exponential from 20 Hz to min(20000, 0.45 x rate) Hz);
- it is one subscriber, not also a surface of the /norm addresses (it would hear twice).

The package is installed into the build directory by tools/test (tools/lib/common.sh,
sustain_install_node); without node or the package the test skips: it never reaches the
network itself. The client is tests/integration/node/osc_client.js.
"""
import json
import math
import os
import select
import shutil
import subprocess
import sys
import time

from harness import SKIP, TIMEOUT_SCALE, Engine, JackServer, TestFailure, check, free_udp_port, main, stop_process

RATE = 48000  # the engine's default --rate
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "osc_client.js")
# The forms of address of the three parameters that the client did not use.
OTHER_FORMS = ("/engine/freq", "/engine/freq/norm", "/engine/voice/0/freq/norm", "/engine/voice/1/gain",
               "/engine/voice/2/freq")
CLIENT_SECONDS = 60  # the client's own deadline: it never outlives a test that lost track of it


class NodeClient:
    """osc_client.js, its output read with a deadline (a client that stops talking must not
    hang the test)."""

    def __init__(self, node, modules, engine_port, receive_port):
        env = dict(os.environ, NODE_PATH=modules)
        self.process = subprocess.Popen(
            [node, CLIENT, str(engine_port), str(receive_port), "0", str(CLIENT_SECONDS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self.lines = []     # every line printed, parsed (text that is not JSON as {"text": ...})
        self.pending = b""

    def messages(self, on="receive", since=0):
        """(address, args) of each message received on the port `on`, from line `since` on."""
        return [(m["address"], m["args"]) for m in self.lines[since:] if m.get("on") == on and "address" in m]

    def read(self, timeout):
        """Takes in what the client printed within `timeout` seconds; False once it has ended."""
        ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, timeout))
        if not ready:
            return True
        data = os.read(self.process.stdout.fileno(), 65536)
        if not data:
            return False
        self.pending += data
        *complete, self.pending = self.pending.split(b"\n")
        for line in complete:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"text": line.decode(errors="replace")})
        return True

    def wait_for(self, predicate, timeout, what):
        timeout *= TIMEOUT_SCALE  # a TSan build's engine answers slower
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure(f"the node client did not get {what} within {timeout} s")
            if not self.read(min(left, 0.1)):
                raise TestFailure(f"the node client ended (exit {self.process.wait(5)}) before {what}")

    def quit(self, timeout=5):
        """Closes its stdin (it quits on that) and waits for its exit code."""
        self.process.stdin.close()
        deadline = time.monotonic() + timeout
        while self.read(max(0.0, deadline - time.monotonic())) and time.monotonic() < deadline:
            pass
        return self.process.wait(max(1.0, deadline - time.monotonic()))

    def dump(self):
        return "\n".join(line["text"] if list(line) == ["text"] else json.dumps(line) for line in self.lines)


def last_value(messages, address):
    values = [args[0] for a, args in messages if a == address and args]
    return values[-1] if values else None


def close_to(value, expected, tolerance):
    return value is not None and abs(value - expected) <= tolerance


def test(paths):
    node = shutil.which("node")
    modules = os.path.join(paths.build, "node", "node_modules")
    if node is None or not os.path.isfile(os.path.join(modules, "osc", "package.json")):
        missing = "node is not installed" if node is None else f"the osc package is not in {modules}"
        print(f"{missing} (tools/test installs both: sustain_install_node in tools/lib/common.sh); skipping",
              flush=True)
        sys.exit(SKIP)

    expected_freq_norm = math.log(880.0 / 20.0) / math.log(min(20000.0, 0.45 * RATE) / 20.0)
    receive_port = free_udp_port()
    with JackServer() as jack, Engine(paths, jack) as engine:
        client = NodeClient(node, modules, engine.port, receive_port)
        try:
            client.wait_for(lambda: any("ready" in line for line in client.lines), 10, "both ports open")
            ports = next(line["ready"] for line in client.lines if "ready" in line)
            check(ports["receive"] == receive_port and ports["send"] != receive_port,
                  f"it sends from one port and listens on another: {ports}")

            received = client.messages
            client.wait_for(lambda: ("/engine/pong", []) in received() and
                            any(a == "/engine/status.reply" for a, _ in received()), 10, "/engine/pong and the status")
            # /engine/notify 1 <port> is answered /engine/notify 1 at the new port: that
            # confirms the reply port and the subscription at once.
            check(("/engine/notify", [1]) in received(), "the subscription is confirmed at the receive port")
            check(("/engine/pong", []) in received(), "/engine/pong arrives at the receive port")
            check(any(a == "/engine/status.reply" for a, _ in received()), "/engine/status.reply arrives there too")
            # The snapshot ends with the last voice's gain (4 voices by default).
            client.wait_for(lambda: last_value(received(), "/engine/voice/3/gain") is not None, 5, "the snapshot")
            check(last_value(received(), "/engine/gain") == 0.0, "the snapshot arrives there (master gain 0)")

            # Another client (liblo's oscsend, from ports of its own), through other forms of
            # address than the node client used.
            mark = len(client.lines)
            engine.send("/engine/freq", ("f", 550.0))
            engine.send("/engine/voice/1/gain", ("f", 0.25))
            engine.send("/engine/voice/2/freq", ("f", 880.0))

            def after():
                return client.messages(since=mark)

            client.wait_for(lambda: last_value(after(), "/engine/voice/0/freq") == 550.0 and
                            close_to(last_value(after(), "/engine/voice/1/gain/norm"), 0.25, 1e-6) and
                            close_to(last_value(after(), "/engine/voice/2/freq/norm"), expected_freq_norm, 1e-4),
                            5, "the other client's changes")
            print("received after the change:\n  " + "\n  ".join(json.dumps(m) for m in after()), flush=True)
            check(last_value(after(), "/engine/voice/0/freq") == 550.0,
                  "voice 0's frequency comes in Hz on /engine/voice/0/freq, the address it used")
            check(close_to(last_value(after(), "/engine/voice/1/gain/norm"), 0.25, 1e-6),
                  "voice 1's gain comes on /engine/voice/1/gain/norm, 0.25 (linear)")
            check(close_to(last_value(after(), "/engine/voice/2/freq/norm"), expected_freq_norm, 1e-4),
                  f"voice 2's 880 Hz comes on /engine/voice/2/freq/norm as {expected_freq_norm:.5f} (exp from 20 Hz)")
            others = [(a, v) for a, v in after() if a in OTHER_FORMS]
            check(others == [], f"and on no other form of their addresses: {others}")
            check(client.messages(on="send") == [], f"nothing arrives at the port it sends from: {client.messages(on='send')}")
            check(not any("error" in line or "text" in line for line in client.lines),
                  "the client reported no error")
            c = engine.status()[1]["osc"]["clients"]
            check(c["subscribers"] == 1 and c["surfaces"] == 0,
                  f"it is one subscriber, not also a surface of the /norm addresses: {c}")
            code = client.quit()
            check(code == 0, f"the client quits when its stdin closes (exit {code})")
        except (TestFailure, subprocess.TimeoutExpired):
            print(f"--- the node client printed ---\n{client.dump()}", flush=True)
            raise
        finally:
            stop_process(client.process)


if __name__ == "__main__":
    main(test)
