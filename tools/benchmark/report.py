#!/usr/bin/env python3
"""Turns the measurements tools/bench collected into the report: checks every message's
accounting, aggregates runs (median, worst run, and all runs pooled into one histogram),
prints a table and writes all figures as JSON.

Input: a work directory with one sub-directory per measurement (m-NNN/) holding
meta.json (what bench did), flood.json (sustain-osc-flood's output), after.json
(sustain-bench-metrics --since the snapshot taken just before the flood, after the engine
settled) and, for the xrun scenario, recorder.json (sustain-record --json); plus
machine.json and params.json at the top. Standard library only.
"""
import argparse
import json
import math
import os
import statistics
import sys

LATENCY_BINS = 4096  # shm/layout.h kLatencyBins (the last bin, index 4096, is overflow)
DRAIN_BINS = 4096    # shm/layout.h kDrainBins


# ---- histograms --------------------------------------------------------------------------

def dense(pairs, size):
    bins = [0] * (size + 1)
    for index, count in pairs:
        bins[index] += count
    return bins


def quantile(bins, q):
    """Nearest rank over unit-width bins; the same definition as metrics_reader.cpp."""
    total = sum(bins)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    cumulative = 0
    for index, count in enumerate(bins):
        cumulative += count
        if cumulative >= rank:
            return index
    return len(bins) - 1


def summary(bins):
    total = sum(bins)
    if total == 0:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None, "overflow": 0}
    top = max(i for i, c in enumerate(bins) if c)
    return {"count": total, "p50": quantile(bins, 0.5), "p95": quantile(bins, 0.95), "p99": quantile(bins, 0.99),
            "max": top, "overflow": bins[-1]}


def to_us(samples, rate):
    return None if samples is None else round(samples * 1e6 / rate, 1)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def worst(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


# ---- one measurement ---------------------------------------------------------------------

def load(directory):
    def read(name):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)
    m = {"meta": read("meta.json"), "flood": read("flood.json"), "after": read("after.json"),
         "recorder": read("recorder.json"), "jackd": jackd_events(os.path.join(directory, "jackd.log"))}
    return m if m["meta"] and m["flood"] and m["after"] else None


def jackd_events(path):
    """What jackd logged during a measurement: clients that missed a cycle, and cycles in
    which the dummy driver's own timer thread woke late (then no client is to blame)."""
    events = {"client_not_finished": {}, "driver_late_wakeups": 0, "driver_late_max_us": None,
              "process_errors": 0, "xrun_lines": 0}
    if not os.path.exists(path):
        return events
    with open(path, errors="replace") as f:
        for line in f:
            if "xrun" in line.lower():
                events["xrun_lines"] += 1
            if "was not finished" in line and "client = " in line:
                client = line.split("client = ", 1)[1].split(" was not finished")[0]
                client = "sustain-worker" if client.endswith("-w0") else client
                events["client_not_finished"][client] = events["client_not_finished"].get(client, 0) + 1
            elif "JackTimedDriver::Process XRun = " in line:
                events["driver_late_wakeups"] += 1
                try:
                    late = int(line.split("XRun = ", 1)[1].split()[0])
                    events["driver_late_max_us"] = max(events["driver_late_max_us"] or 0, late)
                except (IndexError, ValueError):
                    pass
            elif "Process error" in line:
                events["process_errors"] += 1
    return events


def steal_ms_per_s(meta, seconds, ticks_per_s):
    ticks = meta.get("steal_ticks")
    if not ticks or None in ticks or seconds <= 0:
        return None
    return round(1000.0 * (ticks[1] - ticks[0]) / ticks_per_s / seconds, 2)


def cpu_percent(meta, name, seconds, ticks_per_s):
    ticks = meta.get("cpu_ticks", {}).get(name)
    if not ticks or seconds <= 0 or None in ticks:
        return None
    return round(100.0 * (ticks[1] - ticks[0]) / ticks_per_s / seconds, 1)


def account(m, ticks_per_s):
    """Every message applied, coalesced or counted: the checks, as named booleans."""
    meta, flood, after = m["meta"], m["flood"], m["after"]
    d = after["delta"]
    osc, ring, worker = d["osc"], d["ring"], d["worker"]
    sent = flood["sent"]
    # Refresh records the OSC thread pushed for updates it folded while the ring was full.
    refreshes = ring["pushed"] - (osc["accepted"] - osc["ringCoalesced"])
    param = meta["param"]
    last = flood["last_value"]
    table_value = after["params"][param]
    rendered = after["rendered_targets"][param] if after.get("rendered_valid") else None
    checks = {
        "settled": after.get("settle", {}).get("settled", False),
        "no_send_errors": flood["send_errors"] == 0,
        # Each datagram holds one message: what was sent arrived or the kernel counted it.
        "sent_eq_datagrams_plus_kernel_drops": sent == osc["datagrams"] + osc["kernelDrops"],
        "received_eq_datagrams": osc["received"] == osc["datagrams"],
        "kernel_drops_match_proc_net_udp": meta.get("udp_drops") is None or meta["udp_drops"] == osc["kernelDrops"],
        "received_eq_accepted_plus_rejected": osc["received"] == osc["accepted"] + osc["rejected"],
        # One worker (this version runs no standby): each accepted message was pushed into its
        # ring or folded into a later refresh (ringCoalesced), and each refresh stands for >= 1 of those.
        "accepted_eq_pushed_or_ring_coalesced": refreshes >= 0 and refreshes <= osc["ringCoalesced"]
        and (refreshes > 0) == (osc["ringCoalesced"] > 0),
        "ring_empty_and_taken_eq_pushed": ring["taken"] == ring["pushed"],
        "drained_eq_taken": worker["drained"] == ring["taken"],
        # Coalesced in the control thread's pass or in the callback's pending set (both keep
        # the newest per parameter: shm/command_order.h), or already in the starting state.
        "drained_eq_applied_plus_coalesced_plus_stale": worker["drained"]
        == worker["applied"] + worker["controlCoalesced"] + worker["callbackCoalesced"] + worker["staleEpochSkips"],
        "latency_samples_eq_applied": d["latency"]["count"] == worker["applied"],
        "same_worker_throughout": worker["same_pid"],
        "final_value_in_table": table_value == last,
        "final_value_rendered": rendered == last,
    }
    accounted = all(v for k, v in checks.items() if k not in ("final_value_in_table", "final_value_rendered"))
    seconds = flood["seconds"]
    record = {
        "run": meta["run"],
        "target_rate": meta.get("rate"),
        "rate_achieved": round(flood["rate_achieved"], 1),
        "flood_seconds": round(seconds, 3),
        "sent": sent,
        "send_errors": flood["send_errors"],
        "datagrams": osc["datagrams"],
        "received": osc["received"],
        "kernelDrops": osc["kernelDrops"],
        "proc_net_udp_drops": meta.get("udp_drops"),
        "accepted": osc["accepted"],
        "rejected": osc["rejected"],
        "ringCoalesced": osc["ringCoalesced"],
        "ring_pushed": ring["pushed"],
        "ring_refreshes": refreshes,
        "ring_rejectedFull": ring["rejectedFull"],
        "ring_wakesSent": ring["wakesSent"],
        "drained": worker["drained"],
        "applied": worker["applied"],
        "controlCoalesced": worker["controlCoalesced"],
        "callbackCoalesced": worker["callbackCoalesced"],
        "staleEpochSkips": worker["staleEpochSkips"],
        "unaccounted": sent - (worker["applied"] + worker["controlCoalesced"] + worker["callbackCoalesced"]
                               + worker["staleEpochSkips"]
                               + osc["ringCoalesced"] - max(refreshes, 0) + osc["kernelDrops"] + osc["rejected"]),
        "last_value_sent": last,
        "param_table_value": table_value,
        "rendered_target": rendered,
        "xruns_worker": worker["xruns"],
        "callbacks": worker["callbacks"],
        "load_permille_end": after["worker"]["loadPermille"],
        "load_peak_permille_since_start": after["worker"]["loadPeakPermille"],
        "cpu_percent_sustaind": cpu_percent(meta, "sustaind", seconds, ticks_per_s),
        "cpu_percent_worker": cpu_percent(meta, "worker", seconds, ticks_per_s),
        "cpu_percent_jackd": cpu_percent(meta, "jackd", seconds, ticks_per_s),
        "settle_ms": after.get("settle", {}).get("waited_ms"),
        "steal_ms_per_s": steal_ms_per_s(meta, seconds, ticks_per_s),
        "latency_samples": {k: d["latency"][k] for k in ("count", "p50_samples", "p95_samples", "p99_samples",
                                                          "max_samples", "mean_samples", "overflow")},
        "latency_us": {k: d["latency"][k] for k in ("p50_us", "p95_us", "p99_us", "max_us", "mean_us")},
        "drain_us": {k: d["drain"][k] for k in ("count", "p50_us", "p95_us", "p99_us", "max_us", "mean_us",
                                                "overflow")},
        "checks": checks,
        "accounted": accounted,
        "lossless": osc["kernelDrops"] == 0 and (meta.get("udp_drops") in (None, 0)),
        "final_value_ok": checks["final_value_in_table"] and checks["final_value_rendered"],
        "sender_kept_up": flood["rate_achieved"] >= 0.95 * meta["rate"] if meta.get("rate") else True,
    }
    record["passed"] = (record["accounted"] and record["lossless"] and record["final_value_ok"]
                        and record["sender_kept_up"])
    engine_ok = record["accounted"] and record["lossless"] and record["final_value_ok"]
    record["failed_because"] = (None if record["passed"] else "engine" if not engine_ok else "sender too slow")
    return record


def pooled(measurements, key, size):
    bins = [0] * (size + 1)
    for m in measurements:
        for index, count in m["after"]["delta"][key]:
            bins[index] += count
    return bins


# ---- scenarios ---------------------------------------------------------------------------

def latency_scenario(ms, rate_hz, ticks_per_s):
    runs = [account(m, ticks_per_s) for m in ms]
    lat_bins = pooled(ms, "latency_bins", LATENCY_BINS)
    drain_bins = pooled(ms, "drain_bins", DRAIN_BINS)
    lat, drain = summary(lat_bins), summary(drain_bins)
    agg = {"runs": len(runs)}
    for q in ("p50", "p95", "p99", "max"):
        agg[f"latency_{q}_samples"] = {"median": median(r["latency_samples"][f"{q}_samples"] for r in runs),
                                       "worst_run": worst(r["latency_samples"][f"{q}_samples"] for r in runs),
                                       "pooled": lat[q]}
        agg[f"latency_{q}_us"] = {k: to_us(v, rate_hz) for k, v in agg[f"latency_{q}_samples"].items()}
        agg[f"drain_{q}_us"] = {"median": median(r["drain_us"][f"{q}_us"] for r in runs),
                                "worst_run": worst(r["drain_us"][f"{q}_us"] for r in runs),
                                "pooled": drain[q]}
    agg["latency_mean_samples_pooled"] = (sum(i * c for i, c in enumerate(lat_bins)) / lat["count"]
                                          if lat["count"] else None)
    agg["drain_mean_us_pooled"] = (sum(i * c for i, c in enumerate(drain_bins)) / drain["count"]
                                   if drain["count"] else None)
    # The pooled histograms themselves, as [bin, count] pairs of the bins that are not empty
    # (receive -> applied in samples, push -> drain in us; the last bin is the overflow), for
    # the plots of tools/report.
    agg["latency_histogram_samples"] = [[i, c] for i, c in enumerate(lat_bins) if c]
    agg["drain_histogram_us"] = [[i, c] for i, c in enumerate(drain_bins) if c]
    agg["messages_pooled"] = lat["count"]
    agg["latency_overflow_pooled"] = lat["overflow"]
    agg["drain_overflow_pooled"] = drain["overflow"]
    agg["all_accounted"] = all(r["accounted"] and r["lossless"] and r["final_value_ok"] for r in runs)
    agg["drain_p99_target_us"] = 50
    agg["drain_p99_meets_target"] = (drain["p99"] is not None and drain["p99"] < 50)
    return {"per_run": runs, "aggregate": agg}


def rate_scenario(ms, ticks_per_s):
    records = [account(m, ticks_per_s) for m in ms]
    rates = sorted({r["target_rate"] for r in records})
    run_ids = sorted({r["run"] for r in records})
    steps = []
    for rate in rates:
        rs = [r for r in records if r["target_rate"] == rate]
        steps.append({
            "target_rate": rate,
            "runs": len(rs),
            "passed_runs": sum(r["passed"] for r in rs),
            "rate_achieved_median": median(r["rate_achieved"] for r in rs),
            "sent_median": median(r["sent"] for r in rs),
            "kernelDrops_max": worst(r["kernelDrops"] for r in rs),
            "kernelDrops_total": sum(r["kernelDrops"] for r in rs),
            "unaccounted_max": worst(abs(r["unaccounted"]) for r in rs),
            "accounted_runs": sum(r["accounted"] for r in rs),
            "final_value_ok_runs": sum(r["final_value_ok"] for r in rs),
            "applied_median": median(r["applied"] for r in rs),
            "controlCoalesced_median": median(r["controlCoalesced"] for r in rs),
            "ringCoalesced_max": worst(r["ringCoalesced"] for r in rs),
            "ring_rejectedFull_max": worst(r["ring_rejectedFull"] for r in rs),
            "drain_p99_us_median": median(r["drain_us"]["p99_us"] for r in rs),
            "drain_max_us_worst": worst(r["drain_us"]["max_us"] for r in rs),
            "latency_p99_samples_median": median(r["latency_samples"]["p99_samples"] for r in rs),
            "latency_max_samples_worst": worst(r["latency_samples"]["max_samples"] for r in rs),
            "xruns_worker_max": worst(r["xruns_worker"] for r in rs),
            "cpu_percent_sustaind_median": median(r["cpu_percent_sustaind"] for r in rs),
            "cpu_percent_worker_median": median(r["cpu_percent_worker"] for r in rs),
            "sender_kept_up_runs": sum(r["sender_kept_up"] for r in rs),
            "failed_because": sorted({r["failed_because"] for r in rs if r["failed_because"]}),
        })
    per_run_max = {}
    limited_by = {}
    for run in run_ids:
        best = 0
        limited_by[str(run)] = None
        for rate in rates:  # sustained: this step and every lower one passed
            r = [x for x in records if x["run"] == run and x["target_rate"] == rate]
            if r and r[0]["passed"]:
                best = rate
            else:
                limited_by[str(run)] = r[0]["failed_because"] if r else "missing"
                break
        per_run_max[str(run)] = best
    values = list(per_run_max.values())
    return {"per_run": records, "steps": steps,
            "max_sustained_rate": {"every_run": min(values) if values else 0,
                                   "median": median(values), "per_run": per_run_max,
                                   "target": 100000,
                                   "meets_target": (min(values) if values else 0) >= 100000,
                                   "highest_step_tested": rates[-1] if rates else None,
                                   "stopped_by": limited_by,
                                   "note": "highest step such that it and every lower step passed: zero kernel "
                                           "drops, full accounting, final value applied, sender within 5% of target"}}


def xrun_scenario(ms, ticks_per_s):
    runs = []
    for m in ms:
        r = account(m, ticks_per_s)
        rec = m["recorder"] or {}
        meta = m["meta"]
        lines = meta.get("jackd_xrun_lines")
        r["jackd_events"] = m["jackd"]
        r["steal_ms_per_s"] = steal_ms_per_s(meta, r["flood_seconds"], ticks_per_s)
        r["xruns_jack_server_recorder"] = rec.get("xruns")
        r["recorder_valid"] = rec.get("valid")
        r["recorder_seconds"] = meta.get("recorder_seconds")
        r["jackd_log_xrun_lines"] = (lines[1] - lines[0]) if lines and None not in lines else None
        r["xruns_worker_whole_engine_life"] = m["after"]["worker"]["xruns"]
        runs.append(r)
    agg = {
        "runs": len(runs),
        "xruns_worker_total": sum(r["xruns_worker"] for r in runs),
        "xruns_worker_max": worst(r["xruns_worker"] for r in runs),
        "xruns_jack_server_total": sum(r["xruns_jack_server_recorder"] or 0 for r in runs),
        "xruns_jack_server_max": worst(r["xruns_jack_server_recorder"] for r in runs),
        "jackd_log_xrun_lines_total": sum(r["jackd_log_xrun_lines"] or 0 for r in runs),
        "load_permille_end_median": median(r["load_permille_end"] for r in runs),
        "load_peak_permille_worst": worst(r["load_peak_permille_since_start"] for r in runs),
        "all_accounted": all(r["accounted"] and r["lossless"] and r["final_value_ok"] for r in runs),
        "target": 0,
    }
    agg["driver_late_wakeups_total"] = sum(r["jackd_events"]["driver_late_wakeups"] for r in runs)
    agg["driver_late_max_us"] = worst(r["jackd_events"]["driver_late_max_us"] for r in runs)
    agg["meets_target"] = agg["xruns_worker_total"] == 0 and agg["xruns_jack_server_total"] == 0
    return {"per_run": runs, "aggregate": agg}


def idle_scenario(ms, ticks_per_s):
    """The control: the same engine and listener for the same time with no OSC at all."""
    runs = []
    for m in ms:
        meta, after, rec = m["meta"], m["after"], m["recorder"] or {}
        seconds = meta["seconds"]
        runs.append({
            "run": meta["run"],
            "seconds": seconds,
            "xruns_worker": after["delta"]["worker"]["xruns"],
            "xruns_jack_server_recorder": rec.get("xruns"),
            "recorder_valid": rec.get("valid"),
            "callbacks": after["delta"]["worker"]["callbacks"],
            "load_permille_end": after["worker"]["loadPermille"],
            "load_peak_permille_since_start": after["worker"]["loadPeakPermille"],
            "jackd_events": m["jackd"],
            "steal_ms_per_s": steal_ms_per_s(meta, seconds, ticks_per_s),
            "cpu_percent_jackd": cpu_percent(meta, "jackd", seconds, ticks_per_s),
            "cpu_percent_worker": cpu_percent(meta, "worker", seconds, ticks_per_s),
        })
    return {"per_run": runs}


def headline(scenarios, params):
    """The figures people ask for first; every one is also in the scenarios below."""
    out = {}
    a = scenarios.get("latency")
    if a:
        g = a["aggregate"]
        out["receive_to_applied_samples_pooled"] = {q: g[f"latency_{q}_samples"]["pooled"]
                                                    for q in ("p50", "p95", "p99", "max")}
        out["receive_to_applied_us_pooled"] = {q: g[f"latency_{q}_us"]["pooled"] for q in ("p50", "p95", "p99", "max")}
        out["push_to_drain_us_pooled"] = {q: g[f"drain_{q}_us"]["pooled"] for q in ("p50", "p95", "p99", "max")}
        out["push_to_drain_p99_under_50_us"] = g["drain_p99_meets_target"]
        floor = a.get("wake_floor")
        if floor:
            out["wake_floor_us"] = {q: floor[f"{q}_us"] for q in ("p50", "p95", "p99", "max")}
            out["push_to_drain_p99_over_wake_floor_p99"] = (g["drain_p99_us"]["pooled"] / floor["p99_us"]
                                                            if floor["p99_us"] and g["drain_p99_us"]["pooled"] else None)
    b = scenarios.get("rates")
    if b:
        out["max_sustained_rate"] = b["max_sustained_rate"]["every_run"]
        out["max_sustained_rate_meets_100k"] = b["max_sustained_rate"]["meets_target"]
        out["every_message_accounted_all_steps"] = all(r["accounted"] for r in b["per_run"])
        out["kernel_drops_all_steps"] = sum(r["kernelDrops"] for r in b["per_run"])
    c = scenarios.get("xruns")
    if c:
        out["xruns_worker_under_flood"] = c["aggregate"]["xruns_worker_total"]
        out["xruns_jack_server_under_flood"] = c["aggregate"]["xruns_jack_server_total"]
        out["xrun_flood_seconds_total"] = params["xruns"]["seconds"] * c["aggregate"]["runs"]
    idle = scenarios.get("xruns_idle")
    if idle:
        out["xruns_worker_idle_control"] = sum(r["xruns_worker"] for r in idle["per_run"])
        out["xruns_jack_server_idle_control"] = sum(r["xruns_jack_server_recorder"] or 0 for r in idle["per_run"])
    return out


# ---- printing ----------------------------------------------------------------------------

def fmt(v, width=9, digits=0):
    if v is None:
        s = "-"
    elif isinstance(v, bool):
        s = "yes" if v else "NO"
    elif isinstance(v, float) and digits:
        s = f"{v:.{digits}f}"
    elif isinstance(v, (int, float)):
        s = f"{v:,.0f}"
    else:
        s = str(v)
    return s.rjust(width)


def print_table(report):
    out = []
    p = report["parameters"]
    mach = report["machine"]
    out.append(f"sustain core signal path benchmark  ({mach['date']}, {mach['nproc']} cores, kernel "
               f"{mach['kernel']}, {mach.get('cpu_model', '?')})")
    out.append(f"JACK dummy {p['jack']['rate']} Hz / {p['jack']['frames']} frames (jackd -R), "
               f"{p['runs']} run(s) per scenario{' (quick)' if p['quick'] else ''}; a fresh engine per measurement")
    rate = p["jack"]["rate"]

    a = report["scenarios"].get("latency")
    if a:
        g = a["aggregate"]
        out.append("")
        out.append(f"(a) latency at {p['latency']['rate']} msg/s for {p['latency']['seconds']} s "
                   f"({g['messages_pooled']:,} messages pooled over {g['runs']} runs)")
        out.append(f"    {'':38}{'median run':>15}{'worst run':>15}{'pooled':>15}")
        for q in ("p50", "p95", "p99", "max"):
            s = g[f"latency_{q}_samples"]
            u = g[f"latency_{q}_us"]
            cells = "".join(f"{(str(s[k]) + ' (' + format(u[k], '.0f') + ' us)') if s[k] is not None else '-':>15}"
                            for k in ("median", "worst_run", "pooled"))
            out.append(f"    receive -> applied {q:>4}, samples (us)  {cells}")
        for q in ("p50", "p95", "p99", "max"):
            s = g[f"drain_{q}_us"]
            cells = "".join(fmt(s[k], 15) for k in ("median", "worst_run", "pooled"))
            out.append(f"    ring push -> drain {q:>4}, us            {cells}")
        out.append(f"    drain p99 target < 50 us: {'met' if g['drain_p99_meets_target'] else 'NOT met'} "
                   f"(reference prototype: 84 us p50 / 190 us p99); every message accounted for: "
                   f"{'yes' if g['all_accounted'] else 'NO'}")
        floor = a.get("wake_floor")
        if floor:
            out.append(f"    the machine's floor (sustain-wake-floor, {floor['count']} wakes of a SCHED_FIFO 1 thread in "
                       f"another process through a socketpair, nothing else):")
            out.append("    " + "  ".join(f"{q} {floor[f'{q}_us']:.0f} us" for q in ("p50", "p95", "p99", "max")) +
                       (f";  push -> drain p99 / floor p99 = "
                        f"{report['summary']['push_to_drain_p99_over_wake_floor_p99']:.2f}"
                        if report["summary"].get("push_to_drain_p99_over_wake_floor_p99") else ""))

    b = report["scenarios"].get("rates")
    if b:
        out.append("")
        out.append(f"(b) sustained rate: {p['rates']['seconds']} s per step, median of runs "
                   f"(drops: worst run; pass: runs passed / runs)")
        header = (f"    {'target/s':>9}{'achieved':>10}{'sent':>10}{'k.drops':>8}{'lost':>6}{'accepted':>10}"
                  f"{'applied':>9}{'ctl.coal':>10}{'ring.coal':>10}{'drain99':>8}{'lat99':>6}{'xruns':>6}"
                  f"{'sustaind':>9}{'final':>6}{'pass':>6}")
        out.append(header)
        by_rate = {}
        for r in b["per_run"]:
            by_rate.setdefault(r["target_rate"], []).append(r)
        for s in b["steps"]:
            rs = by_rate[s["target_rate"]]
            out.append(f"    {fmt(s['target_rate'])}{fmt(s['rate_achieved_median'], 10)}{fmt(s['sent_median'], 10)}"
                       f"{fmt(s['kernelDrops_max'], 8)}{fmt(s['unaccounted_max'], 6)}"
                       f"{fmt(median(r['accepted'] for r in rs), 10)}{fmt(s['applied_median'], 9)}"
                       f"{fmt(s['controlCoalesced_median'], 10)}{fmt(s['ringCoalesced_max'], 10)}"
                       f"{fmt(s['drain_p99_us_median'], 8)}{fmt(s['latency_p99_samples_median'], 6)}"
                       f"{fmt(s['xruns_worker_max'], 6)}"
                       f"{(fmt(s['cpu_percent_sustaind_median'], 8) + '%') if s['cpu_percent_sustaind_median'] is not None else fmt(None, 9)}"
                       f"{(str(s['final_value_ok_runs']) + '/' + str(s['runs'])):>6}"
                       f"{(str(s['passed_runs']) + '/' + str(s['runs'])):>6}")
        m = b["max_sustained_rate"]
        stops = sorted({v for v in m["stopped_by"].values() if v})
        out.append(f"    max_sustained_rate: {m['every_run']:,}/s in every run (median {m['median']:,.0f}/s; "
                   f"per run {m['per_run']}); target >= 100,000/s: {'met' if m['meets_target'] else 'NOT met'}")
        out.append("    next step failed because: " + (", ".join(stops) if stops else
                                                          "none failed (the ceiling is above the highest step)"))
        out.append("    lost = sent - (applied + ctl.coal + callback coal. + ring.coal - refreshes + kernel drops + rejected); "
                   "drain99 in us, lat99 in samples; sustaind = its CPU use during the flood (all threads)")

    c = report["scenarios"].get("xruns")
    if c:
        g = c["aggregate"]
        out.append("")
        out.append(f"(c) xruns during {p['xruns']['seconds']} s at {p['xruns']['rate']:,} msg/s")
        out.append(f"    {'run':>7}{'worker xruns':>14}{'JACK xruns':>12}{'late drv':>10}{'late max us':>13}"
                   f"{'steal ms/s':>12}{'load‰':>7}{'peak‰':>7}{'sent':>10}{'applied':>10}{'lat99':>7}{'drain99':>9}"
                   f"{'accounted':>11}")
        rows = [(str(r["run"]), r) for r in c["per_run"]]
        idle = report["scenarios"].get("xruns_idle")
        if idle:
            rows += [("idle", r) for r in idle["per_run"]]
        for label, r in rows:
            flood = label != "idle"
            out.append(f"    {label:>7}{fmt(r['xruns_worker'], 14)}{fmt(r['xruns_jack_server_recorder'], 12)}"
                       f"{fmt(r['jackd_events']['driver_late_wakeups'], 10)}"
                       f"{fmt(r['jackd_events']['driver_late_max_us'], 13)}"
                       f"{fmt(r['steal_ms_per_s'], 12, 2)}{fmt(r['load_permille_end'], 7)}"
                       f"{fmt(r['load_peak_permille_since_start'], 7)}{fmt(r['sent'] if flood else 0, 10)}"
                       f"{fmt(r['applied'] if flood else None, 10)}"
                       f"{fmt(r['latency_samples']['p99_samples'] if flood else None, 7)}"
                       f"{fmt(r['drain_us']['p99_us'] if flood else None, 9)}"
                       f"{fmt(r['accounted'] and r['lossless'] and r['final_value_ok'] if flood else None, 11)}")
        out.append(f"    total xruns under the flood: worker {g['xruns_worker_total']}, JACK server "
                   f"{g['xruns_jack_server_total']}; target 0: {'met' if g['meets_target'] else 'NOT met'}")
        out.append("    JACK xruns: xrun callbacks sustain-record received (server-wide); late drv: cycles in which "
                   "jackd's dummy-driver timer itself woke late (jackd log); idle: the same with no OSC (control)")
    print("\n".join(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(os.path.join(args.work, "machine.json")) as f:
        machine = json.load(f)
    with open(os.path.join(args.work, "params.json")) as f:
        params = json.load(f)
    ticks = machine.get("clk_tck", 100)
    by_scenario = {}
    for name in sorted(os.listdir(args.work)):
        path = os.path.join(args.work, name)
        if name.startswith("m-") and os.path.isdir(path):
            m = load(path)
            if m is None:
                print(f"report: {name} is incomplete; skipped", file=sys.stderr)
                continue
            by_scenario.setdefault(m["meta"]["scenario"], []).append(m)
    scenarios = {}
    if "latency" in by_scenario:
        scenarios["latency"] = latency_scenario(by_scenario["latency"], params["jack"]["rate"], ticks)
        floor_path = os.path.join(args.work, "wake-floor.json")
        if os.path.exists(floor_path):
            with open(floor_path) as f:
                scenarios["latency"]["wake_floor"] = json.load(f)
    if "rates" in by_scenario:
        scenarios["rates"] = rate_scenario(by_scenario["rates"], ticks)
    if "xruns" in by_scenario:
        scenarios["xruns"] = xrun_scenario(by_scenario["xruns"], ticks)
    if "xruns_idle" in by_scenario:
        scenarios["xruns_idle"] = idle_scenario(by_scenario["xruns_idle"], ticks)
    report = {"benchmark": "core-signal-path", "machine": machine, "parameters": params,
              "summary": headline(scenarios, params), "scenarios": scenarios}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print_table(report)
    print(f"\nall figures: {args.out}")


if __name__ == "__main__":
    main()
