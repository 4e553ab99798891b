"""One HTML page of the benchmarks' figures, with plots (run through tools/report).

Input: the newest JSON of each kind in build/bench/ (--bench-dir), or only the files named
on the command line (each one's kind read from its content). Output: index.html (--out) and
one PNG per plot beside it (matplotlib, Agg backend: no display needed). A plot whose input
is missing is a box that says which command measures it; one whose input predates the raw
samples a histogram needs shows the percentiles the file has, and says so.

Kinds, and the commands that write them:
  restart  tools/bench-restart   the waveform at the driver's output around a kill
  core     tools/bench           OSC receive -> applied (pooled histogram)
  peer     tools/bench-peer      set + confirm round trip; intake and idle cost, beside scsynth
  timing   tools/bench-timing    timed-bundle error (heard - requested)
  soak     tools/soak            RSS and fds over time
Prints the path of index.html as its last line.
"""
import argparse
import html
import json
import os
import re
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from figures import percentile  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# kind: (file name prefix in build/bench, the command that measures it, what it measures)
KINDS = {
    "restart": ("restart", "tools/bench-restart", "a kill of the process that renders, sustain against scsynth"),
    "core": ("core-signal-path", "tools/bench", "the core signal path"),
    "peer": ("peer", "tools/bench-peer", "side by side with scsynth"),
    "timing": ("timing", "tools/bench-timing", "timed bundles"),
    "soak": ("soak", "tools/soak", "the soak"),
}
COLORS = {"sustain": "#1f77b4", "scsynth": "#d62728", "floor": "#7f7f7f"}
DPI = 100


# ---- inputs --------------------------------------------------------------------------------

def kind_of(data):
    """The kind of a benchmark's JSON, from its content; None for one this page does not show."""
    if not isinstance(data, dict):
        return None
    name = data.get("benchmark")
    if name == "core-signal-path":
        return "core"
    if name in KINDS:
        return name
    if "accuracy" in data and "fanout" in data:  # tools/bench-timing before it named itself
        return "timing"
    return None


def load(path):
    with open(path) as f:
        return json.load(f)


def newest_inputs(bench_dir):
    """{kind: path}: the newest file of each kind in bench_dir (by modification time)."""
    found = {}
    if not os.path.isdir(bench_dir):
        return found
    names = [n for n in os.listdir(bench_dir) if n.endswith(".json")]
    for kind, (prefix, _, _) in KINDS.items():
        candidates = sorted((os.path.join(bench_dir, n) for n in names if n.startswith(prefix)),
                            key=os.path.getmtime, reverse=True)
        for path in candidates:
            try:
                if kind_of(load(path)) == kind:
                    found[kind] = path
                    break
            except (OSError, ValueError):
                continue
    return found


def shown_path(path):
    """A path as the page shows it: relative to the repository when inside it."""
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def measured_on(data, path):
    """When: the date the file records (to the minute), else its modification time."""
    date = data.get("date") or (data.get("machine") or {}).get("date")
    if date:
        return str(date)[:16].replace("T", " ")
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(path)))


def command_of(kind, data):
    """The command that measured `data`, rebuilt from the parameters it records (options at
    their defaults left out)."""
    p = data.get("parameters") or {}
    base = KINDS[kind][1]
    args = []
    if kind == "restart":
        if p.get("quick"):
            args = ["--quick"]
        else:
            args = [f"--rounds {p.get('rounds', 3)}"]
            for key, default in (("before_seconds", 0.5), ("after_seconds", 1.5)):
                if key in p and p[key] != default:
                    args.append(f"--{key.replace('_', '-')} {p[key]:g}")
    elif kind == "core":
        args = ["--quick"] if p.get("quick") else [f"--runs {p.get('runs', 3)}"]
    elif kind == "peer":
        for key, default in (("rounds", 3), ("idle_seconds", 10.0), ("round_trips", 200), ("messages", 200_000)):
            if key in p and p[key] != default:
                args.append(f"--{key.replace('_', '-')} {p[key]:g}")
    elif kind == "timing":
        for key, default in (("runs", 3), ("bundles", 1000), ("seconds", 20)):
            if key in p and p[key] != default:
                args.append(f"--{key.replace('_', '-')} {p[key]:g}")
    elif kind == "soak":
        if data.get("minutes", 10) != 10:
            args.append(f"--minutes {data['minutes']:g}")
        if data.get("fault_every_s", 5.0) != 5.0:
            args.append(f"--fault-every {data['fault_every_s']:g}")
        baseline = (data.get("baseline") or {}).get("minutes", 0)
        if baseline != 2:
            args.append(f"--baseline-minutes {baseline:g}")
        if data.get("sanitizer"):
            args.append(f"--sanitize {data['sanitizer']}")
    return " ".join([base] + args)


# ---- plots ---------------------------------------------------------------------------------

def save(fig, out_dir, name):
    fig.savefig(os.path.join(out_dir, name), dpi=DPI)
    plt.close(fig)
    return name


def median_window(windows):
    """The window whose gap is the median one (the upper of two), and its place."""
    ordered = sorted(windows, key=lambda w: (w["gap_ms"], w["bad_samples"]))
    return ordered[len(ordered) // 2]


def plot_restart(data, out_dir):
    jack = data.get("jack") or {}
    period_ms = jack.get("frames", 64) * 1000.0 / jack.get("rate", 48000)
    engines = [e for e in ("sustain", "scsynth") if data["windows"].get(e)]
    titles = {"sustain": "sustain: its active worker SIGKILLed (relay layout)",
              "scsynth": "scsynth: SIGKILLed, restarted at once by a script"}
    fig, axes = plt.subplots(len(engines), 2, figsize=(12, 2.9 * len(engines)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]})
    right = max(w["excerpt"]["start_ms"] + w["excerpt"]["step_ms"] * len(w["excerpt"]["min"])
                for e in engines for w in [median_window(data["windows"][e])])
    left = min(median_window(data["windows"][e])["excerpt"]["start_ms"] for e in engines)
    rounds = []
    for row, engine in enumerate(engines):
        w = median_window(data["windows"][engine])
        rounds.append(f"{engine}: round {w['round']}")
        ex = w["excerpt"]
        xs = [ex["start_ms"] + i * ex["step_ms"] for i in range(len(ex["min"]))]
        ax = axes[row][0]
        ax.fill_between(xs, ex["min"], ex["max"], step="post", color=COLORS[engine], linewidth=0.6)
        ax.axvline(0, color="black", linestyle="--", linewidth=1)
        stretches = w.get("stretches_from_fault_ms") or ([w["gap_from_fault_ms"]] if w["gap_from_fault_ms"] else [])
        for first, last in stretches:
            # At least a period wide, so that a short stretch is still seen.
            ax.axvspan(first, max(last, first + period_ms), color="orange", alpha=0.3, linewidth=0)
        ax.set_xlim(left, right)
        ax.set_ylim(-0.75, 0.75)
        ax.set_ylabel("sample value")
        ax.set_title(titles[engine], fontsize=10, loc="left")
        detail = (f": {w['stale_samples']:,} stale, {w['silent_samples']:,} silent"
                  if w["gap_samples"] and "stale_samples" in w else "")
        ax.text(0.995, 0.96, f"gap {w['gap_ms']:.1f} ms, {w['gap_samples']:,} samples{detail}",
                transform=ax.transAxes, ha="right", va="top", fontsize=9,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        ax.text(0, 0.71, " SIGKILL", fontsize=8, va="top")
        zoom = w["zoom"]
        zx = [zoom["start_ms"] + i * zoom["step_ms"] for i in range(len(zoom["samples"]))]
        axz = axes[row][1]
        axz.plot(zx, zoom["samples"], color=COLORS[engine], linewidth=0.8)
        axz.axvline(0, color="black", linestyle="--", linewidth=1)
        axz.set_ylim(-0.75, 0.75)
        axz.set_title(f"{len(zoom['samples']) * zoom['step_ms']:.0f} ms around the kill, every sample", fontsize=9,
                      loc="left")
    axes[-1][0].set_xlabel("ms from the kill (the gap a listener hears shaded)")
    axes[-1][1].set_xlabel("ms from the kill")
    tone = data.get("tone", {})
    fig.suptitle(f"At the driver's output (system:monitor_1): a {tone.get('freq', 440):g} Hz tone, "
                 f"amplitude {tone.get('amp', 0.5):g}; the median round of each ({', '.join(rounds)})", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, "restart_waveform.png")


def percentiles_only(title, rows, unit, note, out_dir, name):
    """A stand-in for a histogram whose raw samples the input does not hold: the percentiles
    it does hold, as bars, with the note that says how to get the histogram."""
    fig, ax = plt.subplots(figsize=(9, 3.4))
    labels = [r[0] for r in rows]
    series = {}
    for label, values in rows:
        for engine, value in values.items():
            series.setdefault(engine, {})[label] = value
    width = 0.8 / max(1, len(series))
    for k, (engine, values) in enumerate(series.items()):
        xs = [i + k * width for i in range(len(labels))]
        ax.bar(xs, [values.get(label) or 0 for label in labels], width, label=engine,
               color=COLORS.get(engine, "#1f77b4"))
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels(labels)
    ax.set_ylabel(unit)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.set_title(f"{title}\n{note}", fontsize=9, loc="left")
    fig.tight_layout()
    return save(fig, out_dir, name)


def plot_receive_applied(data, out_dir):
    jack = data.get("parameters", {}).get("jack") or {}
    rate = jack.get("rate", 48000)
    frames = jack.get("frames", 64)
    agg = data["scenarios"]["latency"]["aggregate"]
    pairs = agg.get("latency_histogram_samples")
    if not pairs:
        rows = [(q, {"sustain": agg[f"latency_{q}_us"]["pooled"] / 1000.0}) for q in ("p50", "p95", "p99", "max")]
        return percentiles_only("OSC receive -> applied in the audio callback, ms (pooled over runs)", rows, "ms",
                                "percentiles only: this file predates the histogram; run tools/bench for it",
                                out_dir, "latency_receive_applied.png"), True
    overflow = sum(c for i, c in pairs if i >= 4096)
    bins = [(i, c) for i, c in pairs if i < 4096]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    ax.bar([i * 1000.0 / rate for i, _ in bins], [c for _, c in bins], width=1000.0 / rate, align="edge",
           color=COLORS["sustain"])
    for q, style in (("p50", "-"), ("p99", "--")):
        v = agg[f"latency_{q}_samples"]["pooled"]
        if v is not None:
            ax.axvline(v * 1000.0 / rate, color="black", linestyle=style, linewidth=1,
                       label=f"{q} {v} samples ({v * 1000.0 / rate:.2f} ms)")
    period = frames * 1000.0 / rate
    ax.axvline(period, color=COLORS["floor"], linestyle=":", linewidth=1, label=f"one period ({period:.2f} ms)")
    ax.set_xlabel("OSC receive -> applied in the audio callback, ms (one bar per sample)")
    ax.set_ylabel("messages")
    ax.legend(fontsize=8)
    runs = agg.get("runs")
    ax.set_title(f"{agg.get('messages_pooled', sum(c for _, c in pairs)):,} messages at "
                 f"{data['parameters']['latency']['rate']}/s, {runs} run{'s' if runs != 1 else ''} pooled"
                 + (f"; {overflow} beyond the histogram" if overflow else ""), fontsize=9, loc="left")
    fig.tight_layout()
    return save(fig, out_dir, "latency_receive_applied.png"), False


def plot_round_trip(data, out_dir):
    samples = {e: [t for w in data["windows"].get(e, []) for t in w["round_trip_ms"].get("samples", [])]
               for e in ("sustain", "scsynth")}
    if not all(samples.values()):
        rows = [(q, {e: data["summary"][e].get(f"round_trip_{q}_ms") for e in ("sustain", "scsynth")})
                for q in ("p50", "p99")]
        return percentiles_only("set + confirm round trip, ms (median over rounds)", rows, "ms",
                                "percentiles only: this file predates the raw round trips; run tools/bench-peer "
                                "for the histogram", out_dir, "latency_round_trip.png"), True
    fig, ax = plt.subplots(figsize=(9, 3.4))
    top = max(max(v) for v in samples.values())
    edges = [top * k / 80 for k in range(81)]
    for engine, values in samples.items():
        label = (f"{engine}: p50 {percentile(values, 50):.2f} ms, p99 {percentile(values, 99):.2f} ms "
                 f"(n={len(values)})")
        ax.hist(values, bins=edges, histtype="stepfilled", alpha=0.45, color=COLORS[engine], label=label)
        ax.axvline(percentile(values, 50), color=COLORS[engine], linewidth=1)
    ax.set_xlabel("change + confirmation round trip, ms (sustain /engine/sync, scsynth /sync; all rounds pooled)")
    ax.set_ylabel("round trips")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out_dir, "latency_round_trip.png"), False


def plot_timed_bundles(data, out_dir):
    runs = data["accuracy"]["runs"]
    errors = [e for r in runs for e in r.get("errors", [])]
    if not errors:
        pooled = data["accuracy"].get("pooled") or {}
        rows = [(label, {"sustain": pooled.get(key)}) for label, key in
                (("|error| p50", "abs_p50"), ("|error| p95", "abs_p95"), ("|error| p99", "abs_p99"))]
        return percentiles_only("timed bundle: |heard - requested|, samples (all runs pooled)", rows, "samples",
                                "percentiles only: this file predates the raw errors; run tools/bench-timing for "
                                "the histogram", out_dir, "latency_timed_bundle.png"), True
    limit = 3.0
    inside = [e for e in errors if abs(e) <= limit]
    outside = [e for e in errors if abs(e) > limit]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    ax.hist(inside, bins=[-limit + k * 0.1 for k in range(int(2 * limit / 0.1) + 1)], color=COLORS["sustain"])
    for q, style in ((50, "-"), (99, "--")):
        v = percentile([abs(e) for e in errors], q)
        label = f"|error| p{q} {v:.2f} samples" + ("" if v <= limit else " (beyond the plot)")
        ax.axvline(min(v, limit), color="black", linestyle=style, linewidth=1, label=label)
        ax.axvline(-min(v, limit), color="black", linestyle=style, linewidth=1)
    ax.set_xlim(-limit, limit)
    ax.set_xlabel("heard - requested, samples (bins of 0.1 sample)")
    ax.set_ylabel("bundles")
    ax.legend(fontsize=8)
    ax.set_title(f"{len(errors):,} timed bundles over {len(runs)} run{'s' if len(runs) != 1 else ''}; "
                 f"{len(outside)} beyond +/-{limit:g} samples"
                 + (f" (the largest {max(outside, key=abs):+.1f})" if outside else ""), fontsize=9, loc="left")
    fig.tight_layout()
    return save(fig, out_dir, "latency_timed_bundle.png"), False


def plot_intake_idle(data, out_dir):
    s = data["summary"]
    engines = ("sustain", "scsynth")
    panels = [
        ("intake, % taken in", ["1 sender", "4 senders"],
         lambda e: [100 * (s[e]["intake_1_share"] or 0), 100 * (s[e]["intake_4_share"] or 0)], None),
        ("CPU per message taken in, us", ["1 sender", "4 senders"],
         lambda e: [s[e]["intake_1_cpu_us_per_message"] or 0, s[e]["intake_4_cpu_us_per_message"] or 0], None),
        ("idle CPU, % of one core", ["engine", "with jackd"],
         lambda e: [s[e]["idle_cpu_percent"] or 0, s[e]["idle_cpu_percent_with_jackd"] or 0],
         (data.get("floor") or {}).get("4 plain clients", {}).get("idle_cpu_percent")),
        ("idle context switches / s", ["engine"], lambda e: [s[e]["idle_context_switches_per_s"] or 0],
         (data.get("floor") or {}).get("4 plain clients", {}).get("idle_context_switches_per_s")),
        ("PSS, MB", ["without JACK's\nsegments", "with jackd"],
         lambda e: [s[e]["pss_mb"] or 0, s[e]["pss_mb_with_jackd"] or 0], None),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 3.6))
    for ax, (title, groups, values, floor) in zip(axes, panels):
        for k, engine in enumerate(engines):
            xs = [g + (k - 0.5) * 0.38 for g in range(len(groups))]
            bars = ax.bar(xs, values(engine), 0.38, color=COLORS[engine], label=engine)
            for bar, v in zip(bars, values(engine)):
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{v:,.0f}" if v >= 100 else f"{v:.3g}",
                        ha="center", va="bottom", fontsize=7)
        if floor:
            ax.axhline(floor, color=COLORS["floor"], linestyle=":", linewidth=1, label="4 plain JACK clients, no jackd")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.margins(y=0.15)
    axes[0].legend(fontsize=7, loc="lower left")
    if any(p[3] for p in panels):
        axes[2].legend(fontsize=7, loc="lower left")
    rounds = data.get("parameters", {}).get("rounds")
    version = re.match(r"scsynth [0-9.]+", data.get("scsynth_version") or "")
    fig.suptitle(f"sustain and {version.group(0) if version else 'scsynth'} on one JACK dummy server, "
                 f"median of {rounds} round{'s' if rounds != 1 else ''}", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, "intake_idle.png")


def plot_soak(data, out_dir):
    samples = data.get("samples") or []
    series = {}  # label: [(minutes, rss MB, fds)]
    workers = []
    for entry in samples:
        t = entry["t_s"] / 60.0
        if entry.get("sustaind"):
            own = entry["sustaind"]
            series.setdefault("sustaind", []).append((t, own["rss_kb"] / 1024.0, own["fds"]))
        for p in entry.get("processes", []):
            point = (t, p["rss_kb"] / 1024.0, p["fds"])
            if p.get("kind") == "output":
                series.setdefault(f"output stage (pid {p['pid']})", []).append(point)
            else:
                workers.append(point)
    fig, (ax_rss, ax_fds) = plt.subplots(2, 1, figsize=(10, 4.8), sharex=True)
    for label, points in series.items():
        style = {"marker": "o", "markersize": 3, "linewidth": 1.2}
        ax_rss.plot([p[0] for p in points], [p[1] for p in points], label=label, **style)
        ax_fds.plot([p[0] for p in points], [p[2] for p in points], label=label, **style)
    if workers:
        ax_rss.scatter([p[0] for p in workers], [p[1] for p in workers], s=8, color=COLORS["floor"],
                       label="workers (replaced at faults)")
        ax_fds.scatter([p[0] for p in workers], [p[2] for p in workers], s=8, color=COLORS["floor"],
                       label="workers (replaced at faults)")
    faults = [f["t_s"] / 60.0 for f in data.get("faults", [])]
    for ax in (ax_rss, ax_fds):
        for t in faults:
            ax.axvline(t, color="#bbbbbb", linewidth=0.5, zorder=0)
        ax.margins(y=0.3)
    ax_rss.set_ylabel("RSS, MB")
    ax_fds.set_ylabel("open fds")
    ax_fds.set_xlabel(f"minutes ({len(faults)} faults, grey lines; samples every "
                      f"{samples[1]['t_s'] - samples[0]['t_s']:.0f} s)" if len(samples) > 1 else "minutes")
    ax_rss.legend(fontsize=7, loc="upper left", ncol=2)
    ax_rss.set_title(f"the soak: {data.get('minutes', 0):g} min under 500 OSC messages/s and a fault every "
                     f"{data.get('fault_every_s', 0):g} s", fontsize=10, loc="left")
    fig.tight_layout()
    return save(fig, out_dir, "soak_resources.png")


# ---- the headline figures ------------------------------------------------------------------

def fmt(value, spec=".2f", unit=""):
    return "-" if value is None else f"{value:{spec}}{unit}"


def headline_rows(kind, data):
    """[(figure, sustain, scsynth or "")] for one input."""
    if kind == "restart":
        s, c = data["summary"]["sustain"], data["summary"]["scsynth"]

        def both(key, spec, unit=""):
            return tuple(f"{fmt(x[key]['p50'], spec)} ({fmt(x[key]['p99'], spec)}){unit}" for x in (s, c))
        rows = [("gap a listener hears after a kill of the renderer, median (p99) over rounds",)
                + both("gap_ms", ".1f", " ms"),
                ("the same in samples (every one wrong)",) + both("gap_samples", ",.0f")]
        if "stale_samples" in s:
            rows.append(("of them a stale buffer played again / silent, median",
                         f"{fmt(s['stale_samples']['p50'], ',.0f')} / {fmt(s['silent_samples']['p50'], ',.0f')}",
                         f"{fmt(c['stale_samples']['p50'], ',.0f')} / {fmt(c['silent_samples']['p50'], ',.0f')}"))
        rows.append(("tone intact at the end of the recording", s["tone_intact_at_end"], c["tone_intact_at_end"]))
        return rows
    if kind == "core":
        us = data["summary"]["receive_to_applied_us_pooled"]
        samples = data["summary"]["receive_to_applied_samples_pooled"]
        drain = data["summary"]["push_to_drain_us_pooled"]
        return [("OSC receive -> applied, p50 / p99 (pooled)",
                 f"{us['p50'] / 1000:.2f} / {us['p99'] / 1000:.2f} ms "
                 f"({samples['p50']} / {samples['p99']} samples)", ""),
                ("ring push -> control-thread drain, p50 / p99", f"{drain['p50']} / {drain['p99']} us", ""),
                ("highest flood rate with every message accounted for",
                 f"{data['summary'].get('max_sustained_rate') or 0:,}/s", "")]
    if kind == "peer":
        s, c = data["summary"]["sustain"], data["summary"]["scsynth"]
        return [("set + confirm round trip, p50 / p99",
                 f"{fmt(s['round_trip_p50_ms'])} / {fmt(s['round_trip_p99_ms'])} ms",
                 f"{fmt(c['round_trip_p50_ms'])} / {fmt(c['round_trip_p99_ms'])} ms"),
                ("intake, 1 / 4 unpaced senders",
                 f"{fmt(100 * s['intake_1_share'], '.1f')} / {fmt(100 * s['intake_4_share'], '.1f')} %",
                 f"{fmt(100 * c['intake_1_share'], '.1f')} / {fmt(100 * c['intake_4_share'], '.1f')} %"),
                ("idle CPU, all of the engine's processes", f"{fmt(s['idle_cpu_percent'])} %",
                 f"{fmt(c['idle_cpu_percent'])} %"),
                ("PSS without JACK's segments", f"{fmt(s['pss_mb'], '.1f')} MB", f"{fmt(c['pss_mb'], '.1f')} MB")]
    if kind == "timing":
        pooled = data["accuracy"].get("pooled") or {}
        return [("timed bundle |heard - requested|, p50 / p99",
                 f"{fmt(pooled.get('abs_p50'))} / {fmt(pooled.get('abs_p99'))} samples", ""),
                ("bundles heard within 1 sample", f"{100 * data['accuracy'].get('within_1_sample', 0):.1f} %", "")]
    if kind == "soak":
        r = data.get("recording", {})
        grown = [(name, g["rss_kb"][1] - g["rss_kb"][0], g["fds"]) for name, g in data.get("long_lived", {}).items()]
        sustaind = next((g for g in grown if g[0] == "sustaind"), None)
        return [(f"damaged samples the engine answers for, {len(data.get('faults', []))} faults",
                 f"{r.get('damaged_samples_engine', '-')}", ""),
                ("sustaind RSS growth, fds first -> last",
                 f"{sustaind[1]:+,} kB, {sustaind[2][0]} -> {sustaind[2][1]}" if sustaind else "-", ""),
                ("leaked shared-memory segments", f"{len(data.get('leaked_segments', []))}", "")]
    return []


# ---- the page ------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 1.5em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { white-space: nowrap; }
code { background: #f5f5f5; padding: 0 0.2em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; margin-top: 0.3em; }
.missing { border: 2px dashed #c33; background: #fff4f4; color: #822; padding: 1.2em; margin: 1em 0;
           font-size: 1.05em; }
.note { color: #855; }
"""


def missing_box(kind):
    return (f'<div class="missing" data-missing="{kind}"><strong>not measured:</strong> run '
            f"<code>{html.escape(KINDS[kind][1])}</code> (it writes build/bench/{KINDS[kind][0]}.json)</div>")


def figure(name, alt, caption):
    return (f'<figure><img src="{html.escape(name)}" alt="{html.escape(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def source_line(kind, inputs):
    path, data = inputs[kind]
    return (f"From <code>{html.escape(shown_path(path))}</code>, measured {html.escape(measured_on(data, path))} "
            f"by <code>{html.escape(command_of(kind, data))}</code>.")


def build_page(inputs, out_dir):
    """Writes the plots and returns the page's HTML; inputs: {kind: (path, data)}."""
    sections = []
    plots = 0

    def section(title, kind, make, alt, caption):
        nonlocal plots
        body = [f"<h2>{html.escape(title)}</h2>"]
        if kind not in inputs:
            body.append(missing_box(kind))
        else:
            made = make(inputs[kind][1], out_dir)
            name, partial = made if isinstance(made, tuple) else (made, False)
            note = (' <span class="note">This file holds percentiles only (written before the raw samples were '
                    f"kept): run <code>{html.escape(KINDS[kind][1])}</code> again for the histogram.</span>"
                    if partial else "")
            body.append(figure(name, alt, f"{caption}{note} {source_line(kind, inputs)}"))
            plots += 1
        sections.append("\n".join(body))

    section("A kill of the process that renders: sustain against scsynth restarted by a watchdog", "restart",
            plot_restart, "waveform at the driver's output around a kill, sustain and scsynth",
            "What the JACK driver played (its monitor port) around a SIGKILL of the process that renders a steady "
            "tone. sustain: the active worker is killed and the standby's identical block is played in its place. "
            "scsynth: killed and started again at once by a script (wait for the exit, start, /status, load the "
            "SynthDef, /s_new); meanwhile the driver plays the dead client's stale buffer, then silence. Shaded: "
            "from the first to the last bad sample (damaged or silent), judged by sustain-analyze.")
    section("Latency: OSC receive to applied in the audio", "core", plot_receive_applied,
            "histogram of OSC receive to applied latency",
            "From the moment sustaind's OSC thread received a change to the audio sample the worker's callback "
            "applied it at (the engine's own histogram, one bin per sample), 200 changes a second.")
    section("Latency: a change and its confirmation, beside scsynth", "peer", plot_round_trip,
            "histograms of the set and confirm round trip, sustain and scsynth",
            "One UDP client sends a change and at once a confirmation request, 3-7 ms apart at random, and waits "
            "for the answer: sustain /engine/voice/0/freq + /engine/sync, scsynth /n_set + /sync.")
    section("Latency: timed bundles, heard against requested", "timing", plot_timed_bundles,
            "histogram of the timed-bundle error",
            "Each timed bundle brings a tone in from silence 60 ms after it is sent; heard is when the driver "
            "played its first sample (JACK's cycle times plus the reported output latency).")
    section("Intake and idle cost, beside scsynth", "peer", plot_intake_idle,
            "bar charts of intake share, CPU per message, idle CPU, context switches and PSS",
            "Intake: sustain-osc-flood unpaced, 1 and 4 senders; taken in = sent minus the kernel's and the "
            "engine's own drops. Idle: no OSC, one voice sounding; every thread of every process of the engine. "
            "Dotted: four plain JACK clients playing a sine, JACK's own cost per client.")
    section("The soak: memory and file descriptors over time", "soak", plot_soak,
            "RSS and open fds over time of sustaind, the output stages and the workers",
            "sustaind and the output stages live through the whole run and must stay flat; workers are replaced "
            "at faults (each dot a sample of one).")

    rows = []
    for kind in KINDS:
        if kind not in inputs:
            rows.append(f'<tr><td>{html.escape(KINDS[kind][2])}</td><td colspan="2" class="missing-cell">'
                        f"not measured</td><td><code>{html.escape(KINDS[kind][1])}</code></td><td>-</td></tr>")
            continue
        path, data = inputs[kind]
        lines = headline_rows(kind, data)
        for k, (figure_name, ours, theirs) in enumerate(lines):
            # The command and the file once per input, beside all of its rows.
            source = (f'<td rowspan="{len(lines)}"><code>{html.escape(command_of(kind, data))}</code></td>'
                      f'<td rowspan="{len(lines)}"><code>{html.escape(os.path.basename(path))}</code><br>'
                      f"{html.escape(measured_on(data, path))}</td>" if k == 0 else "")
            rows.append(f"<tr><td>{html.escape(figure_name)}</td><td class=\"num\">{html.escape(str(ours))}</td>"
                        f"<td class=\"num\">{html.escape(str(theirs))}</td>{source}</tr>")
    table = ("<table><tr><th>figure</th><th>sustain</th><th>scsynth</th><th>command</th><th>file, measured</th></tr>\n"
             + "\n".join(rows) + "</table>")
    machine_note = ""
    for kind in inputs:
        m = inputs[kind][1].get("machine") or {}
        cpus = m.get("cpus") or m.get("nproc")
        if cpus:
            machine_note = f" Measured on {cpus} CPUs, kernel {html.escape(str(m.get('kernel', '?')))}."
            break
    page = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>sustain: benchmark report</title><style>{STYLE}</style></head>
<body>
<h1>sustain: benchmark report</h1>
<p>Made {html.escape(time.strftime("%Y-%m-%d %H:%M:%S"))} by <code>tools/report</code> from the benchmarks' JSON
({len(inputs)} of {len(KINDS)} kinds measured).{machine_note} docs/benchmarks.md says what each benchmark measures
and how to read it. Figures are medians over rounds or runs unless the row says otherwise.</p>
<h2>Headline figures</h2>
{table}
{chr(10).join(sections)}
</body>
</html>
"""
    return page, plots


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*",
                        help="benchmark JSON files (default: the newest of each kind in --bench-dir)")
    parser.add_argument("--bench-dir", default=os.path.join(ROOT, "build", "bench"))
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "report", "index.html"),
                        help="the page (a directory: index.html in it); the plots go beside it")
    args = parser.parse_args()

    inputs = {}
    if args.inputs:
        for path in args.inputs:
            try:
                data = load(path)
            except (OSError, ValueError) as error:
                sys.exit(f"report: cannot read {path}: {error}")
            kind = kind_of(data)
            if kind is None:
                sys.exit(f"report: {path} is not the JSON of a benchmark this report shows ({', '.join(KINDS)})")
            inputs[kind] = (path, data)  # the last one of a kind named wins
    else:
        for kind, path in newest_inputs(args.bench_dir).items():
            inputs[kind] = (path, load(path))
    if os.path.isdir(args.out) or args.out.endswith(os.sep):
        args.out = os.path.join(args.out, "index.html")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    page, plots = build_page(inputs, out_dir)
    with open(args.out, "w") as f:
        f.write(page)
    missing = [KINDS[k][1] for k in KINDS if k not in inputs]
    print(f"report: {plots} plots from {len(inputs)} inputs"
          + (f"; not measured: {', '.join(missing)}" if missing else ""))
    print(os.path.abspath(args.out))


if __name__ == "__main__":
    main()
