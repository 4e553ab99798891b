"""Render hosts on three machines, rehearsed on this one (tools/hosts/rehearse.py, short):
an audio host and two render hosts in network namespaces, one fault of each kind on the
render host that plays (SIGKILL of all its processes, SIGSTOP, its link down, its cgroup
frozen). Judged from outside, at the audio host's system:monitor_1 and through the status
JSON: in every cycle the output stage played a block in step from one host or the other
(its trace beside the recording), exactly one failover per fault, the host a warm standby
again after it, a change sent during the fault heard, a timed bundle across the fault on
its sample; and with the real-time guard preloaded, not one allocation, lock or system call
in any of the hosts' audio callbacks.

Damage the driver played although the stage played the tone (a cycle JACK did not run the
stage in, a late wake of the dummy driver) is printed, not failed: it is the machine's. So is
a cycle without a block in step within D cycles after the audio host's own JACK server
stalled (its cycle numbering jumped: the requests of the cycles it did not run were never
sent, the blocks in flight arrive that many cycles late); it is printed with the stall.
A fault recorded while the audio host's JACK server stalled more than MAX_JUDGED_STALLS_PER_S
times a second is shown, not judged sample by sample, and another of its kind is run (two
more at most). Skipped (exit 77) where network namespaces cannot be made, with the reason.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import check, guarded_reports, main  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "hosts"))
from rehearse import MAX_JUDGED_STALLS_PER_S, ONSET_TOLERANCE_SAMPLES  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def namespaces_unavailable():
    if os.geteuid() != 0:
        return "not root: network namespaces and cgroups need root"
    probe = f"sus-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def test(paths):
    reason = namespaces_unavailable()
    if reason:
        print(f"SKIP: {reason}", flush=True)
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="sustain-hosts-test-")
    out = os.path.join(work, "rehearsal.json")
    guard = os.path.join(work, "rtguard")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "hosts", "rehearse.py"), paths.build,
                          "--faults", "1", "--retry-noisy", "2", "--hold", "0.25",
                          "--rt-guard", guard, "--out", out], capture_output=True, text=True, timeout=600)
    print(run.stdout, run.stderr, flush=True)
    check(os.path.exists(out), "the rehearsal wrote its figures")
    with open(out) as f:
        summary = json.load(f)
    faults = summary["faults"]
    check(sorted(set(f["kind"] for f in faults)) == ["freeze", "kill", "link", "stop"], "faults of each kind ran")
    for kind in ("kill", "stop", "link", "freeze"):
        if not any(f["judged"] for f in faults if f["kind"] == kind):
            print(f"note: no {kind} judged sample by sample: in each of its faults the audio host's JACK server "
                  f"stalled more than {MAX_JUDGED_STALLS_PER_S} times a second (the machine's)", flush=True)
    for f in faults:
        name = f"{f['kind']} of {f['host']}"
        check(f["failovers"] == 1, f"{name}: exactly one failover ({f['failovers']})")
        check(f["warm_again_ms"] < 10000, f"{name}: the host is a warm standby again ({f['warm_again_ms']} ms)")
        if not f["judged"]:
            print(f"note: {name} shown, not judged: {f['stalls_per_s']} stalls/s of the audio host's JACK server; "
                  f"the stage's damage {f['engine_damaged_samples']} samples, change heard {f['change_heard']}, "
                  f"onset {f['onset_error_samples']}", flush=True)
            continue
        check(f["change_heard"], f"{name}: the change sent during the fault is heard")
        check(f["engine_damaged_samples"] == 0,
              f"{name}: the stage played a block in step in every cycle ({f['damaged_samples']} damaged samples "
              f"heard, {f['engine_damaged_samples']} in cycles it did not, "
              f"{f['damaged_samples_after_audio_host_stall']} more right after {f['audio_host_stalls']} stalls of the "
              f"audio host's JACK server)")
        if not f["onset_judged"]:
            print(f"note: {name}: the audio host's JACK clock was disturbed between the timed bundle's arrival and "
                  f"its onset (a stall, or its timer ahead of the callbacks; it is the ruler and the frame clock's "
                  f"anchor): onset shown, {f['onset_error_samples']} samples off", flush=True)
            check(f["onset_error_samples"] is not None, f"{name}: the timed bundle's onset was found")
            continue
        check(f["onset_error_samples"] is not None and abs(f["onset_error_samples"]) <= f["onset_tolerance_samples"],
              f"{name}: the timed bundle across the fault lands on its sample ({f['onset_error_samples']}, within "
              f"{f['onset_tolerance_samples']}: {ONSET_TOLERANCE_SAMPLES} and JACK's timer's median lead over the "
              f"callbacks in this recording)")
    reports = guarded_reports(guard)
    check(len(reports) >= 3, f"{len(reports)} processes ran guarded audio callbacks (the audio host's stage, "
                             "the render hosts)")
    for report in reports:
        bad = {name: n for name, n in report["violations"].items() if n}
        check(report["total"] == 0, f"{os.path.basename(report['exe'])} (pid {report['pid']}): "
                                    f"{report['guarded_calls']} guarded callbacks, no forbidden call {bad or ''}")


if __name__ == "__main__":
    main(test)
