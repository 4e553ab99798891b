"""Feedback on the address a client uses, with the real engine over real UDP:

- a subscriber that sets voice 0's frequency as /engine/voice/0/freq hears it back on that
  address, not on /engine/freq, when another client changes it;
- a client that sends from one socket and listens on another (its reply port) and uses the
  normalised /norm addresses, without subscribing, is served like a control surface: a
  snapshot in 0..1 on those addresses, then other clients' changes on them, normalised
  (gain linear, frequency exponential from 20 Hz);
- neither hears its own change back.
"""
import math

from harness import Engine, JackServer, check, main
from osc_wire import drain, message, udp

RATE = 48000



def value_of(replies, address):
    values = [args[0] for a, args in replies if a == address]
    return values[-1] if values else None


def test(paths):
    with JackServer() as jack, Engine(paths, jack) as engine:
        target = ("127.0.0.1", engine.port)
        long_form, other = udp(), udp()
        long_form.sendto(message("/engine/notify", "i", 1), target)
        drain(long_form, 0.3)
        long_form.sendto(message("/engine/voice/0/freq", "f", 500.0), target)
        check(drain(long_form, 0.3) == [], "its own change does not come back")
        other.sendto(message("/engine/freq", "f", 600.0), target)
        replies = drain(long_form, 0.3)
        check(replies == [("/engine/voice/0/freq", [600.0])],
              f"voice 0's frequency comes back on the address it used: {replies}")

        # A /norm client with separate send and receive sockets.
        sender, receiver = udp(), udp()
        sender.sendto(message("/engine/reply_port", "i", receiver.getsockname()[1]), target)
        check(drain(receiver, 0.3) == [("/engine/reply_port", [receiver.getsockname()[1]])],
              "the reply port is confirmed at the receiving socket")
        sender.sendto(message("/engine/voice/1/gain/norm", "f", 0.5), target)
        snapshot = drain(receiver, 0.3)
        check(value_of(snapshot, "/engine/gain/norm") is not None and value_of(snapshot, "/engine/voice/2/freq/norm")
              is not None and value_of(snapshot, "/engine/freq") is None,
              f"a snapshot on the /norm addresses, nothing on the plain ones: {snapshot[:4]}...")
        check(value_of(snapshot, "/engine/voice/1/gain/norm") is None or abs(value_of(snapshot, "/engine/voice/1/gain/norm") - 0.5) < 1e-6,
              "the snapshot shows the client's own value, if it shows it")
        other.sendto(message("/engine/voice/1/gain", "f", 0.25), target)
        other.sendto(message("/engine/voice/1/freq", "f", 880.0), target)
        replies = drain(receiver, 0.3)
        expected_freq = math.log(880.0 / 20.0) / math.log(min(20000.0, 0.45 * RATE) / 20.0)
        gain, freq = value_of(replies, "/engine/voice/1/gain/norm"), value_of(replies, "/engine/voice/1/freq/norm")
        check(gain is not None and abs(gain - 0.25) < 1e-6, f"a gain change arrives in 0..1 on /norm: {replies}")
        check(freq is not None and abs(freq - expected_freq) < 1e-4,
              f"a frequency change arrives normalised (exp from 20 Hz): {freq} vs {expected_freq:.5f}")
        sender.sendto(message("/engine/voice/1/gain/norm", "f", 0.75), target)
        check(value_of(drain(receiver, 0.3), "/engine/voice/1/gain/norm") is None, "its own change does not come back")
        c = engine.status()[1]["osc"]["clients"]
        check(c["surfaces"] == 1 and c["subscribers"] == 1, f"the /norm client is counted with the surfaces: {c}")
        for s in (long_form, other, sender, receiver):
            s.close()


if __name__ == "__main__":
    main(test)
