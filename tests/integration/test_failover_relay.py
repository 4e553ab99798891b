"""Failover in the relay layout, judged at the driver's own output (system:monitor_1):
the listener must hear not one damaged sample, no silence and no change of pitch while the
active worker is killed, stopped, crashes inside its callback or aborts in its control
thread, five times each; killing the standby leaves the sound untouched; an OSC flood that
spans several kills ends with the last value sent; killing both workers recovers by cold
start; killing the output stage is a short gap that the standby output stage ends; an
output stage that was only late stays, as the standby, and one that stays stopped is
replaced.
"""
import os
import signal
import subprocess
import time

from harness import (TSAN_BUILD, check_heard, active_worker_pid, Engine, JackServer, Recording, TestFailure, check,
                     eventually, main, pid_alive, playing_output_stage, wait_until)

TONE = ("--expect", "0.02:-0.02:440:0.5")


def active_worker(engine):
    """pid of the worker sustaind last made active (from its log)."""
    return active_worker_pid(engine.log())


def spare_ready_count(engine):
    return engine.log().count("spare ready")


def wait_spare(engine, before):
    wait_until(lambda: spare_ready_count(engine) > before, 5, "a replacement standby to render in step")


def faults(engine, how, times, interval):
    for _ in range(times):
        before = spare_ready_count(engine)
        pid = active_worker(engine)
        os.kill(pid, how)
        wait_spare(engine, before)
        time.sleep(interval)


def judged_run(paths, jack, engine, seconds, action, label, expect=TONE):
    with Recording(paths, jack, seconds=seconds) as recording:
        time.sleep(0.3)
        action()
        recording.finish()
        report = recording.analyze(*expect)
        engine_damage, machine_damage = recording.split_damage(report)
    # Damage right at an xrun JACK reported is the machine's (the driver played a stale
    # period because a client was late, which client changes adds to on this small VM), and
    # damage exactly where the recorder's own cycles were not consecutive JACK cycles is the
    # recording's, damage at a cycle the driver began a period late is the driver's timer's
    # (see Recording.split_damage); all are reported, not excused silently.
    # Anything else is the engine's, and must be none.
    where = {"xrun": "JACK-reported xruns", "recording": "cycle jumps of the recording",
             "late_wake": "cycles the driver began a period late"}
    for cause in ("xrun", "recording", "late_wake"):
        events = [e for e in machine_damage if e["cause"] == cause]
        if events:
            print(f"note: {label}: {len(events)} damage event(s) at {where[cause]} "
                  f"({sum(e['damaged'] + e['gap_samples'] for e in events)} samples): {events}", flush=True)
    if engine_damage:
        print(f"{label}: damage not at a JACK-reported xrun nor a cycle jump of the recording: {engine_damage}; "
              f"JACK reported {len(recording.summary.get('xrun_frames', []))} xruns, the recording has "
              f"{len(recording.summary.get('cycle_jumps', []))} cycle jumps", flush=True)
    damaged = sum(e["damaged"] for e in engine_damage)
    silent = sum(e["gap_samples"] for e in engine_damage)
    check_heard(damaged == 0, f"{label}: no damaged sample (max residual {report['max_residual']:.1e})")
    check_heard(silent == 0, f"{label}: no silence")
    for window in report["windows"]:
        # The pitch is judged everywhere; the level only where gaps are judged (a silent
        # block lowers the window's level, and TSan's stalls make some).
        check(abs(window["freq_hz"] - window["expected_freq"]) < 0.5,
              f"{label}: {window['expected_freq']} Hz throughout (measured {window['freq_hz']:.3f} Hz)")
        check_heard(window["ok"], f"{label}: {window['expected_freq']} Hz at {window['expected_amp']} throughout "
                    f"(measured {window['freq_hz']:.3f} Hz at {window['amp']:.4f})")
    return report


def late_and_stopped_output_stage(paths, jack, engine):
    """An output stage that JACK did not run for a few cycles (here: stopped for 3 cycles,
    then continued) stays, as the standby: the other stage took over, nothing is replaced or
    counted as a crash. One that stays stopped is fenced and replaced."""
    # The standby takes over after 2 cycles without the playing stage (8 in a TSan build);
    # sustaind's verdict comes 4 cycles (160) after it sees the takeover.
    pause = 0.03 if TSAN_BUILD else 0.004
    stayed = False
    for attempt in range(5):
        slot, pid = playing_output_stage(engine)
        started_before = engine.log().count("started as standby")
        stays_before = engine.log().count("runs again and stays")
        takeovers_before = engine.status()[1]["output"]["takeovers"]
        os.kill(pid, signal.SIGSTOP)
        time.sleep(pause)
        os.kill(pid, signal.SIGCONT)
        if not eventually(lambda: engine.log().count("runs again and stays") > stays_before, 1):
            print(f"note: attempt {attempt + 1}: no takeover, or the stage was taken for failed "
                  f"(a stop of {pause * 1000:.0f} ms overshot on a loaded machine); again", flush=True)
            time.sleep(0.5)
            continue
        check(pid_alive(pid), f"the late output stage {slot} (pid {pid}) still runs")
        # The other stage plays now, unless it was late in turn and this one took the cycles
        # back (a second takeover, counted).
        playing = playing_output_stage(engine)[1]
        takeovers = engine.status()[1]["output"]["takeovers"] - takeovers_before
        check(playing != pid or takeovers >= 2,
              f"the other output stage plays now ({takeovers} takeovers since the stop)")
        check(engine.log().count("started as standby") == started_before, "nothing was replaced for it")
        stayed = True
        break
    check(stayed, "a late output stage stays, as the standby")
    time.sleep(0.3)
    judged_run(paths, jack, engine, 1.0, lambda: None, "after a late output stage, the sound",
               expect=("--expect", "0.02:-0.02:523:0.5"))

    fail_output_stage(paths, jack, engine, signal.SIGSTOP, "after a stopped output stage was replaced, the sound")


def fail_output_stage(paths, jack, engine, how, label):
    """Sends `how` to the playing output stage: its standby takes over; sustaind handles the
    failed one (a short gap is allowed), then the sound must be clean."""
    slot, pid = playing_output_stage(engine)
    handled = f"output stage {slot} (pid {pid})"
    before = engine.log().count(handled)
    os.kill(pid, how)
    wait_until(lambda: engine.log().count(handled) > before, 5,
               f"the output stage's {signal.Signals(how).name} to be handled")
    wait_until(lambda: not pid_alive(pid), 5, "the failed output stage to be gone")
    time.sleep(0.3)
    judged_run(paths, jack, engine, 1.0, lambda: None, label, expect=("--expect", "0.02:-0.02:523:0.5"))


def test(paths):
    injector = {"LD_PRELOAD": paths.fault_injector}
    with JackServer() as jack, Engine(paths, jack, ["--restart-limit", "1000", "--gain", "0.5"],
                                      env_extra=injector) as engine:
        wait_spare(engine, 0)
        judged_run(paths, jack, engine, 4.0, lambda: faults(engine, signal.SIGKILL, 5, 0.4), "5 x SIGKILL of the active")
        judged_run(paths, jack, engine, 4.0, lambda: faults(engine, signal.SIGSTOP, 5, 0.4), "5 x SIGSTOP (hang)")
        judged_run(paths, jack, engine, 4.0, lambda: faults(engine, signal.SIGUSR1, 5, 0.4),
                   "5 x SIGSEGV inside the callback")
        judged_run(paths, jack, engine, 4.0, lambda: faults(engine, signal.SIGUSR2, 5, 0.4),
                   "5 x abort() in the control thread")
        judged_run(paths, jack, engine, 3.0, lambda: faults(engine, signal.SIGWINCH, 3, 0.4),
                   "3 x endless loop inside the callback")
        judged_run(paths, jack, engine, 3.0, lambda: faults(engine, signal.SIGURG, 3, 0.4),
                   "3 x deadlock in the control thread")
        log = engine.log()
        check(log.count("hung") >= 8, "hangs are detected by missed cycles and the hung workers fenced")
        check("SIGSEGV" in log and "SIGABRT" in log, "crashes are logged with their signal")

        def kill_standby():
            for _ in range(3):
                before = spare_ready_count(engine)
                active = active_worker(engine)
                standby = [p for p in engine.worker_pids() if p != active][-1]
                os.kill(standby, signal.SIGKILL)
                wait_spare(engine, before)
                time.sleep(0.3)
        judged_run(paths, jack, engine, 2.5, kill_standby, "3 x SIGKILL of the standby")
        # While the spare was missing the active rendered a block ahead (a period more of
        # latency); with the spare in step again it held that block back.
        check(eventually(lambda: engine.status()[1]["output"]["extra_latency_periods"] == 0, 3),
              "the period of latency added while the spare was missing is given back")

        # An OSC flood of alternating values across 3 kills ends with the last value sent.
        def flood_across_kills():
            flood = subprocess.Popen([paths.osc_flood, "--port", str(engine.port), "--rate", "5000", "--seconds", "2",
                                      "--address", "/engine/freq", "--values", "500,501", "--final", "523"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(0.3)
            faults(engine, signal.SIGKILL, 3, 0.3)
            out, err = flood.communicate(timeout=20)
            if flood.returncode != 0:
                raise TestFailure(f"flood failed: {err}")
        with Recording(paths, jack, seconds=1.0) as recording:
            pass  # keep the harness symmetric: nothing recorded during the flood itself
        flood_across_kills()
        time.sleep(0.2)
        judged_run(paths, jack, engine, 1.0, lambda: None, "after a flood across 3 kills, the last value (523 Hz)",
                   expect=("--expect", "0.02:-0.02:523:0.5"))

        # Both workers at once: a cold start from the state table (a gap), then the same tone.
        pids = engine.worker_pids()[-2:]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # fenced a moment ago (a TSan stall looks like a hang): dead already
        wait_until(lambda: "cold start" in engine.log(), 5, "a cold start")
        wait_spare(engine, spare_ready_count(engine) - 1)
        time.sleep(0.5)
        judged_run(paths, jack, engine, 1.0, lambda: None, "after both workers died, the cold start plays 523 Hz",
                   expect=("--expect", "0.02:-0.02:523:0.5"))

        # The output stage: its standby takes over; a short gap is allowed, then clean sound.
        # Which one plays now, as the status says (a slow build may already have replaced the
        # one that started as active).
        fail_output_stage(paths, jack, engine, signal.SIGKILL,
                          "after the output stage died, the standby output stage plays")
        late_and_stopped_output_stage(paths, jack, engine)
        check(engine.stop() == 0, "sustaind stops cleanly")
        check(engine.shm_objects() == [], "no shared memory left")


if __name__ == "__main__":
    main(test)
