#!/usr/bin/env python3
"""The Debian package as a user gets it: tools/package builds it from a clean copy of the
tree with the distribution's tools, it is installed on this machine with apt, and then:

- the layout: sustaind, sustain-status and sustain-osc-query in /usr/bin; the helpers in
  /usr/libexec/sustain only; no test tool installed; `--version` on every binary;
- `man -w` finds the man pages; `systemd-analyze verify` accepts the installed unit;
- the installed sustaind, on a private JACK dummy server, plays the tone (recorded at the
  driver's output and judged sample by sample);
- `apt purge` leaves none of the package's files behind.

It refuses to run where a sustain package is already installed (it would remove it).
Needs root (or sudo without a password) for apt.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Engine, JackServer, Paths, Recording, check, check_heard, main  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = "/usr/bin"
HELPERS = "/usr/libexec/sustain"


def sudo():
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


def installed():
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "sustain"], capture_output=True, text=True)
    return "install ok installed" in out.stdout


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=kwargs.pop("timeout", 60), **kwargs)


def layout(files):
    for name in ("sustaind", "sustain-status", "sustain-osc-query"):
        check(os.path.join(BIN, name) in files and os.access(os.path.join(BIN, name), os.X_OK),
              f"{BIN}/{name} is installed")
        out = run([os.path.join(BIN, name), "--version"])
        check(out.returncode == 0 and out.stdout.strip() == f"{name} {project_version()}",
              f"{name} --version says its version ({out.stdout.strip()!r})")
    for name in ("sustain-worker", "sustain-output", "sustain-host-output"):
        check(os.path.join(HELPERS, name) in files, f"{name} is installed in {HELPERS}")
        check(os.path.join(BIN, name) not in files, f"{name} is not in {BIN} (sustaind starts it)")
    for tool in ("sustain-record", "sustain-analyze", "sustain-osc-flood", "sustain-bench-metrics", "sustain-wake-floor"):
        check(not any(os.path.basename(f) == tool for f in files), f"the test tool {tool} is not installed")
    # dh_compress compresses the larger documents (README.md.gz), as Debian does.
    for doc in ("/usr/share/doc/sustain/README.md", "/usr/share/doc/sustain/examples/touchosc.toml",
                "/usr/share/doc/sustain/examples/supercollider/sustain.scd"):
        check(doc in files or doc + ".gz" in files, f"{doc} is installed")


def project_version():
    with open(os.path.join(ROOT, "meson.build")) as f:
        for line in f:
            if line.strip().startswith("version :"):
                return line.split("'")[1]
    raise RuntimeError("no version in meson.build")


def manuals_and_unit(files):
    for page in ("sustaind", "sustain-status", "sustain-osc-query"):
        out = run(["man", "-w", page])
        check(out.returncode == 0 and out.stdout.strip().startswith("/usr/share/man/man1/"),
              f"man -w {page} finds its page ({out.stdout.strip() or out.stderr.strip()})")
    out = run(["man", "-P", "cat", "sustaind"], env=dict(os.environ, MANWIDTH="100"))
    for section in ("OPTIONS", "OSC ADDRESSES", "EXIT STATUS", "FILES", "EXAMPLES", "--bind"):
        check(section in out.stdout, f"the sustaind man page has {section}")
    units = [f for f in files if f.endswith("/systemd/system/sustaind.service")]
    check(len(units) == 1, f"one systemd unit is installed ({units})")
    with open(units[0]) as f:
        check(f"ExecStart={BIN}/sustaind " in f.read(), "the unit starts the installed sustaind")
    if shutil.which("systemd-analyze"):
        out = run(["systemd-analyze", "verify", units[0]])
        # verify also judges the units the unit names (sound.target, avahi-daemon.service...)
        # as this machine has them; only what it says of sustaind.service counts.
        ours = [line for line in (out.stdout + out.stderr).splitlines() if "sustaind.service" in line]
        check(out.returncode == 0 and not ours, f"systemd-analyze verify accepts the unit ({ours or out.returncode})")
    else:
        print("SKIPPED systemd-analyze verify: systemd-analyze is not installed", flush=True)


def plays(paths):
    installed_paths = Paths([sys.argv[0], paths.build])
    installed_paths.sustaind = os.path.join(BIN, "sustaind")
    installed_paths.status = os.path.join(BIN, "sustain-status")
    with JackServer() as jack, Engine(installed_paths, jack, trace=False) as engine:
        with Recording(paths, jack, seconds=2.5) as recording:
            time.sleep(0.3)
            engine.send("/engine/gain", ("f", 0.5))
            recording.finish()
            report = recording.analyze("--expect", "0.2:-0.1:440:0.5")
            engine_damage, _ = recording.split_damage(report)
        check(report["onset_s"] is not None, "the installed sustaind plays")
        check(all(w["ok"] for w in report["windows"]), f"440 Hz at 0.5 from the installed engine: {report['windows']}")
        check_heard(sum(e["damaged"] for e in engine_damage) == 0, "no damaged sample")
        code, status = engine.status()
        check(code == 0, f"the installed sustain-status says healthy (exit {code})")
        check(status["supervisor"]["spare_ready"], "the installed engine has its spare warm")


def test(paths):
    if installed():
        print("SKIPPED: a sustain package is installed on this machine; this test would remove it", flush=True)
        return
    out_dir = tempfile.mkdtemp(prefix="sustain-deb-")
    try:
        built = run([os.path.join(ROOT, "tools", "package"), "--out", out_dir], timeout=1200)
        check(built.returncode == 0, "tools/package builds the package" +
              ("" if built.returncode == 0 else f":\n{built.stderr[-3000:]}"))
        deb = built.stdout.strip().splitlines()[-1]
        check(deb.endswith(".deb") and os.path.isfile(deb), f"tools/package prints the .deb's path last ({deb})")
        print(f"tools/package said:\n{built.stderr[-2000:]}", flush=True)
        try:
            out = run(sudo() + ["apt-get", "install", "-y", "--no-install-recommends", deb], timeout=240,
                      env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            check(out.returncode == 0, "apt installs the package" +
                  ("" if out.returncode == 0 else f":\n{out.stdout[-2000:]}{out.stderr[-2000:]}"))
            files = [line for line in run(["dpkg", "-L", "sustain"]).stdout.splitlines() if os.path.isfile(line)]
            layout(files)
            manuals_and_unit(files)
            plays(paths)
        finally:
            files = [line for line in run(["dpkg", "-L", "sustain"]).stdout.splitlines() if line.strip()]
            out = run(sudo() + ["apt-get", "purge", "-y", "sustain"], timeout=240,
                      env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        check(out.returncode == 0, f"apt purges the package: {out.stderr[-1000:]}")
        check(not installed() and run(["dpkg-query", "-W", "sustain"]).returncode != 0, "dpkg no longer knows sustain")
        left = [f for f in files if os.path.isfile(f) or (os.path.isdir(f) and "sustain" in os.path.basename(f))]
        check(not left, f"the purge leaves none of the package's files: {left}")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main(test)
