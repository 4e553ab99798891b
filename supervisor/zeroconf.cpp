#include "supervisor/zeroconf.h"

#include <arpa/inet.h>
#include <avahi-client/client.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/domain.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/thread-watch.h>
#include <avahi-common/timeval.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace sustain {

namespace {
constexpr int kMaxRenames = 12;              // alternative names tried in a row before giving up
constexpr unsigned kReconnectDelayMs = 200;  // after avahi-daemon went away: a new client
constexpr unsigned kUnreachableRetryMs = 5000;  // no system D-Bus: try again this often

static_assert(AVAHI_IF_UNSPEC == -1 && AVAHI_PROTO_UNSPEC == -1 && AVAHI_PROTO_INET == 0 && AVAHI_PROTO_INET6 == 1,
              "ZeroconfScope spells avahi's values out");

bool sameAddress(const sockaddr* address, int family, const void* wanted) {
    if (address == nullptr || address->sa_family != family) return false;
    if (family == AF_INET)
        return std::memcmp(&reinterpret_cast<const sockaddr_in*>(address)->sin_addr, wanted, sizeof(in_addr)) == 0;
    return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, wanted, sizeof(in6_addr)) == 0;
}

/// The interface that has `wanted` (or, with `loopback`, the first loopback interface).
std::string findInterface(int family, const void* wanted, bool loopback) {
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return {};
    std::string found;
    for (const ifaddrs* entry = list; entry != nullptr && found.empty(); entry = entry->ifa_next) {
        if (loopback ? (entry->ifa_flags & IFF_LOOPBACK) != 0 : sameAddress(entry->ifa_addr, family, wanted))
            found = entry->ifa_name;
    }
    freeifaddrs(list);
    return found;
}
}  // namespace

/// avahi's C callbacks, handing over to the advertiser's members.
struct ZeroconfCallbacks {
    static void client(AvahiClient* client, AvahiClientState state, void* self) {
        static_cast<ZeroconfAdvertiser*>(self)->onClientState(client, state);
    }
    static void group(AvahiEntryGroup* group, AvahiEntryGroupState state, void* self) {
        static_cast<ZeroconfAdvertiser*>(self)->onGroupState(group, state);
    }
    static void retry(AvahiTimeout*, void* self) { static_cast<ZeroconfAdvertiser*>(self)->connect(); }
};

std::string defaultZeroconfName(const std::string& instance) { return "sustain (" + instance + ")"; }

bool validZeroconfName(const std::string& name, std::string& error) {
    if (!name.empty() && avahi_is_valid_service_name(name.c_str())) return true;
    error = "Zeroconf service name \"" + name + "\": " + std::to_string(name.size()) +
            " bytes; DNS-SD takes 1 to 63 bytes (choose a shorter one with --zeroconf-name)";
    return false;
}

bool zeroconfScopeFor(const std::string& bindAddress, ZeroconfScope& scope, std::string& error) {
    scope = ZeroconfScope{};
    in_addr v4{};
    in6_addr v6{};
    int family = AF_INET;
    const void* address = &v4;
    bool wildcard = false;
    if (inet_pton(AF_INET, bindAddress.c_str(), &v4) == 1) {
        scope.protocol = AVAHI_PROTO_INET;
        wildcard = v4.s_addr == htonl(INADDR_ANY);
        scope.loopbackOnly = (ntohl(v4.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, bindAddress.c_str(), &v6) == 1) {
        family = AF_INET6;
        address = &v6;
        wildcard = IN6_IS_ADDR_UNSPECIFIED(&v6);
        // A socket on :: takes IPv4 too (the kernel's default): advertise on both.
        scope.protocol = wildcard ? AVAHI_PROTO_UNSPEC : AVAHI_PROTO_INET6;
        scope.loopbackOnly = IN6_IS_ADDR_LOOPBACK(&v6);
    } else {
        error = "cannot advertise OSC bound to \"" + bindAddress + "\": not an IPv4 or IPv6 address";
        return false;
    }
    if (wildcard) return true;
    scope.interfaceName = findInterface(family, address, scope.loopbackOnly);
    if (scope.interfaceName.empty()) {
        if (scope.loopbackOnly) {
            error = "OSC listens on " + bindAddress + " (loopback), and this machine has no loopback interface to "
                    "advertise it on";
            return false;
        }
        return true;  // the address is on no interface we can see: let avahi-daemon choose
    }
    scope.interfaceIndex = static_cast<int>(if_nametoindex(scope.interfaceName.c_str()));
    if (scope.interfaceIndex == 0) {
        scope.interfaceIndex = AVAHI_IF_UNSPEC;
        scope.interfaceName.clear();
    }
    return true;
}

ZeroconfAdvertiser::ZeroconfAdvertiser(ZeroconfOptions options) : options_(std::move(options)) {}

ZeroconfAdvertiser::~ZeroconfAdvertiser() { stop(); }

std::string ZeroconfAdvertiser::describeServices() const {
    std::string text = "_osc._udp port " + std::to_string(options_.udpPort);
    if (options_.tcpPort != 0) text += " and _osc._tcp port " + std::to_string(options_.tcpPort);
    if (scope_.loopbackOnly) return text + ", on " + scope_.interfaceName + " only";
    if (scope_.interfaceIndex != AVAHI_IF_UNSPEC) return text + ", on " + scope_.interfaceName;
    return text + ", on every interface avahi-daemon serves";
}

bool ZeroconfAdvertiser::start(std::string& error) {
    name_ = options_.name.empty() ? defaultZeroconfName(options_.instance) : options_.name;
    if (!validZeroconfName(name_, error) || !zeroconfScopeFor(options_.bindAddress, scope_, error)) return false;
    if (scope_.loopbackOnly)
        spdlog::warn("Zeroconf: OSC listens on {} only, which no other machine can reach: advertised on the loopback "
                     "interface ({}) only, for clients on this machine; to be found on the network, use --bind "
                     "0.0.0.0 (with --allow)", options_.bindAddress, scope_.interfaceName);
    AvahiThreadedPoll* poll = avahi_threaded_poll_new();
    if (poll == nullptr) {
        error = "Zeroconf: cannot create avahi's poll thread";
        return false;
    }
    poll_ = poll;
    const AvahiPoll* api = avahi_threaded_poll_get(poll_);
    retry_ = api->timeout_new(api, nullptr, ZeroconfCallbacks::retry, this);
    connect();  // the thread does not run yet: the first callbacks come on this one
    if (avahi_threaded_poll_start(poll_) < 0) {
        if (client_ != nullptr) avahi_client_free(client_);
        client_ = nullptr;
        group_ = nullptr;
        avahi_threaded_poll_free(poll_);
        poll_ = nullptr;
        error = "Zeroconf: cannot start avahi's poll thread";
        return false;
    }
    return true;
}

void ZeroconfAdvertiser::stop() {
    if (poll_ == nullptr) return;
    avahi_threaded_poll_stop(poll_);
    if (client_ != nullptr) avahi_client_free(client_);  // frees the group: the services are withdrawn
    client_ = nullptr;
    group_ = nullptr;
    if (retry_ != nullptr) avahi_threaded_poll_get(poll_)->timeout_free(retry_);
    retry_ = nullptr;
    avahi_threaded_poll_free(poll_);
    poll_ = nullptr;
}

void ZeroconfAdvertiser::retryLater(unsigned delayMs) {
    timeval when{};
    avahi_elapse_time(&when, delayMs, 0);
    avahi_threaded_poll_get(poll_)->timeout_update(retry_, &when);
}

void ZeroconfAdvertiser::connect() {
    if (client_ != nullptr) {
        avahi_client_free(client_);  // a client that lost its daemon
        client_ = nullptr;
        group_ = nullptr;
    }
    int error = 0;
    // NO_FAIL: without avahi-daemon the client waits (CONNECTING) and registers once it appears.
    AvahiClient* client = avahi_client_new(avahi_threaded_poll_get(poll_), AVAHI_CLIENT_NO_FAIL,
                                           ZeroconfCallbacks::client, this, &error);
    if (client == nullptr) {
        if (!warnedUnreachable_)
            spdlog::warn("Zeroconf: cannot reach avahi-daemon ({}; is the system D-Bus running?): \"{}\" is not "
                         "advertised; trying again every {} s; the engine runs anyway",
                         avahi_strerror(error), name_, kUnreachableRetryMs / 1000);
        warnedUnreachable_ = true;
        retryLater(kUnreachableRetryMs);
        return;
    }
    client_ = client;
}

void ZeroconfAdvertiser::onClientState(AvahiClient* client, int state) {
    switch (static_cast<AvahiClientState>(state)) {
        case AVAHI_CLIENT_S_RUNNING:
            if (warnedUnreachable_) spdlog::info("Zeroconf: avahi-daemon is there: advertising \"{}\"", name_);
            warnedUnreachable_ = false;
            registerServices(client);
            break;
        case AVAHI_CLIENT_S_COLLISION:
        case AVAHI_CLIENT_S_REGISTERING:
            // The host name changes: withdraw; registered again once the client runs again.
            if (group_ != nullptr) avahi_entry_group_reset(group_);
            break;
        case AVAHI_CLIENT_CONNECTING:
            if (!warnedUnreachable_)
                spdlog::warn("Zeroconf: no avahi-daemon is running: \"{}\" is not advertised until one starts; the "
                             "engine runs anyway", name_);
            warnedUnreachable_ = true;
            break;
        case AVAHI_CLIENT_FAILURE:
            if (avahi_client_errno(client) == AVAHI_ERR_DISCONNECTED) {
                // avahi-daemon stopped or restarted. The client cannot be freed inside its own
                // callback: a new one is made from the timer.
                spdlog::warn("Zeroconf: avahi-daemon went away: \"{}\" is advertised again once it is back", name_);
                warnedUnreachable_ = true;
                retryLater(kReconnectDelayMs);
            } else {
                spdlog::error("Zeroconf: the avahi client failed ({}): \"{}\" is not advertised; trying again in {} s",
                              avahi_strerror(avahi_client_errno(client)), name_, kUnreachableRetryMs / 1000);
                retryLater(kUnreachableRetryMs);
            }
            break;
    }
}

void ZeroconfAdvertiser::takeAlternativeName() {
    char* alternative = avahi_alternative_service_name(name_.c_str());
    spdlog::warn("Zeroconf: the service name \"{}\" is taken: advertising as \"{}\"", name_, alternative);
    name_ = alternative;
    avahi_free(alternative);
}

void ZeroconfAdvertiser::registerServices(AvahiClient* client) {
    if (group_ == nullptr) {
        group_ = avahi_entry_group_new(client, ZeroconfCallbacks::group, this);
        if (group_ == nullptr) {
            spdlog::error("Zeroconf: cannot create an avahi entry group ({}): \"{}\" is not advertised",
                          avahi_strerror(avahi_client_errno(client)), name_);
            return;
        }
    }
    if (!avahi_entry_group_is_empty(group_)) return;
    const std::string instance = "instance=" + options_.instance;
    AvahiStringList* txt = avahi_string_list_new(instance.c_str(), nullptr);
    const auto add = [&](const char* type, uint16_t port) {
        return avahi_entry_group_add_service_strlst(group_, scope_.interfaceIndex, scope_.protocol,
                                                    static_cast<AvahiPublishFlags>(0), name_.c_str(), type, nullptr,
                                                    nullptr, port, txt);
    };
    for (int attempt = 0; attempt < kMaxRenames; ++attempt) {
        int result = add("_osc._udp", options_.udpPort);
        if (result == AVAHI_OK && options_.tcpPort != 0) result = add("_osc._tcp", options_.tcpPort);
        if (result == AVAHI_ERR_COLLISION) {
            // Taken by another service registered with this same avahi-daemon.
            takeAlternativeName();
            avahi_entry_group_reset(group_);
            continue;
        }
        if (result == AVAHI_OK) result = avahi_entry_group_commit(group_);
        if (result != AVAHI_OK)
            spdlog::error("Zeroconf: cannot advertise \"{}\" ({}): not advertised", name_, avahi_strerror(result));
        break;
    }
    avahi_string_list_free(txt);
}

void ZeroconfAdvertiser::onGroupState(AvahiEntryGroup* group, int state) {
    switch (static_cast<AvahiEntryGroupState>(state)) {
        case AVAHI_ENTRY_GROUP_ESTABLISHED:
            spdlog::info("Zeroconf: advertised{} as \"{}\": {}", wasRegistered_ ? " again" : "", name_,
                         describeServices());
            wasRegistered_ = true;
            break;
        case AVAHI_ENTRY_GROUP_COLLISION:
            // Another machine on the network uses the name.
            takeAlternativeName();
            avahi_entry_group_reset(group);
            registerServices(avahi_entry_group_get_client(group));
            break;
        case AVAHI_ENTRY_GROUP_FAILURE:
            spdlog::error("Zeroconf: advertising \"{}\" failed ({})", name_,
                          avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(group))));
            break;
        case AVAHI_ENTRY_GROUP_UNCOMMITED:
        case AVAHI_ENTRY_GROUP_REGISTERING:
            break;
    }
}

}  // namespace sustain
