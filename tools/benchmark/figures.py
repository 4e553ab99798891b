"""Summary figures shared by the benchmarks."""


def percentile(values, p):
    """The nearest-rank p-th percentile of `values` (0 <= p <= 100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100.0 * (len(ordered) - 1)))))]
