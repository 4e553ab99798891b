"""Running SuperCollider's language (sclang) headless in a test: a private HOME, no
display, a free port of its own, a deadline. Shared by the tests of the SuperCollider
example and of the Quark."""
import os
import shutil
import subprocess

from harness import free_udp_port

# Compiling the class library takes under a second; a slow or sanitizer-loaded machine
# gets plenty more. A script that never quits (a parse error leaves sclang idling) is a failure.
SCLANG_TIMEOUT_S = 60


def sclang_env(home):
    """A private HOME and runtime directory (sclang writes its config and caches there), no
    display (sclang is a Qt program), and QtWebEngine's sandbox off: as root it refuses to
    start with it on, and sclang then aborts before running anything."""
    runtime = os.path.join(home, "run")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    env.update(HOME=home, XDG_RUNTIME_DIR=runtime, QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1")
    return env


def sclang_command(script, port=None, config=None):
    """sclang -D (no input from stdin) on `script`, on `port` (a free one when None), with the
    language configuration file `config` (its class library paths) when given."""
    command = ["sclang", "-D", "-u", str(port or free_udp_port())]
    if config:
        command += ["-l", config]
    return command + [script]


def run_sclang(script, env, cwd, config=None):
    """Runs sclang_command(script) to its end: (exit code, output); exit code None when it
    was still running after SCLANG_TIMEOUT_S (it is killed)."""
    try:
        out = subprocess.run(sclang_command(script, config=config), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                             timeout=SCLANG_TIMEOUT_S)
        return out.returncode, out.stdout
    except subprocess.TimeoutExpired as timeout:
        output = timeout.stdout.decode(errors="replace") if isinstance(timeout.stdout, bytes) else timeout.stdout
        return None, output or ""


def sclang_usable(home):
    """Runs a one-line script; None if sclang works here, else why not."""
    if shutil.which("sclang") is None:
        return "sclang is not installed (Debian: supercollider-language)"
    probe = os.path.join(home, "probe.scd")
    with open(probe, "w") as f:
        f.write('"SCLANG WORKS".postln;\n0.exit;\n')
    code, output = run_sclang(probe, sclang_env(home), home)
    if code == 0 and "SCLANG WORKS" in output:
        return None
    return f"sclang cannot run a script here (exit {code}):\n{output[-2000:]}"
