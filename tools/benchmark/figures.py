"""Summary figures shared by the benchmarks."""
import json
import os


def percentile(values, p):
    """The nearest-rank p-th percentile of `values` (0 <= p <= 100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100.0 * (len(ordered) - 1)))))]


def machine():
    """What the figures were measured on."""
    return {"cpus": os.cpu_count(), "kernel": os.uname().release}


def write_report(path, report):
    """Writes a benchmark's figures as JSON (the directory made if missing) and says where."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"figures: {path}")
