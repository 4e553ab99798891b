"""OSC in, sound out, judged by what the driver played (system:monitor_1):

- the engine starts silent (master gain 0), a gain message brings in a 440 Hz tone at the
  amplitude sent, a frequency message moves it to 660 Hz, without a gap, a click or one
  damaged sample;
- bad messages (wrong type, NaN, out of range, unknown address) change nothing;
- SIGTERM fades out without a click, exits 0, and leaves no process and no shared memory.
"""
import math
import os
import time

from harness import Engine, JackServer, Recording, check, check_heard, main, pid_alive, wait_until


def step_is_machines(report, machine_damage):
    """Whether the largest sample step lies in a period JACK played twice (its xrun)."""
    at = report.get("max_step_s")
    return at is not None and any(e["start_s"] - 0.002 <= at <= e["end_s"] + 0.002 for e in machine_damage)


def test(paths):
    with JackServer() as jack, Engine(paths, jack) as engine:
        with Recording(paths, jack, seconds=4.0) as recording:
            time.sleep(0.3)
            engine.send("/engine/gain", ("f", 0.5))
            time.sleep(1.5)
            engine.send("/engine/freq", ("f", 660))
            time.sleep(0.5)
            engine.send("/engine/gain", ("s", "loud"))
            engine.send("/engine/freq", ("f", "nan"))
            engine.send("/engine/gain", ("f", 1.5))
            engine.send("/engine/volume", ("f", 0.1))
            engine.send("/engine/voice/7/gain", ("f", 0.1))
            engine.send("/engine/gain", ("f", 0.5), ("f", 0.5))
            recording.finish()
            report = recording.analyze("--expect", "0.05:1.4:440:0.5", "--expect", "1.6:-0.05:660:0.5")
            engine_damage, machine_damage = recording.split_damage(report)

        check(report["onset_s"] is not None and 0.1 < report["onset_s"] < 1.0, f"the tone starts when the gain "
              f"message is sent (onset {report['onset_s']} s), not before")
        for window in report["windows"]:
            check(window["ok"], f"{window['expected_freq']} Hz at amplitude {window['expected_amp']}: measured "
                  f"{window['freq_hz']:.2f} Hz, {window['amp']:.4f}")
        # A period JACK itself played twice (it reported an xrun there: the machine was late)
        # is shown, not counted against the engine; anything else is.
        if machine_damage:
            print(f"note: damage the machine explains (at JACK-reported xruns or cycle jumps of the recording): {machine_damage}", flush=True)
        check_heard(sum(e["damaged"] for e in engine_damage) == 0, f"no damaged sample (max normalised residual "
                    f"{report['max_residual']:.2e}; not at a JACK-reported xrun: {engine_damage})")
        check_heard(sum(e["gap_samples"] for e in engine_damage) == 0, "no gap")
        bound = 0.5 * 2 * math.pi * 660 / 48000 + 0.5 / 480 + 1e-3
        check(report["max_step"] <= bound or step_is_machines(report, machine_damage),
              f"no click: largest step {report['max_step']:.4f} <= {bound:.4f}")
        log = engine.log()
        for needle in ['got s "loud"', "expected a finite number", "out of range", "unknown address",
                       "no such voice", "expected 1 argument"]:
            check(needle in log, f"rejection logged: {needle}")

        # Shutdown: record across SIGTERM, the fade must be click-free and end in silence.
        with Recording(paths, jack, seconds=1.0) as recording:
            time.sleep(0.4)
            _, status = engine.status()
            workers = [w["pid"] for w in status["workers"] if w["role"] in ("active", "standby")]
            code = engine.stop()
            recording.finish()
            report = recording.analyze()
            engine_damage, machine_damage = recording.split_damage(report)
        check(code == 0, "sustaind exits 0 on SIGTERM")
        check(report["max_step"] <= bound or step_is_machines(report, machine_damage),
              f"the fade-out has no click (largest step {report['max_step']:.4f})")
        check_heard(not engine_damage, f"the fade-out is clean (not at a JACK-reported xrun: {engine_damage}; "
                    f"at them: {machine_damage or 'nothing'})")
        check(len(workers) == 2 and all(workers), f"two workers ran, an active and a standby (status: {workers})")
        wait_until(lambda: not any(pid_alive(p) for p in workers), 3, "the worker to be gone")
        check(engine.shm_objects() == [], "no shared memory left behind")


if __name__ == "__main__":
    main(test)
