"""Running out of something, with real processes; each case gets a clear message, a
defined state, and recovery where recovery is possible:

- the JACK server dies under a running engine (SIGKILL: nobody is told): every process
  notices its stream stopped, sustaind says the device is gone, status says "down" with
  the reason, nothing is counted as a crash and nothing backs off; when a server of the
  same name comes back the engine plays again within seconds, with what clients had set;
- /dev/shm is full (a private 64 KiB tmpfs in a mount namespace of its own): sustaind
  refuses to start, says /dev/shm is full, exits 71, EX_OSERR (no SIGBUS later, on a missing page);
- too few file descriptors (RLIMIT_NOFILE from 4 up, on a real JACK server): no process
  crashes (libjack does, inside jack_client_open, when it runs out: so sustaind raises
  its soft limit and refuses to start below 64, with the fix); it either starts and stops
  cleanly or exits saying why (71, EX_OSERR, or 69 when the device could not be opened for
  lack of descriptors), and leaves no shared memory behind.
- sustaind's own file descriptors (libjack's server connection, the instance lock) are
  not inherited by the processes it starts: a replacement holds none of them;
- a CPU the machine leaves unrun holds up one slot only: the audio thread of slot s's
  worker and output stage (a replacement's too) may run on the s-th CPU sustaind may use
  only, and their control threads anywhere (docs/decisions.md).
The missing audio device at start is covered by test_lifecycle.
"""
import json
import os
import shutil
import signal
import subprocess
import time

from harness import Engine, JackServer, Recording, check, children_of, main, wait_until


def status_json(paths, instance):
    result = subprocess.run([paths.status, "--instance", instance, "--json", "--once"],
                            capture_output=True, text=True, timeout=10)
    return result.returncode, json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}


def jack_dies_and_comes_back(paths):
    with JackServer() as jack, Engine(paths, jack) as engine:
        engine.send("/engine/gain", ("f", 0.5))
        engine.send("/engine/freq", ("f", 550))
        time.sleep(0.5)
        jack.crash()
        wait_until(lambda: "the audio device is gone" in engine.log(), 5, "sustaind to notice the device is gone")
        time.sleep(2.5)  # a few retries while there is no server
        code, report = status_json(paths, engine.instance)
        check(code == 2, f"while the device is gone, sustain-status exits 2 (down), got {code}")
        supervisor = report.get("supervisor", {})
        check(supervisor.get("waiting_for_device") is True and supervisor.get("device_losses") == 1,
              f"status shows it is waiting for the device ({supervisor.get('waiting_for_device')}, "
              f"losses {supervisor.get('device_losses')})")
        check(supervisor.get("crash_count") == 0, f"losing the device is not a crash (crashes: {supervisor.get('crash_count')})")
        check(not supervisor.get("backing_off"), "... and nothing backs off")
        check(engine.process.poll() is None, "sustaind keeps running without a device")
        lost_at = time.monotonic()
        jack.restart()
        wait_until(lambda: "the audio device is back" in engine.log(), 10, "the engine to play again")
        back_s = time.monotonic() - lost_at
        print(f"the engine played again {back_s:.2f} s after the server came back", flush=True)
        check(back_s < 5, f"the engine plays again within 5 s of the server's return ({back_s:.2f} s)")
        wait_until(lambda: status_json(paths, engine.instance)[0] == 0, 10, "the engine to be healthy again")
        with Recording(paths, jack, seconds=1.0) as recording:
            recording.finish()
            report = recording.analyze("--expect", "0.05:-0.05:550:0.5")
        window = report["windows"][0]
        check(abs(window["freq_hz"] - 550.0) < 0.5 and abs(window["amp"] - 0.5) < 0.05,
              f"after the return it plays what clients had set (550 Hz at 0.5: {window['freq_hz']:.2f} Hz at "
              f"{window['amp']:.3f})")
        # The level within 0.01 where no period was damaged; periods JACK played stale at its
        # own reported xruns move the measured level a little, which is shown, not judged.
        engine_damage, machine_damage = recording.split_damage(report)
        if machine_damage and not engine_damage:
            print(f"note: level {window['amp']:.4f} measured with {len(machine_damage)} damaged period(s) at "
                  f"JACK-reported xruns", flush=True)
        else:
            check(window["ok"], f"... exactly (level {window['amp']:.4f})")
        check(engine.stop() == 0, "sustaind stops cleanly")


def shm_full(paths):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("skip /dev/shm full: needs root for a private tmpfs on /dev/shm", flush=True)
        return
    script = ("mount -t tmpfs -o size=64k,mode=1777 tmpfs /dev/shm && exec \"$0\" --instance shmfull --port 0 "
              "--device system")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, paths.sustaind], capture_output=True, text=True,
                            timeout=30, env=dict(os.environ, JACK_DEFAULT_SERVER=f"sustain-absent-{os.getpid()}"))
    check(result.returncode == 71, f"with /dev/shm full sustaind exits 71 (got {result.returncode})")
    check("/dev/shm is full" in result.stderr and "No space left on device" in result.stderr,
          "... and says /dev/shm is full")


def few_file_descriptors(paths):
    """sustaind under RLIMIT_NOFILE from 4 up, on a real JACK server (the workers inherit
    the limit, so the higher limits reach PortAudio and libjack): each run either starts
    and stops cleanly, or exits 71 or 69 with a message; never a signal, never a leftover."""
    outcomes = []
    with JackServer() as jack:
        # soft:hard; a low soft limit under a high hard one is raised by sustaind itself.
        for limit in [f"{n}:{n}" for n in range(4, 40, 3)] + ["64:64", "16:1024"]:
            instance = f"nofile-{os.getpid()}-{limit.replace(':', '-')}"
            process = subprocess.Popen(["prlimit", f"--nofile={limit}", paths.sustaind, "--instance", instance,
                                        "--port", "0", "--device", "system"], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, env=jack.env())
            try:
                output, _ = process.communicate(timeout=4)
            except subprocess.TimeoutExpired:  # it started: stop it as a user would
                process.terminate()
                output, _ = process.communicate(timeout=10)
                check(process.returncode == 0 and "sustain ready" in output,
                      f"RLIMIT_NOFILE {limit}: started, then stopped cleanly (exit {process.returncode})")
                outcomes.append((limit, "started"))
            else:
                errors = [line for line in output.splitlines() if " error " in line]
                check(process.returncode in (69, 71), f"RLIMIT_NOFILE {limit}: sustaind exits 71 or 69, never a crash "
                      f"(got {process.returncode}):\n{output[-1500:]}")
                check("killed by signal" not in output, f"RLIMIT_NOFILE {limit}: no process of the engine crashed")
                check(errors and ("too few file descriptors" in output or "Too many open files" in output),
                      f"RLIMIT_NOFILE {limit}: says what it could not do ({errors[-1] if errors else output[-300:]})")
                outcomes.append((limit, process.returncode))
            check(not [n for n in os.listdir("/dev/shm") if n.startswith(f"sustain-{instance}")],
                  f"RLIMIT_NOFILE {limit}: no shared memory left behind")
    print(f"file descriptor limits and outcomes: {outcomes}", flush=True)
    check(outcomes[-2][1] == "started", "with 64 descriptors the engine starts")
    check(outcomes[-1][1] == "started", "with a soft limit of 16 under a hard one of 1024 it raises its own and starts")


def open_files(pid):
    """What each open fd of `pid` points to ("socket:[123]", a path, ...)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return found


def nothing_inherited(paths):
    with JackServer() as jack, Engine(paths, jack, ["--gain", "0.5"]) as engine:
        ready = lambda: engine.status()[1]["supervisor"].get("spare_ready")  # noqa: E731
        wait_until(ready, 10, "the spare to be warm")
        # sustaind opens its JACK client for graph changes once the workers run: a process
        # started after that (a replacement) is the one that could inherit it.
        standby = [w["pid"] for w in engine.status()[1]["workers"] if w["role"] == "standby"][0]
        os.kill(standby, signal.SIGKILL)
        time.sleep(0.3)
        wait_until(ready, 5, "the replacement to be warm")
        ours = {f for f in open_files(engine.process.pid) if f.startswith("socket:") or ".lock" in f}
        check(any(f.startswith("socket:") for f in ours), "sustaind holds sockets (its JACK client among them)")
        for child in children_of(engine.process.pid):
            shared = ours & open_files(child)
            check(not shared, f"process {child} holds none of sustaind's sockets or its lock: {sorted(shared)}")
        audio_threads_on_their_slots_cpu(engine)


def allowed_cpus(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        line = next(line for line in f if line.startswith("Cpus_allowed_list:"))
    cpus = set()
    for part in line.split(":")[1].strip().split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def audio_threads_on_their_slots_cpu(engine):
    cpus = sorted(os.sched_getaffinity(engine.process.pid))
    if len(cpus) < 2:
        print(f"ok: one CPU only ({cpus}): nothing to confine")
        return
    for process in engine.status()[1]["workers"]:
        pid, slot = process["pid"], process["slot"]
        audio, control = [], []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            priority, policy = int(fields[37]), int(fields[38])
            if policy == 1 and priority >= 5:  # SCHED_FIFO at JACK's client priority or above: the audio thread
                audio.append(tid)
            elif policy == 1:
                control.append(tid)
        check(len(audio) == 1, f"{process['kind']} {slot} (pid {pid}) has one audio thread: {audio}")
        check(allowed_cpus(pid, audio[0]) == {cpus[slot % len(cpus)]},
              f"{process['kind']} {slot}'s audio thread runs on CPU {cpus[slot % len(cpus)]} only: "
              f"{sorted(allowed_cpus(pid, audio[0]))}")
        for tid in control:
            check(allowed_cpus(pid, tid) == set(cpus), f"{process['kind']} {slot}'s control thread runs on any CPU")


def test(paths):
    nothing_inherited(paths)
    few_file_descriptors(paths)
    shm_full(paths)
    jack_dies_and_comes_back(paths)


if __name__ == "__main__":
    main(test)
