// What a client asked for itself: the port it hears on (/engine/reply_port) and whether it
// wants errors answered (/engine/error). docs/clients.md.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <vector>

namespace sustain {

/// Per client, kept by its host (see key()):
/// - a reply port. Clients that send from one socket and listen on another (Max's
///   [udpsend] + [udpreceive], Pure Data's [netsend] + [netreceive], QLab) name the port
///   they listen on with /engine/reply_port <port> (or /engine/notify 1 <port>); from then
///   on every reply and all feedback for that host go to that port;
/// - fail replies: after /engine/error 1 every message of its refused is answered
///   /engine/fail <address> <reason> <text> (scsynth's /fail; off by default, as a client
///   that never asked may not expect datagrams it did not request).
/// Keyed by the host alone, because such a client's sending port is not its own to choose
/// and may change; but on loopback by the sending address and port, because every program
/// on this machine shares that host and one's settings must not capture another's replies
/// (Pd's [netsend] and Max's [udpsend] keep their sending port for as long as they exist).
///
/// Bounded like the feedback tables: kMaxHosts entries, each held for a lease renewed by
/// any message from the host; a newcomer to a full table takes the place of the host heard
/// from least recently. Thread: the OSC thread.
class ClientSettings {
public:
    explicit ClientSettings(uint64_t leaseNs) : leaseNs_(leaseNs) {}

    /// `from`'s host wants replies at `port` (0: back to the sending port again).
    void setReplyPort(const sockaddr_storage& from, uint16_t port, uint64_t nowNs);

    /// `from`'s host wants refusals answered with /engine/fail (or no longer).
    void setFailReplies(const sockaddr_storage& from, bool on, uint64_t nowNs);

    /// Where replies to `from` go: its host's reply port, or `from` itself.
    sockaddr_storage replyAddress(const sockaddr_storage& from) const;

    /// Whether refusals of `from`'s messages are answered.
    bool wantsFailReplies(const sockaddr_storage& from) const;

    /// Any message from `from` renews its host's entry; expired ones are dropped.
    void heard(const sockaddr_storage& from, uint64_t nowNs);

    size_t size() const { return hosts_.size(); }

    static constexpr size_t kMaxHosts = 64;

private:
    struct Host {
        sockaddr_storage address;  // key(): the host (port 0), or on loopback the sender
        uint16_t replyPort;        // 0: none
        bool failReplies;
        uint64_t lastHeardNs;
    };
    static sockaddr_storage key(const sockaddr_storage& from);
    const Host* find(const sockaddr_storage& from) const;
    Host& entry(const sockaddr_storage& from, uint64_t nowNs);
    void dropDefaults();

    uint64_t leaseNs_;
    std::vector<Host> hosts_;
};

}  // namespace sustain
