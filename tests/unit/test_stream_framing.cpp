// OSC over a byte stream: both framings, split and joined at every boundary, and the TCP
// listener over real loopback sockets (framings, replies, limits, refusals, slow readers).
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "osc/stream_framing.h"
#include "osc/tcp_listener.h"
#include "shm/clock.h"

using namespace sustain;

namespace {
using Bytes = std::vector<uint8_t>;

// A packet of `size` bytes whose content includes SLIP's special bytes at varying places.
Bytes makePacket(size_t size, uint8_t seed) {
    Bytes packet(size);
    for (size_t i = 0; i < size; ++i) {
        const auto value = static_cast<uint8_t>(i * 37 + seed);
        packet[i] = (i % 7 == 3) ? slip::kEnd : (i % 11 == 5) ? slip::kEsc : value;
    }
    return packet;
}

Bytes frame(Framing framing, const std::vector<Bytes>& packets) {
    Bytes stream;
    for (const Bytes& packet : packets) REQUIRE(appendFramed(framing, packet.data(), packet.size(), stream));
    return stream;
}

struct Collected {
    std::vector<Bytes> packets;
    FramingError error = FramingError::None;
};

// Feeds `stream` in chunks that end at each of `cuts` (offsets, ascending), then the rest.
Collected decode(StreamDecoder& decoder, const Bytes& stream, const std::vector<size_t>& cuts = {}) {
    Collected out;
    auto onPacket = [&](const uint8_t* data, size_t size) { out.packets.emplace_back(data, data + size); };
    size_t begin = 0;
    std::vector<size_t> ends = cuts;
    ends.push_back(stream.size());
    for (size_t end : ends) {
        const FramingError error = decoder.feed(stream.data() + begin, end - begin, onPacket);
        if (error != FramingError::None) out.error = error;
        begin = end;
    }
    return out;
}

// A small valid OSC message: "/test" ,i with an argument holding 0xC0 and 0xDB.
Bytes oscMessage(uint8_t tag) {
    Bytes message = {'/', 't', 'e', 's', 't', 0, 0, 0, ',', 'i', 0, 0, 0xC0, 0xDB, 0x00, tag};
    return message;
}
}  // namespace

TEST_CASE("framing: both framings round-trip packets of every size up to 600 and large ones") {
    for (Framing framing : {Framing::Slip, Framing::LengthPrefix}) {
        CAPTURE(std::string(describe(framing)));
        std::vector<size_t> sizes;
        for (size_t size = 1; size <= 600; ++size) sizes.push_back(size);
        for (size_t size : {4095, 4096, 4097, 65535, 65536}) sizes.push_back(size);
        for (size_t size : sizes) {
            CAPTURE(size);
            const Bytes packet = makePacket(size, static_cast<uint8_t>(size));
            StreamDecoder decoder(framing);
            const Collected got = decode(decoder, frame(framing, {packet}));
            REQUIRE(got.error == FramingError::None);
            REQUIRE(got.packets.size() == 1);
            CHECK(got.packets[0] == packet);
            CHECK(decoder.pendingBytes() == 0);
        }
    }
}

TEST_CASE("framing: SLIP escapes END and ESC, and writes END before and after") {
    const Bytes packet = {'/', slip::kEnd, slip::kEsc, 'x'};
    Bytes out;
    REQUIRE(appendFramed(Framing::Slip, packet.data(), packet.size(), out));
    CHECK(out == Bytes{slip::kEnd, '/', slip::kEsc, slip::kEscEnd, slip::kEsc, slip::kEscEsc, 'x', slip::kEnd});
    out.clear();
    REQUIRE(appendFramed(Framing::LengthPrefix, packet.data(), packet.size(), out));
    CHECK(out == Bytes{0, 0, 0, 4, '/', slip::kEnd, slip::kEsc, 'x'});
    out.clear();
    CHECK_FALSE(appendFramed(Framing::Auto, packet.data(), packet.size(), out));
    CHECK(out.empty());
}

TEST_CASE("framing: a stream split at every byte boundary, or fed byte by byte, gives the same packets") {
    const std::vector<Bytes> packets = {makePacket(16, 1), makePacket(1, 2), makePacket(45, 3), oscMessage(4)};
    for (Framing framing : {Framing::Slip, Framing::LengthPrefix}) {
        CAPTURE(std::string(describe(framing)));
        const Bytes stream = frame(framing, packets);
        for (size_t cut = 0; cut <= stream.size(); ++cut) {
            CAPTURE(cut);
            StreamDecoder decoder(framing);
            const Collected got = decode(decoder, stream, {cut});
            REQUIRE(got.error == FramingError::None);
            CHECK(got.packets == packets);
        }
        std::vector<size_t> everyByte;
        for (size_t i = 1; i < stream.size(); ++i) everyByte.push_back(i);
        StreamDecoder decoder(framing);
        const Collected got = decode(decoder, stream, everyByte);
        CHECK(got.error == FramingError::None);
        CHECK(got.packets == packets);
    }
}

TEST_CASE("framing: many packets in one chunk all arrive, in order") {
    std::vector<Bytes> packets;
    for (size_t i = 0; i < 1000; ++i) packets.push_back(makePacket(1 + (i * 13) % 200, static_cast<uint8_t>(i)));
    for (Framing framing : {Framing::Slip, Framing::LengthPrefix}) {
        StreamDecoder decoder(framing);
        const Collected got = decode(decoder, frame(framing, packets));
        CHECK(got.error == FramingError::None);
        CHECK(got.packets == packets);
    }
}

TEST_CASE("framing: SLIP skips empty packets (double END); a length prefix of 0 is skipped") {
    const Bytes message = oscMessage(1);
    Bytes slipStream = {slip::kEnd, slip::kEnd, slip::kEnd};
    appendFramed(Framing::Slip, message.data(), message.size(), slipStream);
    slipStream.insert(slipStream.end(), {slip::kEnd, slip::kEnd});
    StreamDecoder slipDecoder(Framing::Slip);
    const Collected fromSlip = decode(slipDecoder, slipStream);
    CHECK(fromSlip.error == FramingError::None);
    CHECK(fromSlip.packets == std::vector<Bytes>{message});

    Bytes prefixed = {0, 0, 0, 0};
    appendFramed(Framing::LengthPrefix, message.data(), message.size(), prefixed);
    prefixed.insert(prefixed.end(), {0, 0, 0, 0});
    StreamDecoder prefixDecoder(Framing::LengthPrefix);
    const Collected fromPrefix = decode(prefixDecoder, prefixed);
    CHECK(fromPrefix.error == FramingError::None);
    CHECK(fromPrefix.packets == std::vector<Bytes>{message});
}

TEST_CASE("framing: auto-detection decides on the first byte") {
    const Bytes message = oscMessage(7);
    struct Case {
        const char* name;
        Bytes stream;
        Framing expected;
    };
    Bytes bareSlip = frame(Framing::Slip, {message});  // SLIP without the leading END, as some senders write it
    bareSlip.erase(bareSlip.begin());
    const Bytes bundle = {'#', 'b', 'u', 'n', 'd', 'l', 'e', 0, 0, 0, 0, 0, 0, 0, 0, 1, slip::kEnd};
    const Case cases[] = {
        {"END", frame(Framing::Slip, {message}), Framing::Slip},
        {"'/'", bareSlip, Framing::Slip},
        {"'#'", bundle, Framing::Slip},
        {"0x00", frame(Framing::LengthPrefix, {message}), Framing::LengthPrefix},
    };
    for (const Case& c : cases) {
        CAPTURE(std::string(c.name));
        StreamDecoder decoder;
        CHECK(decoder.framing() == Framing::Auto);
        const Collected got = decode(decoder, c.stream);
        CHECK(got.error == FramingError::None);
        CHECK(decoder.framing() == c.expected);
        CHECK(got.packets.size() == 1);
    }
    for (uint8_t first : {uint8_t{'x'}, uint8_t{0x80}, uint8_t{0xDB}, uint8_t{0x01}}) {
        CAPTURE(int{first});
        StreamDecoder decoder;
        const Collected got = decode(decoder, Bytes{first, 0, 0, 0});
        CHECK(got.error == FramingError::Unrecognised);
        CHECK(got.packets.empty());
    }
    StreamDecoder empty;
    CHECK(decode(empty, Bytes{}).error == FramingError::None);
    CHECK(empty.framing() == Framing::Auto);
}

TEST_CASE("framing: a packet larger than the maximum is rejected, one of exactly the maximum is not") {
    constexpr size_t kMax = 1024;
    for (Framing framing : {Framing::Slip, Framing::LengthPrefix}) {
        CAPTURE(std::string(describe(framing)));
        StreamDecoder fits(framing, kMax);
        const Collected ok = decode(fits, frame(framing, {makePacket(kMax, 1)}));
        CHECK(ok.error == FramingError::None);
        CHECK(ok.packets.size() == 1);

        // Whole in one chunk, and byte by byte (the decoder must not hold more than the maximum).
        const Bytes stream = frame(framing, {makePacket(kMax + 1, 1)});
        StreamDecoder whole(framing, kMax);
        CHECK(decode(whole, stream).error == FramingError::Oversize);
        StreamDecoder trickled(framing, kMax);
        for (size_t i = 0; i < stream.size() && trickled.error() == FramingError::None; ++i) {
            trickled.feed(stream.data() + i, 1, [](const uint8_t*, size_t) {});
            CHECK(trickled.pendingBytes() <= kMax);
        }
        CHECK(trickled.error() == FramingError::Oversize);
    }
    // A SLIP packet with no END at all is cut off at the maximum, not buffered without end.
    const Bytes endless(5000, 'a');
    StreamDecoder slip(Framing::Slip, kMax);
    CHECK(decode(slip, endless).error == FramingError::Oversize);
    // A huge length is refused from the prefix alone, before any of the packet arrives.
    StreamDecoder huge(Framing::LengthPrefix);
    CHECK(decode(huge, Bytes{0x7f, 0xff, 0xff, 0xff}).error == FramingError::Oversize);
    StreamDecoder autoHuge;
    CHECK(decode(autoHuge, Bytes{0x00, 0x10, 0x00, 0x00}).error == FramingError::Oversize);  // 1 MiB
}

TEST_CASE("framing: malformed streams are rejected and the decoder stays failed") {
    SUBCASE("ESC followed by an ordinary byte") {
        StreamDecoder decoder(Framing::Slip);
        CHECK(decode(decoder, Bytes{slip::kEnd, '/', slip::kEsc, 'A', slip::kEnd}).error == FramingError::BadEscape);
    }
    SUBCASE("ESC followed by END") {
        StreamDecoder decoder(Framing::Slip);
        CHECK(decode(decoder, Bytes{'/', slip::kEsc, slip::kEnd}).error == FramingError::BadEscape);
    }
    SUBCASE("a negative length") {
        StreamDecoder decoder(Framing::LengthPrefix);
        CHECK(decode(decoder, Bytes{0xff, 0xff, 0xff, 0xfc, 1, 2, 3, 4}).error == FramingError::NegativeLength);
    }
    SUBCASE("an ESC at the end of one chunk and its partner in the next is fine") {
        StreamDecoder decoder(Framing::Slip);
        const Collected got = decode(decoder, Bytes{'/', slip::kEsc, slip::kEscEnd, slip::kEnd}, {2});
        CHECK(got.error == FramingError::None);
        CHECK(got.packets == std::vector<Bytes>{Bytes{'/', slip::kEnd}});
    }
    SUBCASE("packets before the error are delivered; nothing after it, ever") {
        const Bytes good = oscMessage(1);
        Bytes stream = frame(Framing::Slip, {good});
        stream.insert(stream.end(), {'/', slip::kEsc, 'z', slip::kEnd});
        const Bytes more = frame(Framing::Slip, {good});
        stream.insert(stream.end(), more.begin(), more.end());
        StreamDecoder decoder(Framing::Slip);
        const Collected got = decode(decoder, stream);
        CHECK(got.error == FramingError::BadEscape);
        CHECK(got.packets == std::vector<Bytes>{good});
        const Collected after = decode(decoder, more);
        CHECK(after.error == FramingError::BadEscape);
        CHECK(after.packets.empty());
        CHECK(decoder.pendingBytes() == 0);
    }
}

// ---------------------------------------------------------------------------------------
// TcpListener over loopback. The test is both sides: it drives the listener's poll loop as
// the OSC thread would, and talks to it through plain sockets.

namespace {
constexpr int kWaitMs = 3000;  // every wait is bounded: a hang fails the test

struct Received {
    Bytes packet;
    sockaddr_storage peer;
    uint32_t connection;
};

// One turn of the OSC thread's loop, over and over, until `done()` or the deadline.
template <typename Done>
bool pumpUntil(TcpListener& listener, const TcpListener::PacketHandler& onPacket, Done done, int timeoutMs = kWaitMs) {
    const uint64_t deadline = monotonicNs() + static_cast<uint64_t>(timeoutMs) * 1'000'000;
    std::vector<pollfd> fds;
    while (!done()) {
        if (monotonicNs() > deadline) return false;
        fds.clear();
        listener.addPollFds(fds);
        poll(fds.data(), fds.size(), 5);
        listener.handle(fds.data(), fds.size(), onPacket);
    }
    return true;
}

int connectTo(const char* address, uint16_t port, int receiveBufferBytes = 0) {
    sockaddr_storage target{};
    socklen_t length = 0;
    auto* in = reinterpret_cast<sockaddr_in*>(&target);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&target);
    if (inet_pton(AF_INET, address, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        length = sizeof(sockaddr_in);
    } else {
        REQUIRE(inet_pton(AF_INET6, address, &in6->sin6_addr) == 1);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        length = sizeof(sockaddr_in6);
    }
    const int fd = socket(target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    if (receiveBufferBytes > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBufferBytes, sizeof receiveBufferBytes);
    // Loopback: the kernel completes the handshake from the listen backlog, no accept() needed.
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&target), length) == 0);
    return fd;
}

void sendAll(int fd, const Bytes& bytes) {
    REQUIRE(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
}

uint16_t portOf(const sockaddr_storage& address) {
    return ntohs(address.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(address).sin_port
                                              : reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
}

uint16_t localPort(int fd) {
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
    return portOf(local);
}

// Whether the server closed `fd`: end of stream or a reset, while the listener keeps running.
bool closedByServer(TcpListener& listener, int fd) {
    bool closed = false;
    return pumpUntil(listener, [](const uint8_t*, size_t, const sockaddr_storage&, uint32_t) {}, [&] {
        uint8_t byte = 0;
        const ssize_t got = recv(fd, &byte, 1, MSG_DONTWAIT);
        closed = got == 0 || (got < 0 && errno == ECONNRESET);
        return closed;
    });
}

// Reads from `fd` (while pumping the listener) until `count` packets arrived in `framing`.
std::vector<Bytes> readPackets(TcpListener& listener, int fd, Framing framing, size_t count) {
    StreamDecoder decoder(framing);
    std::vector<Bytes> packets;
    uint8_t buffer[4096];
    pumpUntil(listener, [](const uint8_t*, size_t, const sockaddr_storage&, uint32_t) {}, [&] {
        const ssize_t got = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (got > 0)
            decoder.feed(buffer, static_cast<size_t>(got),
                         [&](const uint8_t* data, size_t size) { packets.emplace_back(data, data + size); });
        return packets.size() >= count;
    });
    return packets;
}
}  // namespace

TEST_CASE("tcp: packets in both framings arrive with their peer, replies go back in the same framing") {
    TcpListener listener;
    std::string error;
    REQUIRE_MESSAGE(listener.open("127.0.0.1", 0, error), error);
    REQUIRE(listener.boundPort() != 0);

    std::vector<Received> received;
    const TcpListener::PacketHandler onPacket = [&](const uint8_t* data, size_t size, const sockaddr_storage& peer,
                                                    uint32_t connection) {
        received.push_back({Bytes(data, data + size), peer, connection});
        // Echo, reversed, so the reply differs from the request.
        const Bytes reply(std::make_reverse_iterator(data + size), std::make_reverse_iterator(data));
        CHECK(listener.send(connection, reply.data(), reply.size()));
    };

    const int slipClient = connectTo("127.0.0.1", listener.boundPort());
    const int prefixClient = connectTo("127.0.0.1", listener.boundPort());
    const Bytes first = oscMessage(1), second = oscMessage(2), third = oscMessage(3);
    sendAll(slipClient, frame(Framing::Slip, {first, second}));
    sendAll(prefixClient, frame(Framing::LengthPrefix, {third}));
    REQUIRE(pumpUntil(listener, onPacket, [&] { return received.size() == 3; }));

    // Order between the two connections is not defined; within one it is.
    std::vector<Received> fromSlip, fromPrefix;
    for (const Received& r : received) (portOf(r.peer) == localPort(slipClient) ? fromSlip : fromPrefix).push_back(r);
    REQUIRE(fromSlip.size() == 2);
    REQUIRE(fromPrefix.size() == 1);
    CHECK(fromSlip[0].packet == first);
    CHECK(fromSlip[1].packet == second);
    CHECK(fromPrefix[0].packet == third);
    CHECK(portOf(fromPrefix[0].peer) == localPort(prefixClient));
    CHECK(fromSlip[0].peer.ss_family == AF_INET);
    CHECK(fromSlip[0].connection == fromSlip[1].connection);
    CHECK(fromSlip[0].connection != fromPrefix[0].connection);

    const std::vector<Bytes> slipReplies = readPackets(listener, slipClient, Framing::Slip, 2);
    REQUIRE(slipReplies.size() == 2);
    CHECK(slipReplies[0] == Bytes(first.rbegin(), first.rend()));
    CHECK(slipReplies[1] == Bytes(second.rbegin(), second.rend()));
    const std::vector<Bytes> prefixReplies = readPackets(listener, prefixClient, Framing::LengthPrefix, 1);
    REQUIRE(prefixReplies.size() == 1);
    CHECK(prefixReplies[0] == Bytes(third.rbegin(), third.rend()));

    CHECK(listener.counters().accepted == 2);
    CHECK(listener.counters().packets == 3);
    CHECK(listener.counters().repliesSent == 3);
    CHECK(listener.connectionCount() == 2);

    close(slipClient);
    REQUIRE(pumpUntil(listener, onPacket, [&] { return listener.connectionCount() == 1; }));
    CHECK(listener.counters().closedByPeer == 1);
    CHECK(listener.counters().closedOnError == 0);
    close(prefixClient);
    listener.closeAll();
    CHECK(listener.connectionCount() == 0);
}

TEST_CASE("tcp: IPv6 loopback works when the machine has it") {
    TcpListener listener;
    std::string error;
    if (!listener.open("::1", 0, error)) {
        MESSAGE("no IPv6 loopback here (" << error << "); not tested");
        return;
    }
    std::vector<Received> received;
    const TcpListener::PacketHandler onPacket = [&](const uint8_t* data, size_t size, const sockaddr_storage& peer,
                                                    uint32_t connection) {
        received.push_back({Bytes(data, data + size), peer, connection});
    };
    const int client = connectTo("::1", listener.boundPort());
    sendAll(client, frame(Framing::LengthPrefix, {oscMessage(6)}));
    REQUIRE(pumpUntil(listener, onPacket, [&] { return received.size() == 1; }));
    CHECK(received[0].peer.ss_family == AF_INET6);
    CHECK(portOf(received[0].peer) == localPort(client));
    close(client);
}

TEST_CASE("tcp: open() says why it cannot listen") {
    TcpListener first;
    std::string error;
    REQUIRE(first.open("127.0.0.1", 0, error));
    TcpListener second;
    CHECK_FALSE(second.open("127.0.0.1", first.boundPort(), error));
    CHECK(error.find("another program uses this port") != std::string::npos);
    CHECK_FALSE(second.open("localhost:80", 0, error));
    CHECK(error.find("not an IPv4 or IPv6 address") != std::string::npos);
    CHECK_FALSE(second.open("192.0.2.1", 0, error));  // TEST-NET-1: no interface has it
    CHECK(error.find("no interface has this address") != std::string::npos);
}

TEST_CASE("tcp: one connection above the limit is accepted and closed at once, and counted") {
    TcpListenerOptions options;
    options.maxConnections = 2;
    TcpListener listener(options);
    std::string error;
    REQUIRE(listener.open("127.0.0.1", 0, error));
    const auto ignore = [](const uint8_t*, size_t, const sockaddr_storage&, uint32_t) {};
    const int a = connectTo("127.0.0.1", listener.boundPort());
    const int b = connectTo("127.0.0.1", listener.boundPort());
    REQUIRE(pumpUntil(listener, ignore, [&] { return listener.connectionCount() == 2; }));
    const int c = connectTo("127.0.0.1", listener.boundPort());
    REQUIRE(pumpUntil(listener, ignore, [&] { return listener.counters().refusedLimit == 1; }));
    CHECK(closedByServer(listener, c));
    CHECK(listener.connectionCount() == 2);
    CHECK(listener.counters().accepted == 2);

    // A slot that frees up is available again.
    close(a);
    REQUIRE(pumpUntil(listener, ignore, [&] { return listener.connectionCount() == 1; }));
    const int d = connectTo("127.0.0.1", listener.boundPort());
    REQUIRE(pumpUntil(listener, ignore, [&] { return listener.connectionCount() == 2; }));
    CHECK(listener.counters().accepted == 3);
    for (int fd : {b, c, d}) close(fd);
}

TEST_CASE("tcp: a peer the allow list does not admit is closed at once, and counted") {
    TcpListenerOptions options;
    std::string error;
    REQUIRE(options.allow.add("10.0.0.0/8", error));
    TcpListener listener(options);
    REQUIRE(listener.open("127.0.0.1", 0, error));
    const int client = connectTo("127.0.0.1", listener.boundPort());
    bool delivered = false;
    sendAll(client, frame(Framing::Slip, {oscMessage(1)}));
    REQUIRE(pumpUntil(
        listener, [&](const uint8_t*, size_t, const sockaddr_storage&, uint32_t) { delivered = true; },
        [&] { return listener.counters().refusedSender == 1; }));
    CHECK(closedByServer(listener, client));
    CHECK_FALSE(delivered);
    CHECK(listener.connectionCount() == 0);
    CHECK(listener.counters().accepted == 0);
    close(client);
}

TEST_CASE("tcp: a client that never reads does not block the server; its replies are dropped and counted") {
    TcpListenerOptions options;
    options.maxOutgoingBytes = size_t{16} * 1024;
    options.sendBufferBytes = 4096;
    TcpListener listener(options);
    std::string error;
    REQUIRE(listener.open("127.0.0.1", 0, error));
    uint32_t connection = 0;
    const TcpListener::PacketHandler onPacket = [&](const uint8_t*, size_t, const sockaddr_storage&, uint32_t id) {
        connection = id;
    };
    const int client = connectTo("127.0.0.1", listener.boundPort(), 4096);
    // Nothing can be sent before the connection's framing is known.
    REQUIRE(pumpUntil(listener, onPacket, [&] { return listener.connectionCount() == 1; }));
    const Bytes reply = makePacket(1000, 9);
    CHECK_FALSE(listener.send(1, reply.data(), reply.size()));  // ids start at 1
    CHECK(listener.counters().repliesDropped == 1);

    sendAll(client, frame(Framing::LengthPrefix, {oscMessage(1)}));
    REQUIRE(pumpUntil(listener, onPacket, [&] { return connection != 0; }));

    // The kernel's buffers take some, the listener's 16 KiB the rest; then send() refuses.
    size_t accepted = 0;
    while (accepted < 100'000 && listener.send(connection, reply.data(), reply.size())) ++accepted;
    REQUIRE(accepted < 100'000);
    CHECK(accepted >= (size_t{16} * 1024) / reply.size());
    CHECK(listener.counters().repliesDropped == 2);
    CHECK(listener.counters().repliesSent == accepted);
    CHECK_FALSE(listener.send(connection, reply.data(), reply.size()));
    CHECK(listener.counters().repliesDropped == 3);
    CHECK(listener.connectionCount() == 1);

    // Once the client reads, the waiting replies drain (whole, in order) and send() works again.
    const std::vector<Bytes> replies = readPackets(listener, client, Framing::LengthPrefix, accepted);
    CHECK(replies.size() == accepted);
    for (const Bytes& r : replies) CHECK(r == reply);
    CHECK(listener.send(connection, reply.data(), reply.size()));
    CHECK(listener.send(connection + 1000, reply.data(), reply.size()) == false);  // no such connection
    close(client);
}

TEST_CASE("tcp: garbage, an oversize packet and a stalled packet close the connection, counted") {
    TcpListenerOptions options;
    options.maxPacketBytes = 1024;
    options.stalledPacketNs = 50'000'000;
    TcpListener listener(options);
    std::string error;
    REQUIRE(listener.open("127.0.0.1", 0, error));
    size_t packets = 0;
    const TcpListener::PacketHandler onPacket = [&](const uint8_t*, size_t, const sockaddr_storage&, uint32_t) {
        ++packets;
    };
    const int garbage = connectTo("127.0.0.1", listener.boundPort());
    sendAll(garbage, Bytes{'G', 'E', 'T', ' ', '/', '\r', '\n'});
    CHECK(closedByServer(listener, garbage));
    CHECK(listener.counters().framingErrors == 1);

    const int oversize = connectTo("127.0.0.1", listener.boundPort());
    sendAll(oversize, Bytes{0, 0, 0x04, 0x04});  // 1028 bytes announced
    CHECK(closedByServer(listener, oversize));
    CHECK(listener.counters().oversize == 1);

    const int stalled = connectTo("127.0.0.1", listener.boundPort());
    sendAll(stalled, frame(Framing::Slip, {oscMessage(1)}));
    REQUIRE(pumpUntil(listener, onPacket, [&] { return packets == 1; }));
    sendAll(stalled, Bytes{slip::kEnd, '/', 'a', 'b'});  // and never the END
    CHECK(closedByServer(listener, stalled));
    CHECK(listener.counters().stalled == 1);
    CHECK(packets == 1);

    CHECK(listener.counters().closedOnError == 3);
    CHECK(listener.connectionCount() == 0);
    for (int fd : {garbage, oversize, stalled}) close(fd);
}

TEST_CASE("tcp: an idle connection is closed only when an idle limit is set") {
    TcpListenerOptions options;
    options.idleNs = 50'000'000;
    TcpListener listener(options);
    std::string error;
    REQUIRE(listener.open("127.0.0.1", 0, error));
    const int client = connectTo("127.0.0.1", listener.boundPort());
    CHECK(closedByServer(listener, client));
    CHECK(listener.counters().idle == 1);
    CHECK(listener.counters().closedOnError == 0);  // silence is not an error
    close(client);
}

TEST_CASE("tcp: with every place taken, a newcomer closes the connection silent the longest") {
    TcpListenerOptions options;
    options.maxConnections = 2;
    options.evictQuietNs = 100'000'000;
    TcpListener listener(options);
    std::string error;
    REQUIRE(listener.open("127.0.0.1", 0, error));
    size_t packets = 0;
    const auto onPacket = [&](const uint8_t*, size_t, const sockaddr_storage&, uint32_t) { ++packets; };
    const int talker = connectTo("127.0.0.1", listener.boundPort());
    const int silent = connectTo("127.0.0.1", listener.boundPort());
    REQUIRE(pumpUntil(listener, onPacket, [&] { return listener.connectionCount() == 2; }));
    usleep(150'000);
    sendAll(talker, frame(Framing::LengthPrefix, {oscMessage(1)}));
    REQUIRE(pumpUntil(listener, onPacket, [&] { return packets == 1; }));
    const int newcomer = connectTo("127.0.0.1", listener.boundPort());
    REQUIRE(pumpUntil(listener, onPacket, [&] { return listener.counters().evicted == 1; }));
    CHECK(closedByServer(listener, silent));
    CHECK(listener.connectionCount() == 2);
    CHECK(listener.counters().refusedLimit == 0);
    sendAll(talker, frame(Framing::LengthPrefix, {oscMessage(2)}));
    sendAll(newcomer, frame(Framing::LengthPrefix, {oscMessage(3)}));
    CHECK(pumpUntil(listener, onPacket, [&] { return packets == 3; }));
    for (int fd : {talker, silent, newcomer}) close(fd);
}
