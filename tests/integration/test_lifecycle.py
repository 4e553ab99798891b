"""The engine's life cycle with real processes:

- a second sustaind with the same --instance refuses to start, with a clear message, and
  the first one keeps playing;
- an invalid --instance is refused before it becomes a path;
- without a standby (--no-standby), a worker that dies (SIGKILL) is restarted, and it comes
  back with the state the clients set (the state table), not the defaults;
- a worker that hangs (SIGSTOP) is detected, killed (fenced) and replaced;
- sustaind killed with SIGKILL takes its worker with it (PR_SET_PDEATHSIG), and the stale
  segment it leaves is reclaimed by the next run;
- no audio device: a clear error and exit status 69 (EX_UNAVAILABLE), no shared memory left;
- exit statuses a service manager can act on (supervisor/exit_status.h): a second instance
  75 (busy), a bad instance name or an unknown flag 64 (usage), a mapping file that does not
  load 78 (configuration).
"""
import os
import signal
import subprocess
import time

from harness import Engine, JackServer, Recording, TestFailure, check, main, pid_alive, wait_until


def test(paths):
    with JackServer() as jack:
        with Engine(paths, jack, ["--no-standby"]) as engine:
            second = subprocess.run([paths.sustaind, "--instance", engine.instance, "--port", "0"],
                                    env=jack.env(), capture_output=True, text=True, timeout=10)
            check(second.returncode == 75, f"a second sustaind of the same instance exits 75, busy (got {second.returncode})")
            check("already running" in second.stderr and str(engine.process.pid) in second.stderr,
                  "... and says the instance is already running, with its pid")
            check(engine.process.poll() is None, "the first sustaind keeps running")

            bad = subprocess.run([paths.sustaind, "--instance", "../etc/passwd"], env=jack.env(),
                                 capture_output=True, text=True, timeout=10)
            check(bad.returncode == 64 and "instance name" in bad.stderr, "an instance name with '/' is refused: 64")
            flag = subprocess.run([paths.sustaind, "--no-such-flag"], capture_output=True, text=True, timeout=10)
            check(flag.returncode == 64 and "no-such-flag" in flag.stderr,
                  f"an unknown flag exits 64, not CLI11's own code (got {flag.returncode})")
            config = subprocess.run([paths.sustaind, "--instance", f"badcfg-{os.getpid()}", "--port", "0",
                                     "--config", "/nonexistent/sustain.toml"], env=jack.env(), capture_output=True,
                                    text=True, timeout=10)
            check(config.returncode == 78, f"a mapping file that does not load exits 78 (got {config.returncode})")

            # A crash: the worker is replaced and resumes from the state table.
            engine.send("/engine/gain", ("f", 0.5))
            engine.send("/engine/freq", ("f", 550))
            time.sleep(0.3)
            first = engine.worker_pids()[0]
            os.kill(first, signal.SIGKILL)
            wait_until(lambda: len(engine.worker_pids()) == 2, 5, "a replacement worker")
            check("killed by signal 9" in engine.log() and "cold start" in engine.log(),
                  "the crash is logged with its cause, and the cold start from the state table")
            time.sleep(0.5)
            with Recording(paths, jack, seconds=1.0) as recording:
                recording.finish()
                report = recording.analyze("--expect", "0.0:-0.0:550:0.5")
            check(report["windows"][0]["ok"], f"the replacement plays what clients set last (550 Hz at 0.5, measured "
                  f"{report['windows'][0]['freq_hz']:.1f} Hz at {report['windows'][0]['amp']:.3f})")

            # A hang: detected by its stalled callback, killed, replaced.
            second_worker = engine.worker_pids()[1]
            os.kill(second_worker, signal.SIGSTOP)
            wait_until(lambda: len(engine.worker_pids()) == 3, 8, "the hung worker to be replaced")
            check("hung" in engine.log(), "the hang is detected and the worker fenced")
            wait_until(lambda: not pid_alive(second_worker), 3, "the hung worker to be gone")

            # sustaind dies hard: its worker must not outlive it.
            current = engine.worker_pids()[-1]
            time.sleep(0.5)
            engine.process.kill()
            engine.process.wait()
            wait_until(lambda: not pid_alive(current), 3, "the worker to die with sustaind (PR_SET_PDEATHSIG)")
            check(engine.shm_objects() != [], "a SIGKILLed sustaind leaves its segment behind")

            # The next run of the same instance reclaims it.
            again = Engine(paths, jack, instance=engine.instance)
            with again:
                check("reclaimed a stale segment" in again.log(), "the next run reclaims the stale segment")
                check(again.stop() == 0, "and stops cleanly")
            check(again.shm_objects() == [], "no shared memory left after the clean stop")

    # No JACK server and no sound card: a clear error, no leftovers.
    env = dict(os.environ)
    env["JACK_DEFAULT_SERVER"] = f"sustain-absent-{os.getpid()}"
    instance = f"nodev-{os.getpid()}"
    result = subprocess.run([paths.sustaind, "--instance", instance, "--port", "0", "--device", "system"],
                            env=env, capture_output=True, text=True, timeout=20)
    check(result.returncode == 69, f"without an audio device sustaind exits 69 (got {result.returncode})")
    check("no output device matches" in result.stderr and "cannot start the engine" in result.stderr,
          "... and says there is no usable output device")
    check(not [n for n in os.listdir("/dev/shm") if n.startswith(f"sustain-{instance}")],
          "... and leaves no shared memory")


if __name__ == "__main__":
    main(test)
