// Zeroconf (DNS-SD over mDNS) advertisement of sustaind's OSC ports through avahi-daemon,
// so that OSC clients on the network find the engine without typing an address.
#pragma once

#include <cstdint>
#include <string>

struct AvahiClient;
struct AvahiEntryGroup;
struct AvahiThreadedPoll;
struct AvahiTimeout;

namespace sustain {

struct ZeroconfOptions {
    std::string name;         // service name; empty: defaultZeroconfName(instance)
    std::string instance;     // published in the TXT record as instance=...
    std::string bindAddress;  // the address OSC listens on: decides where to advertise
    uint16_t udpPort = 0;     // advertised as _osc._udp
    uint16_t tcpPort = 0;     // advertised as _osc._tcp; 0: no TCP transport, not advertised
};

/// Where an advertisement goes, derived from the OSC bind address.
struct ZeroconfScope {
    int interfaceIndex = -1;  // AVAHI_IF_UNSPEC (-1): every interface avahi-daemon serves
    int protocol = -1;        // AVAHI_PROTO_UNSPEC (-1), AVAHI_PROTO_INET (0) or AVAHI_PROTO_INET6 (1)
    bool loopbackOnly = false;
    std::string interfaceName;  // empty with interfaceIndex -1
};

/// "sustain (<instance>)". Thread: any.
std::string defaultZeroconfName(const std::string& instance);

/// Checks a service name as DNS-SD wants it (1 to 63 bytes of UTF-8).
/// Thread: any.  Errors: `error` says why the name cannot be used.
bool validZeroconfName(const std::string& name, std::string& error);

/// A loopback bind (127.0.0.0/8, ::1) advertises on the loopback interface only: clients on
/// other machines could not reach the port. A specific address advertises on the interface
/// that has it; a wildcard (0.0.0.0, ::) on every interface. The protocol follows the
/// address family (:: takes IPv4 too, so it advertises on both).
/// Thread: any.  Errors: `error` when a loopback bind finds no loopback interface.
bool zeroconfScopeFor(const std::string& bindAddress, ZeroconfScope& scope, std::string& error);

/// Keeps the engine's OSC services registered with avahi-daemon from a thread of its own
/// (avahi's threaded poll), so that nothing here blocks the supervision loop. A service
/// name taken on the network is replaced by avahi's alternative ("sustain (default) #2",
/// logged); when avahi-daemon restarts, the services are registered again; without an
/// avahi-daemon (or without the system D-Bus) a warning is logged once and the engine
/// runs on, advertised as soon as the daemon appears.
class ZeroconfAdvertiser {
public:
    explicit ZeroconfAdvertiser(ZeroconfOptions options);
    ~ZeroconfAdvertiser();
    ZeroconfAdvertiser(const ZeroconfAdvertiser&) = delete;
    ZeroconfAdvertiser& operator=(const ZeroconfAdvertiser&) = delete;

    /// Starts the avahi thread and the first registration; returns at once.
    /// false only when the advertisement cannot be set up at all (bad name, no loopback
    /// interface for a loopback bind, no thread); a missing avahi-daemon is not a failure.
    /// Thread: main.  Errors: `error` says why nothing is advertised.
    bool start(std::string& error);

    /// Withdraws the services (avahi-daemon sends goodbye packets) and ends the thread.
    /// Thread: main.
    void stop();

private:
    friend struct ZeroconfCallbacks;  // avahi's C callbacks (their enum types stay in the .cpp)

    // All below run on the avahi thread once it started (or on main before that).
    void connect();
    void onClientState(AvahiClient* client, int state);
    void onGroupState(AvahiEntryGroup* group, int state);
    void registerServices(AvahiClient* client);
    void takeAlternativeName();
    void retryLater(unsigned delayMs);
    std::string describeServices() const;

    ZeroconfOptions options_;
    ZeroconfScope scope_;
    std::string name_;
    AvahiThreadedPoll* poll_ = nullptr;
    AvahiClient* client_ = nullptr;
    AvahiEntryGroup* group_ = nullptr;
    AvahiTimeout* retry_ = nullptr;
    bool warnedUnreachable_ = false;  // the "no avahi-daemon" warning is logged once per outage
    bool wasRegistered_ = false;      // to say "again" after a daemon restart
};

}  // namespace sustain
