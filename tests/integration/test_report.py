"""tools/report makes a page a browser shows whole: small real measurements first
(tools/bench-restart --quick and seconds-long runs of the timing, peer and soak benchmarks
against this build), then tools/report into a temporary directory, then the page opened in
headless Chromium, which says for every plot whether its image loaded (naturalWidth > 0)
and shows the box for the one input not given (tools/bench's, too slow for this test).
Chromium (Debian's package) is installed if missing; the test skips, saying why, only if it
cannot be.
"""
import html.parser
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from harness import SKIP, check, main

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BENCH = os.path.join(ROOT, "tools", "benchmark")

# (script, arguments): the shortest runs that still measure each figure the page plots.
QUICK = [
    ("timing_bench.py", ["--runs", "1", "--bundles", "10", "--seconds", "0.5"]),
    ("peer_bench.py", ["--rounds", "1", "--idle-seconds", "0.5", "--settle-seconds", "0.3", "--round-trips", "10",
                       "--messages", "2000"]),
    ("soak.py", ["--minutes", "0.08", "--fault-every", "2", "--baseline-minutes", "0"]),
]

# Added to a copy of the page: once everything has loaded, each image says whether the
# browser decoded it, and the list of them is written into the page for --dump-dom.
PROBE = """<script>
window.addEventListener("load", function () {
  var found = [];
  document.querySelectorAll("img").forEach(function (img) {
    var ok = img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;
    img.setAttribute("data-probe", ok ? "loaded" : "broken");
    found.push({src: img.getAttribute("src"), ok: ok, width: img.naturalWidth, height: img.naturalHeight});
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>
"""


class Probe(html.parser.HTMLParser):
    """The probe's JSON, the images and the "not measured" boxes of the dumped DOM."""

    def __init__(self):
        super().__init__()
        self.images, self.missing, self.probe, self._in_probe = [], [], "", False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if attrs.get("data-missing"):
            self.missing.append(attrs["data-missing"])
        self._in_probe = tag == "pre" and attrs.get("id") == "probe"

    def handle_endtag(self, tag):
        self._in_probe = False

    def handle_data(self, data):
        if self._in_probe:
            self.probe += data


def run(command, timeout, env=None):
    """Runs a benchmark or tools/report in a session of its own. Cut short (out of time, or
    this test stopped), the whole session gets SIGTERM first, so that the benchmark's own
    cleanup stops the JACK server and engines it started."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        raise
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if result.returncode == SKIP:  # no jackd: the benchmark skipped, and so does this test
        print(f"skipping: {' '.join(command[:2])} skipped: {result.stdout[-500:]}", flush=True)
        sys.exit(SKIP)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], flush=True)
    return result


def chromium():
    """The path of Debian's chromium, installed if missing; None (with the reason printed) if
    it cannot be."""
    found = shutil.which("chromium")
    if found:
        return found
    print("chromium is missing: installing it (Debian's package)", flush=True)
    installed = subprocess.run(["bash", "-c", f'source "{ROOT}/tools/lib/common.sh" && sustain_apt_install chromium'],
                               capture_output=True, text=True, timeout=600)
    found = shutil.which("chromium")
    if not found:
        print(f"chromium could not be installed ({installed.returncode}): {installed.stderr[-1000:]}", flush=True)
    return found


def test(paths):
    browser = chromium()
    if browser is None:
        print("skipping: no headless browser to render the page with", flush=True)
        sys.exit(SKIP)
    with tempfile.TemporaryDirectory(prefix="sustain-report-") as work:
        env = dict(os.environ, SUSTAIN_BUILD=paths.build)
        inputs = [os.path.join(work, "restart.json")]
        result = run([os.path.join(ROOT, "tools", "bench-restart"), "--quick", "--out", inputs[0]], 60, env)
        check(result.returncode == 0 and os.path.exists(inputs[0]), "tools/bench-restart --quick measured")
        with open(inputs[0]) as f:
            restart = json.load(f)
        check(all(len(restart["windows"][e]) == 1 and restart["windows"][e][0]["excerpt"]["max"]
                  for e in ("sustain", "scsynth")), "it kept a waveform around the kill of each engine")
        for script, args in QUICK:
            out = os.path.join(work, script.replace(".py", ".json"))
            result = run([sys.executable, os.path.join(BENCH, script), paths.build, "--out", out] + args, 60)
            check(result.returncode == 0 and os.path.exists(out), f"{script} measured")
            inputs.append(out)

        page = os.path.join(work, "report", "index.html")
        result = run([os.path.join(ROOT, "tools", "report"), "--out", page] + inputs, 120, env)
        lines = result.stdout.strip().splitlines()
        check(result.returncode == 0 and lines and lines[-1] == page,
              f"tools/report wrote the page and printed its path last ({lines[-1:] if lines else 'nothing'})")

        # The probe goes into a copy beside the page, so the images resolve the same way.
        with open(page) as f:
            text = f.read()
        probed = os.path.join(work, "report", "probe.html")
        with open(probed, "w") as f:
            f.write(text.replace("</body>", PROBE + "</body>"))
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                              f"--user-data-dir={os.path.join(work, 'chromium')}", "--virtual-time-budget=10000",
                              "--dump-dom", "file://" + probed], capture_output=True, text=True, timeout=60)
        check(dom.returncode == 0,
              f"chromium rendered the page (exit {dom.returncode}{', ' + dom.stderr[-500:] if dom.returncode else ''})")
        parsed = Probe()
        parsed.feed(dom.stdout)
        check(parsed.probe != "", "the page's images were probed after loading")
        probe = json.loads(parsed.probe)
        expected = ["restart_waveform.png", "latency_round_trip.png", "latency_timed_bundle.png", "intake_idle.png",
                    "soak_resources.png"]
        check(sorted(i["src"] for i in probe) == sorted(expected),
              f"every plot is on the page: {[i['src'] for i in probe]}")
        check(all(i["ok"] for i in probe), f"every plot loaded in the browser: {probe}")
        check(all(i["width"] >= 400 and i["height"] >= 200 for i in probe), "every plot has a plot's size")
        check(all(img.get("data-probe") == "loaded" for img in parsed.images), "the DOM marks every image loaded")
        check(parsed.missing == ["core"], f"the one input not given is a 'not measured' box: {parsed.missing}")
        box = re.search(r'<div class="missing" data-missing="core">(.*?)</div>', dom.stdout, re.S)
        check(box is not None and "not measured" in box.group(1) and "<code>tools/bench</code>" in box.group(1),
              "the box says the figure is not measured and names the command that measures it")


if __name__ == "__main__":
    main(test)
