#!/usr/bin/env python3
"""Measure what a listener hears when a playing JACK client is SIGKILLed:
PipeWire's JACK implementation (Debian 12 pipewire 0.3.65) vs JACK2 (jackd 1.9.21).

Self-contained: stdlib only, plus a small JACK-API-only C helper compiled with gcc
into a temp dir against Debian's libjack headers (libjack-jackd2-dev).

Per kill run (fresh A, B and R each run, one server per backend):
  A  plays constant 0.5  -> sink input
  B  plays constant 0.25 -> sink input; in every process callback also calls
     jack_port_get_buffer() and jack_port_connected() on A's output port (timed)
  R  records the sink's output as heard (PipeWire: null sink's monitor port,
     JACK2: dummy driver's system:monitor_1) + per-cycle frame times/CLOCK_MONOTONIC
  steady state (--steady s), SIGKILL A, record --after s more, stop B and R.

PipeWire is a private, headless daemon (private XDG_RUNTIME_DIR/PIPEWIRE_RUNTIME_DIR,
own config file, unique core name); its libjack is used only by the experiment's
clients through LD_LIBRARY_PATH. jackd gets a unique -n name.

Usage: python3 tools/benchmark/pipewire_stale.py [--runs 10] [--backends pipewire,jack2]
       [--steady S] [--after S] [--json PATH] [--keep-tmp]
"""
import argparse
import atexit
import json
import os
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_JSON = REPO / "build" / "bench" / "pipewire-stale.json"
PW_JACK_DIR = "/usr/lib/x86_64-linux-gnu/pipewire-0.3/jack"
PACKAGES = ["pipewire", "pipewire-bin", "pipewire-jack"]
RATE = 48000
PERIOD = 64

C_SOURCE = r"""/* pwstale_client: JACK-API-only helper for pipewire_stale.py.
 * Modes:
 *   tone  NAME VALUE OUTFILE DST_PORT...             (client A)
 *   probe NAME VALUE OUTFILE TARGET_PORT DST_PORT...  (client B; stdin "mark":
 *         play 0.125 instead of VALUE for exactly one cycle -> latency marker)
 *   rec   NAME OUTFILE SRC_PORT...                    (recorder R)
 *   ls    NAME                                        (list ports)
 * Per-cycle records go to an mmap'd file (survives SIGKILL/crash).
 * Prints "READY <client_name> <own_port_name>" on stdout when running.
 * Reads stdin; on "stop" or EOF it deactivates, closes and exits.      */
#define _GNU_SOURCE
#include <jack/jack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

#define MAXF 256
#define MAXREC 20000

static inline int64_t mono_ns(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- file layouts (little endian, see python) ---- */
struct hdr {            /* 256 bytes */
    char magic[8];      /* "PWSTALE1" */
    uint32_t kind;      /* 1 tone, 2 probe, 3 rec */
    uint32_t recsize;
    volatile uint32_t count;
    volatile uint32_t xruns;
    uint32_t sample_rate, buffer_size;
    volatile int64_t t_client_unreg_ns;   /* probe: client-unregistration cb for target client */
    volatile int64_t t_port_unreg_ns;     /* probe: port-unregistration cb matching target (or unknown) */
    volatile int64_t t_any_port_unreg_ns; /* probe: first port-unregistration cb of any port */
    volatile int64_t t_by_name_null_ns;   /* probe: first time jack_port_by_name(target)==NULL (poll 200us) */
    volatile int64_t t_activated_ns;
    volatile int32_t target_found;        /* probe: jack_port_by_name at start != NULL */
    volatile int32_t port_unreg_matched;  /* 1 name matched, 2 jack_port_by_id NULL (unknown) */
    volatile int64_t t_shutdown_ns;
    volatile uint32_t mark_lft;           /* probe: frame time of the one cycle written as 0.125 */
    volatile int32_t mark_done;
    char pad[256 - 8 - 4*6 - 8*5 - 4*2 - 8 - 8];
};
_Static_assert(sizeof(struct hdr) == 256, "hdr size");
struct toner { int64_t mono; uint32_t lft, ft, nframes, pad; };               /* 24 */
struct prober { int64_t mono; uint32_t lft, ft; int32_t getbuf_null, connected;
                uint32_t dt_getbuf_ns, dt_conn_ns; float a_first; uint32_t nframes; }; /* 40 */
struct recr { int64_t mono; uint32_t lft, ft, nframes, xruns; float s[MAXF]; };/* 24+1024 */

static struct hdr *H; static char *RECS;
static jack_client_t *C; static jack_port_t *OUT, *IN, *TARGET;
static float VALUE; static int MODE; static char TARGET_NAME[512], TARGET_CLIENT[256];
static volatile int running = 1;
static volatile int mark_req = 0;

static void *map_file(const char *path, size_t recsize, uint32_t kind) {
    size_t sz = sizeof(struct hdr) + recsize * (size_t)MAXREC;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); exit(2); }
    if (ftruncate(fd, sz) < 0) { perror("ftruncate"); exit(2); }
    void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(2); }
    close(fd);
    memset(p, 0, sz); /* touch all pages before RT */
    H = p; memcpy(H->magic, "PWSTALE1", 8); H->kind = kind; H->recsize = recsize;
    RECS = (char *)p + sizeof(struct hdr);
    return p;
}

static int process(jack_nframes_t nf, void *arg) {
    (void)arg;
    int64_t t = mono_ns();
    uint32_t lft = jack_last_frame_time(C), ft = jack_frame_time(C);
    uint32_t i = H->count;
    if (MODE == 1 || MODE == 2) {
        float v = VALUE;
        if (MODE == 2 && mark_req && !H->mark_done) { v = 0.125f; H->mark_lft = lft; H->mark_done = 1; mark_req = 0; }
        float *o = jack_port_get_buffer(OUT, nf);
        if (o) for (jack_nframes_t k = 0; k < nf; k++) o[k] = v;
    }
    if (MODE == 1) {
        if (i < MAXREC) { struct toner *r = (struct toner *)(RECS + (size_t)i * sizeof *r);
            r->mono = t; r->lft = lft; r->ft = ft; r->nframes = nf; __atomic_store_n(&H->count, i + 1, __ATOMIC_RELEASE); }
    } else if (MODE == 2) {
        int null = -1, conn = -99; uint32_t d1 = 0, d2 = 0; float a0 = NAN;
        if (TARGET) {
            int64_t t0 = mono_ns();
            float *b = jack_port_get_buffer(TARGET, nf);
            int64_t t1 = mono_ns();
            conn = jack_port_connected(TARGET);
            int64_t t2 = mono_ns();
            null = (b == NULL); if (b) a0 = b[0];
            d1 = (uint32_t)(t1 - t0); d2 = (uint32_t)(t2 - t1);
        }
        if (i < MAXREC) { struct prober *r = (struct prober *)(RECS + (size_t)i * sizeof *r);
            r->mono = t; r->lft = lft; r->ft = ft; r->getbuf_null = null; r->connected = conn;
            r->dt_getbuf_ns = d1; r->dt_conn_ns = d2; r->a_first = a0; r->nframes = nf;
            __atomic_store_n(&H->count, i + 1, __ATOMIC_RELEASE); }
    } else if (MODE == 3) {
        float *in = jack_port_get_buffer(IN, nf);
        if (i < MAXREC) { struct recr *r = (struct recr *)(RECS + (size_t)i * sizeof *r);
            r->mono = t; r->lft = lft; r->ft = ft; r->nframes = nf; r->xruns = H->xruns;
            uint32_t n = nf < MAXF ? nf : MAXF;
            if (in) memcpy(r->s, in, n * sizeof(float)); else for (uint32_t k = 0; k < n; k++) r->s[k] = NAN;
            __atomic_store_n(&H->count, i + 1, __ATOMIC_RELEASE); }
    }
    return 0;
}

static int xrun_cb(void *arg) { (void)arg; H->xruns++; return 0; }
static void shutdown_cb(void *arg) { (void)arg; H->t_shutdown_ns = mono_ns(); running = 0; }

static void client_reg_cb(const char *name, int reg, void *arg) {
    (void)arg;
    if (!reg && name && strcmp(name, TARGET_CLIENT) == 0 && H->t_client_unreg_ns == 0)
        H->t_client_unreg_ns = mono_ns();
}
static void port_reg_cb(jack_port_id_t id, int reg, void *arg) {
    (void)arg;
    if (reg) return;
    int64_t t = mono_ns();
    if (H->t_any_port_unreg_ns == 0) H->t_any_port_unreg_ns = t;
    jack_port_t *p = jack_port_by_id(C, id);
    if (p) {
        const char *n = jack_port_name(p);
        if (n && strcmp(n, TARGET_NAME) == 0 && H->t_port_unreg_ns == 0) { H->t_port_unreg_ns = t; H->port_unreg_matched = 1; }
    } else if (H->t_port_unreg_ns == 0 && H->port_unreg_matched == 0) {
        /* cannot resolve: remember as candidate, may be overwritten by a real match */
        H->port_unreg_matched = 2; H->t_port_unreg_ns = t;
    }
}

static void *poll_thread(void *arg) {
    (void)arg;
    while (running && H->t_by_name_null_ns == 0) {
        jack_port_t *p = jack_port_by_name(C, TARGET_NAME);
        if (!p) { H->t_by_name_null_ns = mono_ns(); break; }
        struct timespec ts = {0, 200000}; nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: see source\n"); return 2; }
    const char *mode = argv[1], *name = argv[2];
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    jack_status_t st;
    C = jack_client_open(name, JackNoStartServer | JackUseExactName, &st);
    if (!C) { fprintf(stderr, "jack_client_open(%s) failed status=0x%x\n", name, st); return 3; }
    if (!strcmp(mode, "ls")) {
        const char **ports = jack_get_ports(C, NULL, NULL, 0);
        printf("RATE %u BUFSIZE %u\n", jack_get_sample_rate(C), jack_get_buffer_size(C));
        for (int i = 0; ports && ports[i]; i++) {
            jack_port_t *p = jack_port_by_name(C, ports[i]);
            int fl = p ? jack_port_flags(p) : 0;
            printf("PORT %s\t%s\t%s\t%s\n", ports[i], (fl & JackPortIsInput) ? "in" : (fl & JackPortIsOutput) ? "out" : "?",
                   (fl & JackPortIsPhysical) ? "phys" : "-", p ? jack_port_type(p) : "?");
        }
        if (ports) jack_free(ports);
        jack_client_close(C); return 0;
    }
    int first_dst = 0; const char *outfile;
    if (!strcmp(mode, "tone")) { MODE = 1; if (argc < 5) return 2; VALUE = atof(argv[3]); outfile = argv[4]; first_dst = 5;
        map_file(outfile, sizeof(struct toner), 1); }
    else if (!strcmp(mode, "probe")) { MODE = 2; if (argc < 6) return 2; VALUE = atof(argv[3]); outfile = argv[4];
        snprintf(TARGET_NAME, sizeof TARGET_NAME, "%s", argv[5]); first_dst = 6;
        snprintf(TARGET_CLIENT, sizeof TARGET_CLIENT, "%s", argv[5]);
        char *c = strchr(TARGET_CLIENT, ':'); if (c) *c = 0;
        map_file(outfile, sizeof(struct prober), 2); }
    else if (!strcmp(mode, "rec")) { MODE = 3; if (argc < 5) return 2; outfile = argv[3];
        map_file(outfile, sizeof(struct recr), 3); }
    else { fprintf(stderr, "bad mode\n"); return 2; }
    H->sample_rate = jack_get_sample_rate(C); H->buffer_size = jack_get_buffer_size(C);

    if (MODE == 1 || MODE == 2) OUT = jack_port_register(C, "out", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    if (MODE == 3) IN = jack_port_register(C, "in", JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
    if ((MODE != 3 && !OUT) || (MODE == 3 && !IN)) { fprintf(stderr, "port_register failed\n"); return 4; }
    if (MODE == 2) {
        TARGET = jack_port_by_name(C, TARGET_NAME);
        H->target_found = TARGET != NULL;
        jack_set_client_registration_callback(C, client_reg_cb, NULL);
        jack_set_port_registration_callback(C, port_reg_cb, NULL);
    }
    jack_set_process_callback(C, process, NULL);
    jack_set_xrun_callback(C, xrun_cb, NULL);
    jack_on_shutdown(C, shutdown_cb, NULL);
    if (jack_activate(C)) { fprintf(stderr, "activate failed\n"); return 5; }
    H->t_activated_ns = mono_ns();
    const char *own = jack_port_name(MODE == 3 ? IN : OUT);
    if (MODE == 3) {
        for (int i = 4; i < argc; i++) {
            int r = jack_connect(C, argv[i], own);
            if (r) fprintf(stderr, "jack_connect(%s -> %s) = %d\n", argv[i], own, r);
        }
    } else {
        for (int i = first_dst; i < argc; i++) {
            int r = jack_connect(C, own, argv[i]);
            if (r) fprintf(stderr, "jack_connect(%s -> %s) = %d\n", own, argv[i], r);
        }
    }
    pthread_t pt; int have_pt = 0;
    if (MODE == 2 && TARGET) have_pt = pthread_create(&pt, NULL, poll_thread, NULL) == 0;
    printf("READY %s %s %d\n", jack_get_client_name(C), own, MODE == 2 ? (int)H->target_found : -1);
    char line[128];
    while (running && fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "stop", 4)) break;
        if (!strncmp(line, "mark", 4)) { mark_req = 1; printf("MARKREQ\n"); }
        if (!strncmp(line, "conn", 4)) { /* report connections of own port */
            const char **cs = jack_port_get_all_connections(C, MODE == 3 ? IN : OUT);
            printf("CONN");
            for (int i = 0; cs && cs[i]; i++) printf(" %s", cs[i]);
            printf("\n"); if (cs) jack_free(cs);
        }
    }
    running = 0;
    if (have_pt) pthread_join(pt, NULL);
    jack_deactivate(C);
    jack_client_close(C);
    printf("DONE\n");
    return 0;
}
"""

HDR_FMT = "<8s6I5q2iqIi"        # 96 bytes used of a 256-byte header
HDR_SIZE = 256
TONE_FMT = "<qIIII"             # 24
PROBE_FMT = "<qIIiiIIfI"        # 40
REC_HEAD_FMT = "<qIIII"         # 24 + 256 floats
MAXF = 256


def mono_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes
_PROCS = []        # every Popen we started: cleaned up at exit
_TMPDIRS = []


class Proc:
    """Popen wrapper with non-blocking line reading of stdout."""

    def __init__(self, argv, env, stderr_path, stdin=True, stdout=True, name=""):
        self.name = name or os.path.basename(argv[0])
        self.errf = open(stderr_path, "ab")
        self.p = subprocess.Popen(argv, env=env,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if stdout else self.errf,
                                  stderr=self.errf, start_new_session=True)
        _PROCS.append(self)
        self.buf = b""
        self.lines = []

    @property
    def pid(self):
        return self.p.pid

    def _pump(self, timeout):
        if self.p.stdout is None:
            return False
        r, _, _ = select.select([self.p.stdout], [], [], max(0.0, timeout))
        if not r:
            return False
        chunk = os.read(self.p.stdout.fileno(), 65536)
        if not chunk:
            return None
        self.buf += chunk
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.lines.append(line.decode(errors="replace"))
        return True

    def wait_line(self, prefix, timeout):
        end = time.monotonic() + timeout
        while True:
            for i, l in enumerate(self.lines):
                if l.startswith(prefix):
                    del self.lines[: i + 1]
                    return l
            left = end - time.monotonic()
            if left <= 0:
                return None
            if self._pump(min(left, 0.2)) is None and self.p.poll() is not None:
                # drain whatever is left
                for i, l in enumerate(self.lines):
                    if l.startswith(prefix):
                        del self.lines[: i + 1]
                        return l
                return None

    def send(self, text):
        try:
            self.p.stdin.write(text.encode())
            self.p.stdin.flush()
            return True
        except (BrokenPipeError, OSError, AttributeError):
            return False

    def stop(self, timeout=5.0, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.send("stop\n")
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill(sig)

    def kill(self, sig=signal.SIGTERM, timeout=3.0):
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, sig)          # only our own pid, never by name
                self.p.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        for f in (self.p.stdin, self.p.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass
        try:
            self.errf.close()
        except OSError:
            pass


def cleanup_all():
    for pr in reversed(_PROCS):
        try:
            pr.kill(signal.SIGTERM)
        except Exception as e:  # noqa
            log("cleanup:", e)
    _PROCS.clear()
    for d in _TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)
    _TMPDIRS.clear()


def _sig_handler(signum, frame):
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------- setup
def ldconfig_jack():
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    return sorted(l.strip() for l in out.splitlines() if "libjack" in l)


def ensure_packages():
    missing = []
    for p in PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            missing.append(p)
    if missing:
        log("installing", missing)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends"] + missing,
                       check=True, env=env)
    vers = {}
    for p in PACKAGES + ["jackd2", "libjack-jackd2-dev"]:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True, text=True)
        vers[p] = r.stdout.strip() or None
    return missing, vers


def build_helper(tmp):
    src = tmp / "pwstale_client.c"
    src.write_text(C_SOURCE)
    exe = tmp / "pwstale_client"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(src), "-ljack", "-lpthread", "-lm"],
                   check=True)
    return exe


def pw_config(core_name, sink_name):
    return f"""# private headless PipeWire for pipewire_stale.py
context.properties = {{
    core.daemon                 = true
    core.name                   = {core_name}
    default.clock.rate          = {RATE}
    default.clock.allowed-rates = [ {RATE} ]
    default.clock.quantum       = {PERIOD}
    default.clock.min-quantum   = {PERIOD}
    default.clock.max-quantum   = {PERIOD}
    default.clock.quantum-limit = 8192
    link.max-buffers            = 16
    settings.check-quantum      = false
    settings.check-rate         = false
}}
context.spa-libs = {{
    audio.convert.* = audioconvert/libspa-audioconvert
    support.*       = support/libspa-support
}}
context.modules = [
    {{ name = libpipewire-module-rt args = {{ nice.level = -11 rt.prio = 88 }} flags = [ ifexists nofail ] }}
    {{ name = libpipewire-module-protocol-native }}
    {{ name = libpipewire-module-metadata }}
    {{ name = libpipewire-module-spa-node-factory }}
    {{ name = libpipewire-module-client-node }}
    {{ name = libpipewire-module-access }}
    {{ name = libpipewire-module-adapter }}
    {{ name = libpipewire-module-link-factory }}
]
context.objects = [
    {{ factory = metadata args = {{ metadata.name = default }} }}
    {{ factory = spa-node-factory
        args = {{
            factory.name    = support.node.driver
            node.name       = Dummy-Driver
            node.group      = pipewire.dummy
            priority.driver = 20000
        }}
    }}
    {{ factory = spa-node-factory
        args = {{
            factory.name    = support.node.driver
            node.name       = Freewheel-Driver
            priority.driver = 19000
            node.group      = pipewire.freewheel
            node.freewheel  = true
        }}
    }}
    {{ factory = adapter
        args = {{
            factory.name     = support.null-audio-sink
            node.name        = "{sink_name}"
            node.description = "{sink_name}"
            media.class      = "Audio/Sink"
            audio.rate       = {RATE}
            audio.channels   = 1
            audio.position   = [ MONO ]
            monitor.channel-volumes = false
            adapter.auto-port-config = {{
                mode     = dsp
                monitor  = true
                control  = false
                position = preserve
            }}
        }}
    }}
]
"""


def parse_ls(text):
    ports = []
    for l in text.splitlines():
        if l.startswith("PORT "):
            f = l[5:].split("\t")
            if len(f) >= 4:
                ports.append({"name": f[0], "dir": f[1], "phys": f[2], "type": f[3]})
    return ports


# --------------------------------------------------------------------------- backends
class Backend:
    kind = "?"

    def __init__(self, exe, tmp, uniq):
        self.exe, self.tmp, self.uniq = exe, tmp, uniq
        self.server = None
        self.env = None
        self.sink_in = []
        self.rec_src = []
        self.rec_src_kind = ""
        self.server_log = None
        self.info = {}

    def client_ls(self, timeout=5):
        r = subprocess.run([str(self.exe), "ls", f"pwsL{self.uniq}"], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def log_size(self):
        try:
            return self.server_log.stat().st_size
        except OSError:
            return 0

    def log_segment(self, a, b):
        try:
            with open(self.server_log, "rb") as f:
                f.seek(a)
                return f.read(max(0, b - a)).decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.server:
            self.server.kill(signal.SIGTERM, timeout=5)

    def wait_for_ports(self, end, choose, what):
        """Lists the server's ports until `choose(ports)` returns (sink inputs, recorder
        sources, how the recorder source was found) with some sink input, or `end` passes."""
        last = ""
        while time.monotonic() < end:
            if self.server.p.poll() is not None:
                raise RuntimeError(f"{self.server.name} exited: " + self.server_log.read_text()[-2000:])
            try:
                rc, out, err = self.client_ls()
            except subprocess.TimeoutExpired:
                continue
            last = out + err
            if rc == 0:
                ports = parse_ls(out)
                ins, sources, kind = choose(ports)
                if ins:
                    self.sink_in, self.rec_src, self.rec_src_kind = ins, sources, kind
                    self.info["ports"] = ports
                    self.info["ls_header"] = [l for l in out.splitlines() if l.startswith("RATE")]
                    break
            time.sleep(0.3)
        if not self.sink_in:
            raise RuntimeError(f"{what}:\n" + last[-3000:])
        if not self.rec_src:
            self.rec_src_kind = "FALLBACK: no monitor port visible; R connected to A:out and B:out (client-side mix)"
        return self


class PipeWire(Backend):
    kind = "pipewire"

    def start(self):
        rt = self.tmp / "pw-runtime"
        cfg = self.tmp / "pw-config"
        rt.mkdir(mode=0o700)
        cfg.mkdir()
        self.core = f"pwstale-{self.uniq}"
        self.sink = f"pwstale_sink_{self.uniq}"
        conf_text = pw_config(self.core, self.sink)
        (cfg / "pwstale.conf").write_text(conf_text)
        self.info["config"] = conf_text
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("PIPEWIRE_", "JACK_", "DBUS_")) and k not in ("LD_LIBRARY_PATH", "XDG_RUNTIME_DIR")}
        denv = dict(base, XDG_RUNTIME_DIR=str(rt), PIPEWIRE_RUNTIME_DIR=str(rt),
                    PIPEWIRE_CONFIG_DIR=str(cfg), PIPEWIRE_DEBUG="3,pw.node:4")
        self.server_log = self.tmp / "pipewire.log"
        self.server = Proc(["pipewire", "-c", "pwstale.conf"], denv, self.server_log,
                           stdin=False, stdout=False, name="pipewire")
        if not os.path.exists(os.path.join(PW_JACK_DIR, "libjack.so.0")):
            # Without it the clients would load JACK2's libjack and find some other server.
            raise RuntimeError(f"PipeWire's libjack is not in {PW_JACK_DIR}")
        # JACK_DEFAULT_SERVER names no server, should JACK2's libjack be loaded all the same.
        self.env = dict(base, XDG_RUNTIME_DIR=str(rt), PIPEWIRE_RUNTIME_DIR=str(rt),
                        PIPEWIRE_REMOTE=self.core, PIPEWIRE_LATENCY=f"{PERIOD}/{RATE}",
                        PIPEWIRE_DEBUG="2", LD_LIBRARY_PATH=PW_JACK_DIR,
                        JACK_DEFAULT_SERVER=f"pwstale-none-{os.getpid()}", JACK_NO_START_SERVER="1")
        self.tool_env = {k: v for k, v in self.env.items() if k != "LD_LIBRARY_PATH"}
        end = time.monotonic() + 20
        while not (rt / self.core).exists():
            if self.server.p.poll() is not None:
                raise RuntimeError("pipewire exited: " + self.server_log.read_text()[-2000:])
            if time.monotonic() > end:
                raise RuntimeError("pipewire socket did not appear")
            time.sleep(0.05)
        def choose(ports):
            mine = [p for p in ports if self.sink in p["name"]]
            ins = [p["name"] for p in mine if p["dir"] == "in" and "audio" in p["type"]]
            monitors = [p["name"] for p in mine if p["dir"] == "out" and "audio" in p["type"]
                        and "monitor" in p["name"].lower()]
            return ins, monitors[:1], "sink monitor port seen by JACK clients" if monitors else ""
        return self.wait_for_ports(end, choose, "null sink ports not visible to JACK clients")

    def diag(self):
        out = {}
        try:
            r = subprocess.run(["pw-dump"], env=self.tool_env, capture_output=True, text=True, timeout=8)
            nodes = []
            for o in json.loads(r.stdout or "[]"):
                if o.get("type", "").endswith(":Node"):
                    info = o.get("info") or {}
                    pr = info.get("props") or {}
                    nodes.append({"id": o.get("id"), "state": info.get("state"),
                                  **{k: pr.get(k) for k in ("node.name", "media.class", "node.driver",
                                                            "priority.driver", "node.always-process",
                                                            "node.group", "node.latency", "clock.quantum")}})
            out["nodes"] = nodes
        except Exception as e:  # noqa
            out["nodes"] = f"failed: {e}"
        try:
            r = subprocess.run(["pw-link", "-l"], env=self.tool_env, capture_output=True, text=True, timeout=6)
            out["pw_link_l"] = (r.stdout + r.stderr)[-4000:]
        except Exception as e:  # noqa
            out["pw_link_l"] = f"failed: {e}"
        return out


class Jack2(Backend):
    kind = "jack2"

    def start(self):
        self.sname = f"pwstale_jack_{self.uniq}"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("PIPEWIRE_", "JACK_")) and k != "LD_LIBRARY_PATH"}
        self.env = dict(base, JACK_DEFAULT_SERVER=self.sname, JACK_NO_AUDIO_RESERVATION="1",
                        JACK_NO_START_SERVER="1")
        self.server_log = self.tmp / "jackd.log"
        cmd = ["jackd", "-n", self.sname, "-R", "-d", "dummy", "-r", str(RATE), "-p", str(PERIOD), "-m"]
        self.info["cmd"] = " ".join(cmd)
        self.server = Proc(cmd, self.env, self.server_log, stdin=False, stdout=False, name="jackd")
        def choose(ports):
            ins = [p["name"] for p in ports if p["name"].startswith("system:playback_")]
            monitors = [p["name"] for p in ports if p["name"].startswith("system:") and "monitor" in p["name"]]
            return ins[:1], monitors[:1], "system:monitor_1 (dummy driver -m)" if monitors else ""
        return self.wait_for_ports(time.monotonic() + 20, choose, "jackd not reachable")

    def stop(self):
        super().stop()
        # remove shm/sem files that carry our unique server name only
        for d in ("/dev/shm",):
            try:
                for f in os.listdir(d):
                    if self.sname in f:
                        try:
                            os.unlink(os.path.join(d, f))
                        except OSError:
                            pass
            except OSError:
                pass

    def diag(self):
        return {}


def sched_info(pid):
    """scheduling policy/rt priority of every thread of pid (from /proc)"""
    pol = {0: "OTHER", 1: "FIFO", 2: "RR", 3: "BATCH", 5: "IDLE", 6: "DEADLINE"}
    out = []
    try:
        for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
            st = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            comm = st[st.index("(") + 1: st.rindex(")")]
            f = st[st.rindex(")") + 2:].split()
            out.append(f"{comm}:{pol.get(int(f[38]), f[38])}/{f[37]}")
    except (OSError, ValueError, IndexError):
        pass
    return out


# --------------------------------------------------------------------------- files
def read_hdr(data):
    f = struct.unpack_from(HDR_FMT, data, 0)
    keys = ["magic", "kind", "recsize", "count", "xruns", "sample_rate", "buffer_size",
            "t_client_unreg_ns", "t_port_unreg_ns", "t_any_port_unreg_ns", "t_by_name_null_ns",
            "t_activated_ns", "target_found", "port_unreg_matched", "t_shutdown_ns", "mark_lft", "mark_done"]
    return dict(zip(keys, f))


def read_tone(path):
    data = Path(path).read_bytes()
    h = read_hdr(data)
    recs = [struct.unpack_from(TONE_FMT, data, HDR_SIZE + i * 24) for i in range(min(h["count"], 20000))]
    return h, [{"mono": r[0], "lft": r[1], "ft": r[2], "nframes": r[3]} for r in recs]


def read_probe(path):
    data = Path(path).read_bytes()
    h = read_hdr(data)
    out = []
    for i in range(min(h["count"], 20000)):
        r = struct.unpack_from(PROBE_FMT, data, HDR_SIZE + i * 40)
        out.append({"mono": r[0], "lft": r[1], "ft": r[2], "null": r[3], "conn": r[4],
                    "dt_get": r[5], "dt_conn": r[6], "a0": r[7], "nframes": r[8]})
    return h, out


def read_rec(path):
    data = Path(path).read_bytes()
    h = read_hdr(data)
    rs = 24 + 4 * MAXF
    out = []
    for i in range(min(h["count"], 20000)):
        off = HDR_SIZE + i * rs
        m, lft, ft, nf, xr = struct.unpack_from(REC_HEAD_FMT, data, off)
        n = min(nf, MAXF)
        s = struct.unpack_from(f"<{n}f", data, off + 24)
        out.append({"mono": m, "lft": lft, "ft": ft, "nframes": nf, "xruns": xr, "s": s})
    return h, out


# --------------------------------------------------------------------------- analysis
def fdiff(a, b):
    """signed frame difference a-b with uint32 wrap"""
    return ((a - b + 2 ** 31) % 2 ** 32) - 2 ** 31


def classify(s):
    if not s:
        return "empty"
    if any(x != x for x in s):
        return "nan"
    mn, mx = min(s), max(s)
    if mx - mn < 1e-6:
        v = round((mn + mx) / 2, 4)
        return f"{v:g}"
    return f"mixed[{mn:.3g}..{mx:.3g}]"


def rle(seq):
    out = []
    for v in seq:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return " ".join(f"{v}x{n}" if n > 1 else f"{v}" for v, n in out)


def gaps(recs, period, key="lft"):
    """missing cycles between consecutive records by frame time; returns (missing, events)"""
    miss, ev = 0, []
    for a, b in zip(recs, recs[1:]):
        d = fdiff(b[key], a[key])
        if d > period:
            k = d // period - 1 + (1 if d % period else 0)
            miss += k
            ev.append({"after_lft": a[key], "frames": d, "missing_cycles": k,
                       "wall_ms": (b["mono"] - a["mono"]) / 1e6})
        elif d <= 0:
            ev.append({"after_lft": a[key], "frames": d, "note": "non-increasing frame time"})
    return miss, ev


def late(recs, period_ns, factor=2.0):
    return sum(1 for a, b in zip(recs, recs[1:]) if b["mono"] - a["mono"] > factor * period_ns)


def rel_ms(t, t0):
    return None if not t else round((t - t0) / 1e6, 3)


def analyse_run(run):
    ha, arecs = read_tone(run["files"]["A"])
    hb, brecs = read_probe(run["files"]["B"])
    hr, rrecs = read_rec(run["files"]["R"])
    period = hr["buffer_size"] or PERIOD
    rate = hr["sample_rate"] or RATE
    period_ns = period * 1e9 / rate
    t_kill = run["t_kill_ns"]
    res = {"period_frames": period, "rate": rate, "A_cycles": len(arecs), "B_cycles": len(brecs),
           "R_cycles": len(rrecs), "R_xruns_cb": hr["xruns"], "B_xruns_cb": hb["xruns"],
           "kill_syscall_us": round((run["t_kill_after_ns"] - t_kill) / 1e3, 1),
           "A_reaped_ms": rel_ms(run.get("t_reaped_ns"), t_kill)}
    if not arecs or not rrecs:
        res["error"] = "no A or R records"
        return res
    a_last = arecs[-1]
    res["A_last_cycle_ms_before_kill"] = round((t_kill - a_last["mono"]) / 1e6, 3)
    res["A_last_lft"] = a_last["lft"]
    # steady-state window: R cycles in the 1 s before A's last cycle
    for r in rrecs:
        r["rel"] = fdiff(r["lft"], a_last["lft"]) / period
        r["v"] = classify(r["s"][: r["nframes"]])
    # latency marker: B played 0.125 (instead of 0.25) for one cycle during steady state;
    # the cycle where R hears 0.625 gives the capture latency of the recording path in cycles.
    L = None
    if hb["mark_done"]:
        mk = [r for r in rrecs if r["v"] == "0.625"]
        if mk:
            L = fdiff(mk[0]["lft"], hb["mark_lft"]) // period
        res["marker_cycles_heard"] = len(mk)
    res["monitor_latency_cycles"] = L
    Lc = L if L is not None else 0
    pre = [r for r in rrecs if r["rel"] <= Lc and r["mono"] >= t_kill - 1.0e9]
    post = [r for r in rrecs if r["rel"] > Lc]          # cycles A did not produce (latency-corrected)
    res["A_final_real_cycle_heard_as"] = next((r["v"] for r in rrecs if r["rel"] == Lc), "not recorded")

    def hist(rs):
        h = {}
        for r in rs:
            h[r["v"]] = h.get(r["v"], 0) + 1
        return h

    def net_missing(seg):
        if len(seg) < 2:
            return 0
        return fdiff(seg[-1]["lft"], seg[0]["lft"]) // period + 1 - len(seg)

    res["pre_values"] = hist(pre)
    res["pre_missing_cycles"] = net_missing(pre)
    res["pre_silent_cycles"] = sum(1 for r in pre if r["v"] == "0")
    res["pre_late_gt2p"] = late(pre, period_ns)
    res["post_values"] = hist(post)
    res["post_stale_075"] = sum(1 for r in post if r["v"] == "0.75")
    lead = 0
    for r in post:
        if r["v"] == "0.75":
            lead += 1
        else:
            break
    res["post_leading_075_run"] = lead
    res["post_silent_cycles"] = sum(1 for r in post if r["v"] == "0")
    res["post_silent_rel_cycles"] = [r["rel"] for r in post if r["v"] == "0"][:30]
    res["post_nonstd_rel_cycles"] = [(r["rel"], r["v"]) for r in post if r["v"] not in ("0.25",)][:30]
    res["pre_nonstd_rel_cycles"] = [(r["rel"], r["v"]) for r in pre if r["v"] not in ("0.75", "0.625")][:30]
    res["post_other_cycles"] = sum(1 for r in post if r["v"] not in ("0.75", "0.25", "0"))
    last075 = [r for r in post if r["v"] == "0.75"]
    res["post_last_075_rel_cycle"] = last075[-1]["rel"] if last075 else None
    first025 = next((r for r in post if r["v"] == "0.25"), None)
    res["post_first_025_rel_cycle"] = first025["rel"] if first025 else None
    res["post_first_025_ms_after_kill"] = rel_ms(first025["mono"], t_kill) if first025 else None
    lastpre = [r for r in rrecs if r["rel"] <= Lc][-1:]
    seg = lastpre + post
    res["post_missing_cycles"] = net_missing(seg)
    _, gev = gaps(seg, period)
    res["post_frametime_anomalies"] = len(gev)
    res["post_gap_events"] = gev[:20]
    res["post_late_gt2p"] = late(seg, period_ns)
    # first 40 cycles (~53 ms) after A's last cycle: the window where a stale re-mix / wait would show
    NEAR = 40
    near = [r for r in post if r["rel"] <= Lc + NEAR]
    res["near40_values"] = hist(near)
    res["near40_records"] = len(near)
    res["near40_missing_cycles"] = NEAR - len({r["lft"] for r in near})
    res["near40_silent_cycles"] = sum(1 for r in near if r["v"] == "0")
    res["near40_late_gt2p"] = late(lastpre + near, period_ns)
    res["R_first_cycle_after_kill_ms"] = next((rel_ms(r["mono"], t_kill) for r in rrecs if r["mono"] > t_kill), None)
    win = []
    prev = None
    for r in rrecs:
        if -5 <= r["rel"] <= 60:
            if prev is not None and fdiff(r["lft"], prev["lft"]) > period:
                win.append(("gap", int(fdiff(r["lft"], prev["lft"]) // period - 1)))
            win.append((r["rel"], r["v"], rel_ms(r["mono"], t_kill)))
            prev = r
    res["window"] = [{"rel_cycle": w[0], "value": w[1], "R_cb_ms_after_kill": w[2]} if w[0] != "gap"
                     else {"gap_missing_cycles": w[1]} for w in win]
    near_int = [(b["mono"] - a["mono"]) / 1e6 for a, b in zip(rrecs, rrecs[1:]) if -2 <= b["rel"] <= 10]
    res["R_max_interval_ms_rel_-2_to_10"] = round(max(near_int), 3) if near_int else None
    win = [w[:2] for w in win]
    seq_pre = [v for a, v in win if a != "gap" and a <= Lc]
    seq_post = []
    for a, v in win:
        if a == "gap":
            seq_post.append(f"GAP{v}")
        elif a > Lc:
            seq_post.append(v)
    res["window_rle"] = rle(seq_pre[-5:]) + " | " + rle(seq_post)
    # ---- B probes
    bpre = [b for b in brecs if b["mono"] < t_kill]
    bpost = [b for b in brecs if b["mono"] >= t_kill]
    res["B_target_found"] = bool(hb["target_found"])
    res["B_getbuf_null_pre"] = f"{sum(1 for b in bpre if b['null'] == 1)}/{len(bpre)}"
    res["B_getbuf_null_post"] = f"{sum(1 for b in bpost if b['null'] == 1)}/{len(bpost)}"
    vals_pre = sorted({round(b["a0"], 4) for b in bpre if b["null"] == 0 and b["a0"] == b["a0"]})
    vals_post = sorted({round(b["a0"], 4) for b in bpost if b["null"] == 0 and b["a0"] == b["a0"]})
    res["B_getbuf_values_pre"] = vals_pre[:10]
    res["B_getbuf_values_post"] = vals_post[:10]
    conn_pre = bpre[-1]["conn"] if bpre else None
    res["B_connected_pre"] = conn_pre
    res["B_connected_values_post"] = sorted({b["conn"] for b in bpost})
    ch = next((b for b in bpost if b["conn"] != conn_pre), None)
    res["B_connected_change_ms"] = rel_ms(ch["mono"], t_kill) if ch else None
    res["B_client_unreg_cb_ms"] = rel_ms(hb["t_client_unreg_ns"], t_kill)
    res["B_port_unreg_cb_ms"] = rel_ms(hb["t_port_unreg_ns"], t_kill)
    res["B_port_unreg_match"] = {0: "none", 1: "name", 2: "unresolved-id"}.get(hb["port_unreg_matched"])
    res["B_any_port_unreg_cb_ms"] = rel_ms(hb["t_any_port_unreg_ns"], t_kill)
    res["B_port_by_name_null_ms"] = rel_ms(hb["t_by_name_null_ns"], t_kill)
    removal = [x for x in (res["B_client_unreg_cb_ms"], res["B_port_unreg_cb_ms"],
                           res["B_port_by_name_null_ms"], res["B_connected_change_ms"]) if x is not None]
    res["removal_first_ms"] = min(removal) if removal else None
    # how many graph cycles started (R callback ~ cycle start) after A's last cycle while the dead A
    # was still registered: server-side removal time (PipeWire log) or first removal seen by B (JACK2)
    ref = run.get("server_disconnect_log_ms")
    ref = ref if ref is not None else res["removal_first_ms"]
    res["removal_ref_ms"] = ref
    if ref is not None:
        res["cycles_started_before_removal"] = sum(
            1 for r in rrecs if r["rel"] >= 1 and (r["mono"] - t_kill) / 1e6 < ref)
    dts_c = [b["dt_conn"] for b in brecs if b["conn"] != -99]
    dts_g = [b["dt_get"] for b in brecs if b["null"] != -1]
    res["conn_dt_max_us"] = round(max(dts_c) / 1e3, 2) if dts_c else None
    res["conn_dt_median_us"] = round(statistics.median(dts_c) / 1e3, 3) if dts_c else None
    res["conn_dt_max_post_us"] = round(max((b["dt_conn"] for b in bpost), default=0) / 1e3, 2) if bpost else None
    res["getbuf_dt_max_us"] = round(max(dts_g) / 1e3, 2) if dts_g else None
    res["B_post_missing_cycles"], _ = gaps([b for b in brecs if b["mono"] < t_kill][-1:] + bpost, period)
    return res


# --------------------------------------------------------------------------- experiment
def run_backend(be, exe, tmp, runs, steady, after):
    results = []
    for i in range(runs):
        rd = tmp / f"{be.kind}-run{i}"
        rd.mkdir()
        files = {k: str(rd / f"{k}.bin") for k in "ABR"}
        tag = f"{be.uniq}_{i}"
        run = {"run": i, "files": files}
        A = B = R = None
        try:
            log_run0 = be.log_size()
            A = Proc([str(exe), "tone", f"pwsA{tag}", "0.5", files["A"]] + be.sink_in, be.env,
                     rd / "A.err", name="A")
            l = A.wait_line("READY", 10)
            if not l:
                raise RuntimeError("A not ready: " + (rd / "A.err").read_text()[-1500:])
            _, a_client, a_port, _ = l.split(" ", 3)
            if i == 0:
                try:
                    maps = Path(f"/proc/{A.pid}/maps").read_text()
                    run["A_libjack"] = sorted({m.split()[-1] for m in maps.splitlines() if "libjack" in m})
                except OSError:
                    pass
            B = Proc([str(exe), "probe", f"pwsB{tag}", "0.25", files["B"], a_port] + be.sink_in, be.env,
                     rd / "B.err", name="B")
            l = B.wait_line("READY", 10)
            if not l:
                raise RuntimeError("B not ready: " + (rd / "B.err").read_text()[-1500:])
            b_port = l.split(" ")[2]
            src = be.rec_src if be.rec_src else [a_port, b_port]
            R = Proc([str(exe), "rec", f"pwsR{tag}", files["R"]] + src, be.env, rd / "R.err", name="R")
            if not R.wait_line("READY", 10):
                raise RuntimeError("R not ready: " + (rd / "R.err").read_text()[-1500:])
            conns = {}
            for nm, pr in (("A", A), ("B", B), ("R", R)):
                pr.send("conn\n")
                l = pr.wait_line("CONN", 5)
                conns[nm] = l[5:].split() if l else None
            run["connections"] = conns
            if i == 0:
                be.info["diag_during_run0"] = be.diag()
            run["a_port"], run["b_port"], run["rec_src"] = a_port, b_port, src
            time.sleep(steady / 2)
            B.send("mark\n")
            time.sleep(steady / 2)
            if i == 0:
                run["sched"] = {nm: sched_info(pr.pid) for nm, pr in (("A", A), ("B", B), ("R", R))}
                run["sched"]["server"] = sched_info(be.server.pid)
            log0 = be.log_size()
            run["t_kill_raw_ns"] = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
            run["t_kill_ns"] = mono_ns()
            os.kill(A.pid, signal.SIGKILL)
            run["t_kill_after_ns"] = mono_ns()
            try:
                A.p.wait(timeout=5)
                run["t_reaped_ns"] = mono_ns()
            except subprocess.TimeoutExpired:
                pass
            time.sleep(after)
            log1 = be.log_size()
            for pr in (R, B):
                pr.send("stop\n")
            for pr in (R, B):
                try:
                    pr.p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pr.kill(signal.SIGKILL)
            seg = be.log_segment(log0, log1)
            lines = seg.splitlines()
            # whole run (from before A started), for rate-limited PipeWire messages (1 per 2 s per node)
            lines_run = be.log_segment(log_run0, log1).splitlines()
            run["server_log_lines_after_kill"] = len(lines)
            run["server_log_xrun_lines"] = sum(1 for x in lines if re.search(r"xrun|not finished", x, re.I))
            run["server_log_excerpt"] = lines[:12]
            # PipeWire 0.3.65 log lines carry CLOCK_MONOTONIC_RAW seconds: "[I][02607.620060]"
            def mono_rel(pat):
                for x in lines:
                    m = re.match(r"\[\w\]\[(\d+)\.(\d+)\]", x)
                    if m and re.search(pat, x):
                        t = int(m[1]) * 10 ** 9 + int(m[2].ljust(9, "0")[:9])
                        return round((t - run["t_kill_raw_ns"]) / 1e6, 3)
                return None
            run["server_disconnect_log_ms"] = mono_rel(r"disconnected")
            run["server_node_destroy_log_ms"] = mono_rel(r"pwsA\S*\) destroy")
            xr = []
            for x in lines_run:
                m = re.match(r"\[\w\]\[(\d+)\.(\d+)\]", x)
                if m and re.search(r"not finished|xrun", x, re.I):
                    t = int(m[1]) * 10 ** 9 + int(m[2].ljust(9, "0")[:9])
                    xr.append(round((t - run["t_kill_raw_ns"]) / 1e6, 3))
            run["server_log_xrun_mono_ms"] = xr[:50]   # includes lines before the kill (negative)
            run["server_log_xrun_lines_run"] = [x[:200] for x in lines_run
                                                if re.search(r"not finished|xrun", x, re.I)][:20]
            run["server_log_keylines"] = [x[:220] for x in lines if re.search(
                r"disconnected|destroy\b|not finished|xrun|incomplete|ERR|\[E\]|\[W\]", x, re.I)][:40]
            res = analyse_run(run)
            res.update({k: run[k] for k in ("connections", "a_port", "b_port", "rec_src",
                                            "server_log_lines_after_kill", "server_log_xrun_lines",
                                            "server_log_excerpt",
                                            "server_disconnect_log_ms", "server_node_destroy_log_ms",
                                            "server_log_xrun_mono_ms", "server_log_keylines", "sched",
                                            "server_log_xrun_lines_run") if k in run})
            if "A_libjack" in run:
                res["A_libjack"] = run["A_libjack"]
            res["errs"] = {k: (rd / f"{k}.err").read_text(errors="replace")[-800:] for k in "ABR"}
        except Exception as e:  # noqa
            res = {"error": f"{type(e).__name__}: {e}"}
            log(f"[{be.kind} run {i}] ERROR {e}")
        finally:
            for pr in (A, B, R):
                if pr:
                    pr.kill(signal.SIGTERM)
                    if pr in _PROCS:
                        _PROCS.remove(pr)
        res["run"] = i
        results.append(res)
        log(f"[{be.kind} run {i}] {res.get('window_rle', res.get('error'))}")
        time.sleep(0.3)
    return results


def summarise(results):
    ok = [r for r in results if "error" not in r]

    def st(key):
        v = [r[key] for r in ok if isinstance(r.get(key), (int, float))]
        if not v:
            return None
        return {"n": len(v), "min": min(v), "median": statistics.median(v), "max": max(v)}
    keys = ["monitor_latency_cycles", "post_stale_075", "post_leading_075_run",
            "cycles_started_before_removal", "R_max_interval_ms_rel_-2_to_10",
            "near40_missing_cycles", "near40_silent_cycles", "near40_late_gt2p",
            "post_missing_cycles", "post_silent_cycles", "post_other_cycles", "post_late_gt2p",
            "pre_missing_cycles", "pre_silent_cycles", "pre_late_gt2p", "post_first_025_ms_after_kill",
            "server_disconnect_log_ms", "server_node_destroy_log_ms", "R_first_cycle_after_kill_ms",
            "removal_first_ms", "B_client_unreg_cb_ms", "B_port_unreg_cb_ms", "B_port_by_name_null_ms",
            "B_connected_change_ms", "conn_dt_max_us", "conn_dt_median_us", "getbuf_dt_max_us",
            "B_post_missing_cycles", "server_log_xrun_lines", "A_last_cycle_ms_before_kill"]
    s = {k: st(k) for k in keys}
    s["runs_ok"] = len(ok)
    s["runs_failed"] = len(results) - len(ok)
    s["getbuf_null_post_all"] = [r.get("B_getbuf_null_post") for r in ok]
    s["getbuf_null_pre_all"] = [r.get("B_getbuf_null_pre") for r in ok]
    return s


def fmt(v, w):
    if v is None:
        v = "-"
    elif isinstance(v, float):
        v = f"{v:.2f}"
    return str(v)[:w].rjust(w)


def print_table(kind, results, summ):
    print(f"\n=== {kind}: per run (sink values as recorded by R; 'after' = cycles A did not produce,"
          f" i.e. later than A's last process cycle + L) ===")
    cols = [("run", 3), ("L", 2), ("stale0.75", 9), ("near40 miss/sil", 15), ("2s miss/sil/late", 16),
            ("1st0.25ms", 9), ("srvDisc", 7), ("clUnreg", 7), ("byName0", 7), ("connChg", 7),
            ("getbufNULL pre/post", 19), ("connMaxUs", 9), ("srvXrun", 7), ("cycB4rm", 7), ("maxIntMs", 8)]
    print(" ".join(n.rjust(w) for n, w in cols))
    for r in results:
        if "error" in r:
            print(f"{r['run']:>3} ERROR {r['error'][:150]}")
            continue
        row = [r["run"], r.get("monitor_latency_cycles"), r["post_stale_075"],
               f"{r['near40_missing_cycles']}/{r['near40_silent_cycles']}",
               f"{r['post_missing_cycles']}/{r['post_silent_cycles']}/{r['post_late_gt2p']}",
               r["post_first_025_ms_after_kill"], r.get("server_disconnect_log_ms"),
               r["B_client_unreg_cb_ms"], r["B_port_by_name_null_ms"], r["B_connected_change_ms"],
               f"{r['B_getbuf_null_pre']}/{r['B_getbuf_null_post']}",
               r["conn_dt_max_us"], r.get("server_log_xrun_lines"), r.get("cycles_started_before_removal"),
               r.get("R_max_interval_ms_rel_-2_to_10")]
        print(" ".join(fmt(v, w) for v, (n, w) in zip(row, cols)))
    print("  per-cycle values heard (last 5 cycles A produced | cycles after; GAPn = n cycles never seen by R):")
    for r in results:
        if "error" not in r:
            print(f"  run {r['run']}: {r['window_rle'][:300]}")
    print(f"--- {kind} summary (min / median / max over {summ['runs_ok']} ok runs, {summ['runs_failed']} failed)")
    for k, v in summ.items():
        if isinstance(v, dict):
            print(f"  {k:32s} {v['min']} / {v['median']} / {v['max']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--backends", default="pipewire,jack2")
    ap.add_argument("--steady", type=float, default=1.0)
    ap.add_argument("--after", type=float, default=2.0)
    ap.add_argument("--json", default=str(DEFAULT_JSON))
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("must run as root (apt-get, RT scheduling)")
    atexit.register(cleanup_all)
    signal.signal(signal.SIGTERM, _sig_handler)
    signal.signal(signal.SIGINT, _sig_handler)

    ld_before = ldconfig_jack()
    installed, versions = ensure_packages()
    ld_after_install = ldconfig_jack()
    tmp = Path(tempfile.mkdtemp(prefix="pwstale."))
    if not args.keep_tmp:
        _TMPDIRS.append(tmp)
    exe = build_helper(tmp)
    log("helper built:", exe)
    if args.build_only:
        return 0
    uniq = f"{os.getpid()}"
    out = {"tool": "tools/benchmark/pipewire_stale.py", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "packages": versions, "installed_now": installed, "rate": RATE, "period": PERIOD,
           "runs_per_backend": args.runs, "steady_s": args.steady, "after_s": args.after,
           "notes": {
               "rel_cycle": "R cycle frame time minus A's last process-cycle frame time, in periods",
               "monitor_latency_cycles (L)": "measured per run: B plays 0.125 for one cycle; R hears 0.625 L cycles later",
               "post_*": "R cycles with rel > L, i.e. cycles A did not produce (A dead); 0.75 there = stale re-mix",
               "near40_*": "first 40 such cycles (~53 ms)",
               "*_missing_cycles": "cycles expected from R's frame-time span minus R callbacks recorded",
               "*_late_gt2p": "R callbacks more than 2 periods (2.67 ms) apart on CLOCK_MONOTONIC",
               "*_ms": "relative to the SIGKILL syscall (CLOCK_MONOTONIC; server log: CLOCK_MONOTONIC_RAW)",
               "B_getbuf_null_pre/post": "cycles where jack_port_get_buffer(A:out) returned NULL / B cycles",
           },
           "ldconfig_libjack_before": ld_before, "ldconfig_libjack_after_install": ld_after_install,
           "backends": {}}
    for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
        cls = {"pipewire": PipeWire, "jack2": Jack2}[kind]
        bdir = tmp / kind
        bdir.mkdir()
        be = cls(exe, bdir, uniq)
        entry = {}
        try:
            be.start()
            entry["setup"] = {k: v for k, v in be.info.items() if k != "ports"}
            entry["setup"]["sink_inputs"] = be.sink_in
            entry["setup"]["recorder_source"] = be.rec_src_kind
            entry["setup"]["ports_seen"] = [p["name"] for p in be.info.get("ports", [])]
            results = run_backend(be, exe, bdir, args.runs, args.steady, args.after)
            entry["runs"] = results
            if "diag_during_run0" in be.info:
                entry["setup"]["diag_during_run0"] = be.info["diag_during_run0"]
            entry["summary"] = summarise(results)
            print_table(kind, results, entry["summary"])
        except Exception as e:  # noqa
            entry["error"] = f"{type(e).__name__}: {e}"
            log(f"[{kind}] backend error: {e}")
        finally:
            try:
                entry["server_log_tail"] = be.server_log.read_text(errors="replace")[-4000:] if be.server_log else None
            except OSError:
                pass
            be.stop()
            if be.server in _PROCS:
                _PROCS.remove(be.server)
        out["backends"][kind] = entry
    out["ldconfig_libjack_end"] = ldconfig_jack()
    out["ldconfig_unchanged"] = out["ldconfig_libjack_end"] == ld_before
    print(f"\nldconfig -p | grep libjack unchanged: {out['ldconfig_unchanged']}")
    jp = Path(args.json)
    jp.parent.mkdir(parents=True, exist_ok=True)
    jp.write_text(json.dumps(out, indent=1, default=str))
    print(f"JSON written to {jp}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup_all()
