"""JACK2's registry of running servers, and reclaiming the places of dead ones.

JACK2 (1.9.21) keeps the servers of a machine in /dev/shm/jack-shm-registry, 8 places at
most. A server that exits properly gives its place back; one that is killed (SIGKILL: what
a rehearsal does to a render host) keeps it until a server of the same name starts again.
Servers killed under names never used again fill the registry, and from then on no JACK
server starts on the machine ("Too many servers already active"). A place whose server
process no longer exists is free in fact: reclaim_dead_servers() frees it.
"""
import mmap
import os
import struct

REGISTRY = "/dev/shm/jack-shm-registry"
_HEADER = struct.Struct("<IHxxiIII")  # magic, protocol, type, size, hdr_len, entry_len
_MAX_SERVERS = 8
_NAME_BYTES = 257
_MAGIC = 0x4A41434B  # "JACK"


def _places(data):
    magic, _protocol, _type, _size, hdr_len, _entry_len = _HEADER.unpack_from(data, 0)
    if magic != _MAGIC:
        return None
    stride = (hdr_len - _HEADER.size) // _MAX_SERVERS
    return [(_HEADER.size + i * stride) for i in range(_MAX_SERVERS)]


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def servers(path=REGISTRY):
    """[(pid, name, alive)] of the registry's occupied places."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    offsets = _places(data)
    found = []
    for offset in offsets or []:
        pid = struct.unpack_from("<i", data, offset)[0]
        name = data[offset + 4:offset + 4 + _NAME_BYTES].split(b"\0")[0].decode(errors="replace")
        if pid != 0:
            found.append((pid, name, _alive(pid)))
    return found


def reclaim_dead_servers(path=REGISTRY):
    """Frees the places of servers whose process is gone; returns their names. Run it only
    while no JACK server is starting (the rehearsal runs it before it starts its own)."""
    reclaimed = []
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return reclaimed
    try:
        size = os.fstat(fd).st_size
        with mmap.mmap(fd, size) as data:
            for offset in _places(data) or []:
                pid = struct.unpack_from("<i", data, offset)[0]
                if pid != 0 and not _alive(pid):
                    name = data[offset + 4:offset + 4 + _NAME_BYTES].split(b"\0")[0].decode(errors="replace")
                    data[offset:offset + 4 + _NAME_BYTES] = b"\0" * (4 + _NAME_BYTES)
                    reclaimed.append(name)
    finally:
        os.close(fd)
    return reclaimed


if __name__ == "__main__":
    for name in reclaim_dead_servers():
        print("reclaimed the place of dead JACK server", name)
    for pid, name, alive in servers():
        print(pid, name, "running" if alive else "dead")
