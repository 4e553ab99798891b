// Clients that come and go (docs/clients.md): leases, eviction of the quietest, clients
// gone unreachable, the proof asked of untrusted subscribers, the schedule's horizon and
// per-sender share, NTP eras, and denormals kept out of the audio path.
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/rt/float_mode.h"
#include "osc/command_router.h"
#include "osc/feedback.h"
#include "osc/socket_address.h"
#include "shm/clock.h"
#include "shm/frame_clock.h"
#include "shm/segment.h"
#include "tests/unit/segment_fixture.h"

using namespace sustain;

namespace {
sockaddr_storage endpoint(const char* host, uint16_t port) {
    sockaddr_storage address{};
    auto& in = reinterpret_cast<sockaddr_in&>(address);
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    inet_pton(AF_INET, host, &in.sin_addr);
    return address;
}

// What Feedback sent: where, and the OSC address of each packet.
struct Sent {
    sockaddr_storage to;
    std::string path;
};

struct Harness {
    std::unique_ptr<Segment> segment = makeSegment();
    std::vector<Sent> sent;
    Feedback feedback{*segment, 4, nullptr,
                      [this](const sockaddr_storage& to, uint32_t, const uint8_t* data, size_t) {
                          sent.push_back({to, reinterpret_cast<const char*>(data)});
                          return true;
                      },
                      10'000'000'000ull};  // a lease of 10 s

    size_t sentTo(const sockaddr_storage& to, const std::string& path) const {
        size_t n = 0;
        for (const Sent& s : sent) n += sameEndpoint(s.to, to) && s.path == path ? 1 : 0;
        return n;
    }
};
constexpr uint64_t kSecond = 1'000'000'000ull;
}  // namespace

TEST_CASE("clients: a full table takes a newcomer in place of the client heard from least recently") {
    Harness h;
    for (uint16_t i = 0; i < Feedback::kMaxSubscribers; ++i)
        CHECK(h.feedback.subscribe(endpoint("127.0.0.1", 10000 + i), 0, true, {}, true, kSecond + i).value == 1);
    CHECK(h.segment->osc.subscribersNow.load() == Feedback::kMaxSubscribers);
    // The first one talks again; the second is now the quietest.
    h.feedback.heard(endpoint("127.0.0.1", 10000), 2 * kSecond);
    const auto newcomer = endpoint("127.0.0.1", 20000);
    CHECK(h.feedback.subscribe(newcomer, 0, true, {}, true, 3 * kSecond).value == 1);
    CHECK(h.segment->osc.subscribersNow.load() == Feedback::kMaxSubscribers);
    CHECK(h.segment->osc.leftEvicted.load() == 1);
    CHECK(h.sentTo(endpoint("127.0.0.1", 10001), "/engine/notify") == 1);  // told so
    CHECK(h.sentTo(endpoint("127.0.0.1", 10000), "/engine/notify") == 0);
    // The newcomer hears changes; the evicted one does not.
    h.feedback.changed(kParamMasterGain, nullptr);
    h.feedback.flush(3 * kSecond);
    CHECK(h.sentTo(newcomer, "/engine/gain") == 1);
    CHECK(h.sentTo(endpoint("127.0.0.1", 10001), "/engine/gain") == 0);
}

TEST_CASE("clients: a flood of drive-by subscriptions evicts its own, not the clients that keep talking") {
    Harness h;
    for (uint16_t i = 0; i < Feedback::kMaxSubscribers - 1; ++i) {
        h.feedback.subscribe(endpoint("127.0.0.1", 10000 + i), 0, true, {}, true, kSecond);
        h.feedback.heard(endpoint("127.0.0.1", 10000 + i), 2 * kSecond);  // they talk again
    }
    for (uint16_t i = 0; i < 100; ++i)  // each subscribes and is never heard from again
        h.feedback.subscribe(endpoint("127.0.0.1", 30000 + i), 0, true, {}, true, 3 * kSecond + i);
    CHECK(h.segment->osc.leftEvicted.load() == 99);
    h.feedback.changed(kParamMasterGain, nullptr);
    h.feedback.flush(4 * kSecond);
    for (uint16_t i = 0; i < Feedback::kMaxSubscribers - 1; ++i)
        CHECK(h.sentTo(endpoint("127.0.0.1", 10000 + i), "/engine/gain") == 1);
    CHECK(h.sentTo(endpoint("127.0.0.1", 30099), "/engine/gain") == 1);  // the last newcomer is heard too
}

TEST_CASE("clients: a lease ends after its silence unless any message renews it") {
    Harness h;
    const auto talker = endpoint("127.0.0.1", 10000);
    const auto listener = endpoint("127.0.0.1", 10001);
    h.feedback.subscribe(talker, 0, true, {}, true, kSecond);
    h.feedback.subscribe(listener, 0, true, {}, true, kSecond);
    h.feedback.heard(talker, 9 * kSecond);
    h.feedback.flush(12 * kSecond);
    CHECK(h.segment->osc.leftLeaseExpired.load() == 1);
    CHECK(h.segment->osc.subscribersNow.load() == 1);
    CHECK(h.sentTo(listener, "/engine/notify") == 1);  // told: it may subscribe again
    // /engine/notify 1 again renews explicitly.
    CHECK(h.feedback.subscribe(talker, 0, true, {}, true, 18 * kSecond).value == 1);
    h.feedback.flush(20 * kSecond);
    CHECK(h.segment->osc.subscribersNow.load() == 1);
    h.feedback.flush(29 * kSecond);
    CHECK(h.segment->osc.subscribersNow.load() == 0);
}

TEST_CASE("clients: an ICMP error for a client's address ends it at once, surfaces included") {
    Harness h;
    const auto gone = endpoint("127.0.0.1", 10000);
    const auto stays = endpoint("127.0.0.1", 10001);
    h.feedback.subscribe(gone, 0, true, {}, true, kSecond);
    h.feedback.subscribe(stays, 0, true, {}, true, kSecond);
    // A surface sends from one port and hears at another: the error names the latter.
    const auto surface = endpoint("192.168.1.20", 50123);
    CHECK(h.feedback.registerSurface(surface, 0, 9000, true, kSecond));
    h.feedback.unreachable(gone);
    h.feedback.unreachable(withPort(surface, 9000));
    CHECK(h.segment->osc.leftUnreachable.load() == 2);
    CHECK(h.segment->osc.subscribersNow.load() == 1);
    CHECK(h.segment->osc.surfacesNow.load() == 0);
}

TEST_CASE("clients: an untrusted subscriber must echo its token; a surface gets nothing") {
    Harness h;
    const auto lan = endpoint("192.168.1.20", 57120);
    const Feedback::NotifyReply asked = h.feedback.subscribe(lan, 0, true, {}, false, kSecond);
    CHECK(std::string(asked.path) == "/engine/notify.proof");
    CHECK(h.segment->osc.subscribersNow.load() == 0);
    // Another endpoint's token, or a guess, does not do.
    const int32_t other = h.feedback.subscribe(endpoint("192.168.1.21", 57120), 0, true, {}, false, kSecond).value;
    CHECK(other != asked.value);
    CHECK(h.feedback.subscribe(lan, 0, true, other, false, kSecond).value == 0);
    CHECK(h.segment->osc.proofsFailed.load() == 1);
    const Feedback::NotifyReply done = h.feedback.subscribe(lan, 0, true, asked.value, false, kSecond);
    CHECK(std::string(done.path) == "/engine/notify");
    CHECK(done.value == 1);
    CHECK(h.segment->osc.subscribersNow.load() == 1);
    CHECK(h.segment->osc.proofsAsked.load() == 2);
    // Nothing but the token reply went anywhere before the proof (no snapshot).
    CHECK(h.sent.empty());
    CHECK_FALSE(h.feedback.registerSurface(endpoint("192.168.1.30", 50000), 0, 9000, false, kSecond));
    CHECK(h.segment->osc.surfacesUnproven.load() == 1);
    CHECK(h.segment->osc.surfacesNow.load() == 0);
}

TEST_CASE("reply ports: a host's replies and feedback go to the port it names; on loopback, per sender") {
    Harness h;
    const auto pd = endpoint("192.168.1.20", 40001);  // [netsend] sends from here ...
    const auto pdListens = endpoint("192.168.1.20", 9001);  // ... [netreceive 9001] listens here
    CHECK(h.feedback.subscribe(pd, 0, true, {}, true, kSecond).value == 1);
    h.feedback.setReplyPort(pd, 9001, kSecond);
    CHECK(sameEndpoint(h.feedback.replyAddress(pd), pdListens));
    // Another sending port of the same host: the same reply port.
    CHECK(sameEndpoint(h.feedback.replyAddress(endpoint("192.168.1.20", 40002)), pdListens));
    h.feedback.changed(kParamMasterGain, nullptr);
    h.feedback.flush(kSecond);
    CHECK(h.sentTo(pdListens, "/engine/gain") == 1);  // the subscription followed
    CHECK(h.sentTo(pd, "/engine/gain") == 0);
    // Its own change is not sent back, whichever port it came from.
    h.feedback.changed(kParamMasterGain, &pd);
    h.feedback.flush(2 * kSecond);
    CHECK(h.sentTo(pdListens, "/engine/gain") == 1);
    // Subscribing again from another port finds the same subscription (known by where it hears).
    CHECK(h.feedback.subscribe(endpoint("192.168.1.20", 40003), 0, true, {}, true, 3 * kSecond).value == 1);
    CHECK(h.segment->osc.subscribersNow.load() == 1);

    // On loopback every program shares the host: the port applies to its sender only.
    const auto localPd = endpoint("127.0.0.1", 40001);
    h.feedback.setReplyPort(localPd, 9002, kSecond);
    CHECK(sameEndpoint(h.feedback.replyAddress(localPd), endpoint("127.0.0.1", 9002)));
    CHECK(sameEndpoint(h.feedback.replyAddress(endpoint("127.0.0.1", 40005)), endpoint("127.0.0.1", 40005)));
    h.feedback.setReplyPort(localPd, 0, kSecond);
    CHECK(sameEndpoint(h.feedback.replyAddress(localPd), localPd));
}

TEST_CASE("schedule: the horizon, each sender's share, the bound") {
    auto segment = makeSegment();
    CommandRouter router(*segment, 60 * kSecond);
    const auto now = static_cast<int64_t>(monotonicNs());
    const uint64_t wrongClock = endpointKey(endpoint("127.0.0.1", 10000));
    CHECK(router.submitTimed(kParamMasterGain, 0.5, 0, now + 61 * static_cast<int64_t>(kSecond), wrongClock) ==
          TimedAdmission::TooFarAhead);
    const int64_t soon = now + 50 * static_cast<int64_t>(kSecond);
    const uint32_t share = kMaxTimedEvents / kTimedSenderShares;
    for (uint32_t i = 0; i < share; ++i)
        REQUIRE(router.submitTimed(kParamMasterGain, 0.5, 0, soon, wrongClock) == TimedAdmission::Scheduled);
    CHECK(router.submitTimed(kParamMasterGain, 0.5, 0, soon, wrongClock) == TimedAdmission::SenderQuota);
    // Others still get in, up to the schedule's bound.
    uint32_t admitted = 0;
    for (uint16_t sender = 1; sender <= kTimedSenderShares; ++sender)
        for (uint32_t i = 0; i < share; ++i)
            admitted += router.submitTimed(kParamMasterGain, 0.5, 0, soon, endpointKey(endpoint("127.0.0.1", 10000 + sender))) ==
                                TimedAdmission::Scheduled ? 1 : 0;
    CHECK(admitted == kMaxTimedEvents - share);
    CHECK(router.submitTimed(kParamMasterGain, 0.5, 0, soon, endpointKey(endpoint("127.0.0.1", 30000))) ==
          TimedAdmission::ScheduleFull);
}

TEST_CASE("timetags: the NTP era nearest to now, across the 2036 wrap") {
    constexpr int64_t kWrapUnixNs = (4294967296LL - kNtpToUnixSeconds) * 1'000'000'000LL;  // 2036-02-07T06:28:16Z
    const int64_t today = 1'796'342'400LL * 1'000'000'000LL;                                    // 2026-12-04
    CHECK(ntpToUnixNs(unixNsToNtp(today + 123'456'789), today) == today + 123'456'789);
    // A second before and after the wrap, judged a minute before and after it.
    for (const int64_t now : {kWrapUnixNs - 60'000'000'000LL, kWrapUnixNs + 60'000'000'000LL}) {
        CHECK(ntpToUnixNs(unixNsToNtp(kWrapUnixNs - 1'000'000'000LL), now) == kWrapUnixNs - 1'000'000'000LL);
        CHECK(ntpToUnixNs(unixNsToNtp(kWrapUnixNs + 1'000'000'000LL), now) == kWrapUnixNs + 1'000'000'000LL);
    }
    CHECK((unixNsToNtp(kWrapUnixNs + 1'000'000'000LL) >> 32) == 1);  // the wire has wrapped
}

TEST_CASE("denormals: the audio thread's mode flushes them to zero") {
    bool flushed = false;
    float product = 1.0f;
    std::thread audio([&] {
        flushDenormals();
        flushed = denormalsFlushed();
        volatile float tiny = 1e-30f;
        volatile float factor = 1e-10f;
        product = tiny * factor;  // 1e-40 is a denormal float
    });
    audio.join();
    CHECK(flushed);
    CHECK(product == 0.0f);
    CHECK(isLoopback(endpoint("127.0.0.2", 1)));
    CHECK_FALSE(isLoopback(endpoint("192.168.1.2", 1)));
    CHECK(endpointKey(endpoint("10.0.0.1", 5)) == endpointKey(endpoint("10.0.0.1", 5)));
    CHECK(endpointKey(endpoint("10.0.0.1", 5)) != endpointKey(endpoint("10.0.0.1", 6)));
}
