"""Clients that come and go, side by side with scsynth on one private JACK dummy server
(windows alternating, which engine goes first alternating too). Run through tools/bench-churn.

Per round and engine, a fresh engine is started, then for --seconds:
- 8 live clients subscribe (sustain /engine/notify 1; scsynth /notify 1), say one more thing
  (sustain: /engine/notify 1 again; scsynth: /status), then only listen;
- --churners clients arrive evenly over the window; each subscribes, notes whether it was
  taken (sustain /engine/notify 1 vs 0; scsynth /done /notify vs /fail) and vanishes: half
  close their port (an app that quits), half keep it open and never read (a phone that
  left the network: no ICMP comes back);
- a changer makes a change every --interval (sustain /engine/voice/1/freq, a value no other
  change carries; scsynth /s_new of a silent synth, which notifies every registered client
  with /n_go), and every live client's receipts are matched to the changes by value or node.
Reported per engine: the share of changes each live client heard, their feedback latency
(changer's send to the live client's receipt) p50/p99, the share of churners taken in, the
last churner taken in or not; for sustain also its table's size over time (sampled from
sustain-status every 0.5 s: it must stay bounded). Writes JSON.
"""
import argparse
import os
import select
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_bench import Client, Scsynth, Sustain, median_of, parse_message  # noqa: E402
from figures import machine, percentile, write_report  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
import osc_wire  # noqa: E402
from harness import JackServer, Paths  # noqa: E402

LIVE = 8
FIRST_NODE = 5000
BASE_FREQ = 200.0
FREQ_STEP = 0.5


class SustainChurn:
    """sustain's words for the benchmark's actions."""

    def __init__(self, engine):
        self.engine = engine
        self.name = "sustain"

    def subscribe(self, client):
        client.send(osc_wire.message("/engine/notify", "i", 1))
        reply = client.wait_for(lambda a, args: a in ("/engine/notify", "/engine/notify.proof"), 0.5)
        return reply is not None and reply == ("/engine/notify", [1])

    def say_more(self, client):
        client.send(osc_wire.message("/engine/notify", "i", 1))

    def change(self, changer, index):
        changer.send(osc_wire.message("/engine/voice/1/freq", "f", BASE_FREQ + FREQ_STEP * index))

    def change_of(self, address, args):
        """The index of the change a received message reports, or None."""
        if address != "/engine/voice/1/freq" or not args:
            return None
        return round((args[0] - BASE_FREQ) / FREQ_STEP)

    def table_size(self):
        code, status = self.engine.engine.status()
        return status["osc"]["clients"]["subscribers"] if code == 0 else None


class ScsynthChurn:
    def __init__(self, engine):
        self.engine = engine
        self.name = "scsynth"

    def subscribe(self, client):
        client.send(osc_wire.message("/notify", "i", 1))
        reply = client.wait_for(lambda a, args: (a == "/done" or a == "/fail") and args[:1] == ["/notify"], 0.5)
        return reply is not None and reply[0] == "/done"

    def say_more(self, client):
        client.send(osc_wire.message("/status"))

    def change(self, changer, index):
        node = FIRST_NODE + index
        changer.send(osc_wire.message("/s_new", "siiisf", "sustain_peer_tone", node, 1, 0, "amp", 0.0))
        if index > 0:
            changer.send(osc_wire.message("/n_free", "i", node - 1))

    def change_of(self, address, args):
        if address != "/n_go" or not args or not isinstance(args[0], int) or args[0] < FIRST_NODE:
            return None
        return args[0] - FIRST_NODE

    def table_size(self):
        return None  # scsynth does not say how many clients are registered


def run_window(words, args):
    engine = words.engine
    live = [Client(engine.port) for _ in range(LIVE)]
    live_taken = sum(1 for c in live if words.subscribe(c))
    for c in live:
        words.say_more(c)
    time.sleep(0.2)
    for c in live:  # the confirmations and snapshots before the window
        while select.select([c.sock], [], [], 0)[0]:
            c.sock.recv(65536)

    sent = {}           # change index -> monotonic ns
    heard = [dict() for _ in live]  # per live client: change index -> monotonic ns
    sizes = []          # (seconds into the window, table size)
    churn = {"taken": 0, "refused": 0, "last_taken": None}
    silent = []
    stop = threading.Event()

    def listen():
        socks = {c.sock: i for i, c in enumerate(live)}
        while not stop.is_set():
            ready = select.select(list(socks), [], [], 0.05)[0]
            now = time.monotonic_ns()
            for sock in ready:
                parsed = parse_message(sock.recv(65536))
                index = words.change_of(*parsed) if parsed else None
                if index is not None:
                    heard[socks[sock]].setdefault(index, now)

    def sample():
        start = time.monotonic()
        while not stop.is_set():
            size = words.table_size()
            if size is not None:
                sizes.append((round(time.monotonic() - start, 2), size))
            stop.wait(0.5)

    threads = [threading.Thread(target=listen), threading.Thread(target=sample)]
    for t in threads:
        t.start()
    changer = Client(engine.port)
    start = time.monotonic()
    next_change, next_churner, index, churners = start, start, 0, 0
    churn_gap = args.seconds / max(1, args.churners)
    while time.monotonic() - start < args.seconds:
        now = time.monotonic()
        if now >= next_change:
            sent[index] = time.monotonic_ns()
            words.change(changer, index)
            index += 1
            next_change += args.interval
        if now >= next_churner and churners < args.churners:
            client = Client(engine.port)
            taken = words.subscribe(client)
            churn["taken" if taken else "refused"] += 1
            churn["last_taken"] = taken
            if churners % 2 == 0:
                client.close()          # the port is gone
            else:
                silent.append(client)   # open, never read
            churners += 1
            next_churner += churn_gap
        time.sleep(max(0.0, min(next_change, next_churner) - time.monotonic()))
    time.sleep(0.3)  # the last changes' feedback
    stop.set()
    for t in threads:
        t.join()
    for c in live + silent + [changer]:
        c.close()

    latencies = [(at - sent[i]) / 1e6 for h in heard for i, at in h.items() if i in sent]
    heard_share = [len([i for i in h if i in sent]) / len(sent) for h in heard] if sent else []
    return {
        "live_taken": live_taken,
        "changes": len(sent),
        "heard_share_min": min(heard_share) if heard_share else None,
        "heard_share_mean": statistics.mean(heard_share) if heard_share else None,
        "latency_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                       "max": max(latencies) if latencies else None, "count": len(latencies)},
        "churners": churners,
        "churners_taken_share": churn["taken"] / churners if churners else None,
        "last_churner_taken": churn["last_taken"],
        "table_size_max": max((s for _, s in sizes), default=None),
        "table_size_over_time": sizes,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build")
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--churners", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between changes")
    args = parser.parse_args()

    paths = Paths([None, args.build])
    results = {"sustain": [], "scsynth": []}
    with JackServer() as jack:
        for r in range(args.rounds):
            for name in (["sustain", "scsynth"] if r % 2 == 0 else ["scsynth", "sustain"]):
                engine = Sustain(jack, paths) if name == "sustain" else Scsynth(jack, max_logins=64)
                engine.start()
                try:
                    words = SustainChurn(engine) if name == "sustain" else ScsynthChurn(engine)
                    window = run_window(words, args)
                finally:
                    engine.stop()
                results[name].append(window)
                print(f"round {r + 1} {name:8s} live clients heard {100 * (window['heard_share_min'] or 0):.1f} % "
                      f"of {window['changes']} changes (the worst of {LIVE}), feedback latency p50 "
                      f"{window['latency_ms']['p50'] or float('nan'):.2f} ms p99 {window['latency_ms']['p99'] or float('nan'):.2f} ms; "
                      f"churners taken {100 * (window['churners_taken_share'] or 0):.1f} % of {window['churners']} "
                      f"(the last: {'yes' if window['last_churner_taken'] else 'no'}); table max "
                      f"{window['table_size_max'] if window['table_size_max'] is not None else '-'}", flush=True)

    def median(name, *keys):
        return median_of(results[name], *keys)

    summary = {name: {"heard_share_min": median(name, "heard_share_min"),
                      "latency_p50_ms": median(name, "latency_ms", "p50"),
                      "latency_p99_ms": median(name, "latency_ms", "p99"),
                      "churners_taken_share": median(name, "churners_taken_share"),
                      "last_churner_taken": f"{sum(1 for w in results[name] if w['last_churner_taken'])}/{len(results[name])}",
                      "table_size_max": max((w["table_size_max"] for w in results[name]
                                             if w["table_size_max"] is not None), default=None)}
               for name in results}
    print(f"\n{'median over ' + str(args.rounds) + ' rounds':36s} {'sustain':>10s} {'scsynth':>10s}")
    for key in ("heard_share_min", "latency_p50_ms", "latency_p99_ms", "churners_taken_share", "last_churner_taken",
                "table_size_max"):
        def shown(v):
            if v is None:
                return "-"
            return f"{v:.3f}" if isinstance(v, float) else str(v)
        print(f"{key:36s} {shown(summary['sustain'][key]):>10s} {shown(summary['scsynth'][key]):>10s}")
    report = {"benchmark": "churn", "parameters": vars(args), "live_clients": LIVE,
              "machine": machine(),
              "summary": summary, "windows": results}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
