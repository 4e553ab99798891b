// Unit tests of the recorder's ring: all-or-nothing blocks, interleaving, wrap-around.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "tools/audio/sample_ring.h"

using sustain::audio::SampleRing;

TEST_CASE("sample ring: interleaves channels and rounds capacity up to a power of two") {
    SampleRing ring(10);
    CHECK(ring.capacity() == 16);
    const float left[3] = {1, 2, 3};
    const float right[3] = {-1, -2, -3};
    const float* channels[2] = {left, right};
    REQUIRE(ring.tryWriteInterleaved(channels, 2, 3));
    float out[16] = {};
    REQUIRE(ring.read(out, 16) == 6);
    const float expected[6] = {1, -1, 2, -2, 3, -3};
    for (int i = 0; i < 6; ++i) CHECK(out[i] == expected[i]);
    CHECK(ring.read(out, 16) == 0);
}

TEST_CASE("sample ring: a block that does not fit is refused whole, never half-written") {
    SampleRing ring(8);
    std::vector<float> block(6, 1.0f);
    const float* channels[1] = {block.data()};
    REQUIRE(ring.tryWriteInterleaved(channels, 1, 6));
    CHECK_FALSE(ring.tryWriteInterleaved(channels, 1, 3));
    CHECK(ring.sizeApprox() == 6);
    REQUIRE(ring.tryWriteInterleaved(channels, 1, 2));
    CHECK(ring.sizeApprox() == 8);
}

TEST_CASE("sample ring: wraps around and keeps order across threads") {
    SampleRing ring(64);
    constexpr int kBlocks = 20000;
    constexpr int kFrames = 7;  // not a divisor of the capacity: blocks straddle the wrap
    std::thread producer([&] {
        std::vector<float> block(kFrames);
        const float* channels[1] = {block.data()};
        int next = 0;
        for (int b = 0; b < kBlocks;) {
            for (int i = 0; i < kFrames; ++i) block[static_cast<std::size_t>(i)] = static_cast<float>(next + i);
            if (ring.tryWriteInterleaved(channels, 1, kFrames)) {
                next += kFrames;
                ++b;
            } else {
                std::this_thread::yield();
            }
        }
    });
    float out[64];
    int expected = 0;
    bool inOrder = true;
    while (expected < kBlocks * kFrames) {
        const std::size_t got = ring.read(out, 64);
        for (std::size_t i = 0; i < got; ++i) inOrder = inOrder && out[i] == static_cast<float>(expected++);
        if (got == 0) std::this_thread::yield();
    }
    producer.join();
    CHECK(inOrder);
}
