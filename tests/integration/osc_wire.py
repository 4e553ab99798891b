"""OSC 1.0 on the wire, written by hand so that tests can send exactly the bytes they mean
(including bytes no library would produce), and timetags for timed bundles."""
import struct
import time

NTP_TO_UNIX_S = 2208988800


def pad(data):
    return data + b"\0" * (4 - len(data) % 4)


def message(address, types="", *args):
    out = pad(address.encode()) + pad(("," + types).encode())
    for t, v in zip(types, args):
        if t == "f":
            out += struct.pack(">f", v)
        elif t == "i":
            out += struct.pack(">i", v)
        elif t == "d":
            out += struct.pack(">d", v)
        elif t == "s":
            out += pad(v.encode())
    return out


def bundle(*elements, timetag=1):
    out = b"#bundle\0" + struct.pack(">Q", timetag)
    for e in elements:
        out += struct.pack(">i", len(e)) + e
    return out


def timetag_of_unix_ns(unix_ns):
    """An NTP timetag for a CLOCK_REALTIME instant (rounded up, as the engine converts back)."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    fraction = ((nanos << 32) + 999_999_999) // 1_000_000_000
    return ((seconds + NTP_TO_UNIX_S) << 32) | (fraction & 0xFFFFFFFF)


def realtime_minus_monotonic_ns():
    """CLOCK_REALTIME - CLOCK_MONOTONIC now (the smallest of a few readings, least disturbed)."""
    best = None
    for _ in range(5):
        m0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        r = time.clock_gettime_ns(time.CLOCK_REALTIME)
        m1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, r - (m0 + m1) // 2)
    return best[1]
