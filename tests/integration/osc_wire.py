"""OSC 1.0 on the wire, written by hand so that tests can send exactly the bytes they mean
(including bytes no library would produce), and timetags for timed bundles."""
import socket
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


def udp(port=0):
    """A UDP socket on 127.0.0.1 (`port` 0: any free one), as a client or a listener."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    return s


def parse(packet):
    """(address, [args]) of a message with f, i and s arguments."""
    end = packet.index(b"\0")
    address = packet[:end].decode()
    offset = (end // 4 + 1) * 4
    tend = packet.index(b"\0", offset)
    types = packet[offset + 1:tend].decode()
    offset = (tend // 4 + 1) * 4
    args = []
    for t in types:
        if t == "s":
            send = packet.index(b"\0", offset)
            args.append(packet[offset:send].decode())
            offset = (send // 4 + 1) * 4
            continue
        args.append(struct.unpack(">f" if t == "f" else ">i", packet[offset:offset + 4])[0])
        offset += 4
    return address, args


def drain(sock, seconds):
    """Every message that arrives on `sock` within `seconds`, parsed."""
    got, deadline = [], time.time() + seconds
    while True:
        left = deadline - time.time()
        if left <= 0:
            return got
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            return got
        got.append(parse(data))
