// sustain-osc-query: sends one OSC message with liblo from a port of its own and prints
// every reply that arrives within --listen-ms, one JSON object per line. For tests and
// for people checking an engine by hand:
//   sustain-osc-query --port 8000 /engine/ping
//   sustain-osc-query --port 8000 --listen-ms 5000 /engine/notify 1
#include <lo/lo.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include "sustain_version.h"

namespace {

/// liblo packs arguments at 4-byte boundaries; lo_arg is an 8-byte union: read by copying.
template <typename T>
T argument(const lo_arg* a) {
    T value;
    std::memcpy(&value, a, sizeof value);
    return value;
}

int printReply(const char* path, const char* types, lo_arg** argv, int argc, lo_message, void*) {
    nlohmann::json args = nlohmann::json::array();
    for (int i = 0; i < argc; ++i) {
        switch (types[i]) {
            case LO_INT32: args.push_back(argument<int32_t>(argv[i])); break;
            case LO_FLOAT: args.push_back(argument<float>(argv[i])); break;
            case LO_DOUBLE: args.push_back(argument<double>(argv[i])); break;
            case LO_INT64: args.push_back(argument<int64_t>(argv[i])); break;
            case LO_STRING: case LO_SYMBOL: args.push_back(&argv[i]->s); break;
            default: args.push_back(std::string(1, types[i])); break;
        }
    }
    std::printf("%s\n", nlohmann::json({{"path", path}, {"types", types}, {"args", args}}).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    int port = 8000;
    int listenMs = 500;
    std::string path;
    std::vector<std::string> values;
    CLI::App app{"sustain-osc-query: send one OSC message and print the replies"};
    app.set_version_flag("--version", std::string("sustain-osc-query ") + SUSTAIN_VERSION);
    app.add_option("--host", host, "engine address")->capture_default_str();
    app.add_option("--port", port, "engine UDP port")->capture_default_str();
    app.add_option("--listen-ms", listenMs, "how long to print replies")->capture_default_str();
    app.add_option("path", path, "OSC address")->required();
    app.add_option("values", values, "arguments: integers as i, numbers with a point as f, else strings");
    CLI11_PARSE(app, argc, argv);

    lo_server server = lo_server_new_with_proto(nullptr, LO_UDP, nullptr);
    if (server == nullptr) {
        std::fprintf(stderr, "cannot open a UDP port for replies\n");
        return 2;
    }
    lo_server_add_method(server, nullptr, nullptr, printReply, nullptr);
    lo_address target = lo_address_new(host.c_str(), std::to_string(port).c_str());
    lo_message message = lo_message_new();
    for (const std::string& value : values) {
        char* end = nullptr;
        const long integer = std::strtol(value.c_str(), &end, 10);
        if (end != nullptr && *end == '\0' && !value.empty()) {
            lo_message_add_int32(message, static_cast<int32_t>(integer));
            continue;
        }
        const float number = std::strtof(value.c_str(), &end);
        if (end != nullptr && *end == '\0' && !value.empty())
            lo_message_add_float(message, number);
        else
            lo_message_add_string(message, value.c_str());
    }
    if (lo_send_message_from(target, server, path.c_str(), message) < 0) {
        std::fprintf(stderr, "send failed: %s\n", lo_address_errstr(target));
        return 2;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(listenMs);
    while (std::chrono::steady_clock::now() < deadline) lo_server_recv_noblock(server, 20);
    lo_message_free(message);
    lo_address_free(target);
    lo_server_free(server);
    return 0;
}
