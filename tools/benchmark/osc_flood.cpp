// sustain-osc-flood: sends OSC messages over UDP at a paced rate, for the benchmark.
//
// Each distinct message is serialised once with liblo (lo_message_serialise); the loop
// then only calls sendto() on a connected UDP socket, so the sender costs one system call
// per message and can reach hundreds of thousands of messages per second. Pacing follows
// CLOCK_MONOTONIC: message i is due at start + i / rate; whatever is due is sent at once
// in a burst (at most --burst), and the sender sleeps (absolute clock_nanosleep) until the
// next one is due. A sender that falls behind sends what is due back to back and takes
// longer than --seconds: rate_achieved says what it managed.
//
// Values alternate between --values (so the engine's coalescing is exercised: every
// message differs from the one before); the LAST message always carries --final, a value
// none of the others has, so a reader can check that the engine ended on exactly it.
//
// Prints one JSON object: sent, seconds, rate_achieved, send_errors, last_value, ...
// Exit: 0 all messages sent; 1 some sends failed; 2 usage or setup error.
#include <arpa/inet.h>
#include <lo/lo.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "shm/clock.h"
#include "sustain_version.h"

namespace {

/// One OSC message: the fixed leading arguments (`--prefix`, "i:1000" or "s:freq"), then
/// a float; serialised once. Throws on liblo failure.
std::vector<char> serialise(const std::string& address, const std::vector<std::string>& prefix, float value) {
    lo_message message = lo_message_new();
    for (const std::string& argument : prefix) {
        const std::string text = argument.substr(2);
        if (argument.rfind("i:", 0) == 0) lo_message_add_int32(message, static_cast<int32_t>(std::stol(text)));
        else lo_message_add_string(message, text.c_str());
    }
    lo_message_add_float(message, value);
    size_t size = lo_message_length(message, address.c_str());
    std::vector<char> bytes(size);
    void* written = lo_message_serialise(message, address.c_str(), bytes.data(), &size);
    lo_message_free(message);
    if (written == nullptr) throw std::runtime_error("lo_message_serialise failed for " + address);
    bytes.resize(size);
    return bytes;
}

void sleepUntil(uint64_t ns) {
    timespec when{static_cast<time_t>(ns / 1'000'000'000ull), static_cast<long>(ns % 1'000'000'000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &when, nullptr) == EINTR) {
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"sustain-osc-flood: paced OSC over UDP (pre-serialised messages, one sendto each)"};
    app.set_version_flag("--version", std::string("sustain-osc-flood ") + SUSTAIN_VERSION);
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    double rate = 1000.0;
    double seconds = 0.0;
    uint64_t count = 0;
    std::string address = "/engine/freq";
    std::vector<double> values = {440.0, 441.0};
    double finalValue = 442.0;
    unsigned burst = 64;
    std::vector<std::string> prefix;
    app.add_option("--host", host, "IPv4 address to send to")->capture_default_str();
    app.add_option("--port", port, "UDP port of sustaind")->required();
    app.add_option("--rate", rate, "messages per second (0: as fast as possible)")->capture_default_str();
    app.add_option("--seconds", seconds, "send for this long (rate * seconds messages)");
    app.add_option("--count", count, "send this many messages (the last one carries --final)");
    app.add_option("--address", address, "OSC address; the --prefix arguments, then one float")->capture_default_str();
    app.add_option("--prefix", prefix, "fixed arguments before the float, each i:INT or s:TEXT (scsynth's /n_set 1000 freq)")
        ->delimiter(',')
        ->check([](const std::string& a) {
            if (a.rfind("s:", 0) == 0) return std::string();
            const bool isInt = a.rfind("i:", 0) == 0 && a.size() > 2 && a.size() < 12 &&
                               a.find_first_not_of("-0123456789", 2) == std::string::npos;
            return isInt ? std::string() : std::string("expected i:INT or s:TEXT");
        });
    app.add_option("--values", values, "values to alternate between")->capture_default_str()->delimiter(',');
    app.add_option("--final", finalValue, "value of the last message (differs from --values)")
        ->capture_default_str();
    app.add_option("--burst", burst, "at most this many messages back to back")
        ->check(CLI::Range(1u, 4096u))
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    if ((seconds > 0.0) == (count > 0)) {
        std::fprintf(stderr, "sustain-osc-flood: give exactly one of --seconds and --count\n");
        return 2;
    }
    if (rate < 0.0 || !std::isfinite(rate) || (rate == 0.0 && count == 0)) {
        std::fprintf(stderr, "sustain-osc-flood: --rate %g: expected a positive rate (or 0 with --count)\n", rate);
        return 2;
    }
    if (values.empty() || std::find(values.begin(), values.end(), finalValue) != values.end()) {
        std::fprintf(stderr, "sustain-osc-flood: --final %g must differ from every --values entry\n", finalValue);
        return 2;
    }
    if (count == 0) count = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(rate * seconds)));

    std::vector<std::vector<char>> messages;
    messages.reserve(values.size());
    for (double v : values) messages.push_back(serialise(address, prefix, static_cast<float>(v)));
    const std::vector<char> last = serialise(address, prefix, static_cast<float>(finalValue));

    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &to.sin_addr) != 1) {
        std::fprintf(stderr, "sustain-osc-flood: --host \"%s\": not an IPv4 address\n", host.c_str());
        return 2;
    }
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    // Connected: the kernel resolves the route once, and a closed port shows up as
    // ECONNREFUSED (counted in send_errors) instead of vanishing.
    if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
        std::fprintf(stderr, "sustain-osc-flood: cannot open a UDP socket to %s:%u: %s\n", host.c_str(), port,
                     std::strerror(errno));
        return 2;
    }

    uint64_t sent = 0;
    uint64_t errors = 0;
    uint64_t maxBehind = 0;  // most messages that were due at once
    auto sendOne = [&](const std::vector<char>& bytes) {
        for (;;) {
            if (sendto(fd, bytes.data(), bytes.size(), 0, nullptr, 0) == static_cast<ssize_t>(bytes.size())) {
                ++sent;
                return;
            }
            if (errno == EINTR) continue;
            ++errors;
            return;
        }
    };

    const uint64_t start = sustain::monotonicNs();
    const double nsPerMessage = rate > 0.0 ? 1e9 / rate : 0.0;
    uint64_t index = 0;  // messages attempted so far
    while (index + 1 < count) {
        uint64_t due = count - 1;
        if (rate > 0.0) {
            const uint64_t elapsed = sustain::monotonicNs() - start;
            due = std::min<uint64_t>(count - 1, static_cast<uint64_t>(static_cast<double>(elapsed) / nsPerMessage) + 1);
        }
        if (due > index) {
            maxBehind = std::max(maxBehind, due - index);
            const uint64_t end = std::min<uint64_t>(due, index + burst);
            for (; index < end; ++index) sendOne(messages[index % messages.size()]);
        } else {
            sleepUntil(start + static_cast<uint64_t>(static_cast<double>(index) * nsPerMessage));
        }
    }
    if (rate > 0.0) sleepUntil(start + static_cast<uint64_t>(static_cast<double>(index) * nsPerMessage));
    sendOne(last);
    const double elapsedS = static_cast<double>(sustain::monotonicNs() - start) / 1e9;
    close(fd);

    const nlohmann::json out = {{"sent", sent},
                                {"seconds", elapsedS},
                                {"rate_achieved", elapsedS > 0.0 ? static_cast<double>(sent) / elapsedS : 0.0},
                                {"send_errors", errors},
                                {"target_rate", rate},
                                {"count", count},
                                {"address", address},
                                {"values", values},
                                {"last_value", static_cast<double>(static_cast<float>(finalValue))},
                                {"bytes_per_message", last.size()},
                                {"max_due_at_once", maxBehind}};
    std::printf("%s\n", out.dump().c_str());
    return errors == 0 ? 0 : 1;
}
