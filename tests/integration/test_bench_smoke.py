"""Every benchmark runs, in a seconds-long smoke mode, against this build, and writes its
JSON: the figures are not judged here (tests check behaviour, benchmarks speed), but a
benchmark that no longer runs fails the suite instead of rotting until someone needs it.
The chaos explorer's smoke run is the `chaos` test; tools/bench (shell) runs here with
--quick against the same build.
"""
import json
import os
import subprocess
import sys
import tempfile

from harness import check, main

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "benchmark")

# (script, smoke arguments)
SMOKE = [
    ("failover_bench.py", ["--faults", "1", "--batch", "1", "--layouts", "relay"]),
    ("failover_bench.py", ["--faults", "1", "--batch", "1", "--target", "output"]),
    ("status_bench.py", ["--runs", "1", "--seconds", "1", "--calls", "5"]),
    ("timing_bench.py", ["--runs", "1", "--bundles", "10", "--seconds", "1"]),
    ("soak.py", ["--minutes", "0.15", "--fault-every", "3", "--baseline-minutes", "0.05"]),
    ("peer_bench.py", ["--rounds", "1", "--idle-seconds", "1", "--round-trips", "10", "--messages", "5000"]),
    ("churn_bench.py", ["--rounds", "1", "--seconds", "2", "--churners", "40"]),
    ("load_bench.py", ["--minutes", "0.05", "--window-seconds", "3", "--faults", "2"]),
    ("restart_gap.py", ["--quick"]),
]


TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")


def test(paths):
    with tempfile.TemporaryDirectory(prefix="sustain-bench-smoke-") as work:
        out = os.path.join(work, "core-signal-path.json")
        env = dict(os.environ, SUSTAIN_BUILD=paths.build)
        result = subprocess.run([os.path.join(TOOLS, "bench"), "--quick", "--rates", "25000", "--out", out], env=env,
                                capture_output=True, text=True, timeout=240)
        if result.returncode != 0:
            print(result.stdout[-3000:], result.stderr[-3000:], flush=True)
        check(result.returncode == 0 and os.path.exists(out), f"tools/bench --quick ran ({result.returncode}) and wrote its figures")
        for script, args in SMOKE:
            out = os.path.join(work, script.replace(".py", "") + "-".join([""] + args[-1:]) + ".json")
            result = subprocess.run([sys.executable, os.path.join(BENCH, script), paths.build, "--out", out] + args,
                                    capture_output=True, text=True, timeout=240)
            if result.returncode != 0:
                print(result.stdout[-3000:], result.stderr[-3000:], flush=True)
            check(result.returncode == 0 and os.path.exists(out), f"{script} ran ({result.returncode}) and wrote its figures")
            with open(out) as f:
                check(isinstance(json.load(f), dict), f"{script}: its figures are JSON")
        pipewire_stale_smoke(work)


def pipewire_stale_smoke(work):
    """The stale-buffer measurement on JACK2 and PipeWire's JACK (servers and clients of its
    own): one kill on each. It installs PipeWire's packages and runs daemons as root."""
    if os.geteuid() != 0:
        print("note: pipewire_stale.py needs root (it installs packages, runs its servers real-time): not run",
              flush=True)
        return
    out = os.path.join(work, "pipewire-stale.json")
    process = subprocess.Popen([sys.executable, os.path.join(BENCH, "pipewire_stale.py"), "--runs", "1",
                                "--steady", "0.5", "--after", "0.5", "--json", out],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        process.terminate()  # it stops its servers and clients on SIGTERM
        stdout, stderr = process.communicate(timeout=30)
    if process.returncode != 0:
        print(stdout[-3000:], stderr[-3000:], flush=True)
    check(process.returncode == 0 and os.path.exists(out), f"pipewire_stale.py ran ({process.returncode})")
    with open(out) as f:
        report = json.load(f)
    backends = report["backends"]
    check(all(backends.get(b, {}).get("summary", {}).get("runs_ok", 0) >= 1 for b in ("pipewire", "jack2")),
          f"pipewire_stale.py measured a kill on both servers: {[(b, e.get('error')) for b, e in backends.items()]}")
    check(report["ldconfig_unchanged"], "the system's libjack is still JACK2's")


if __name__ == "__main__":
    main(test)
