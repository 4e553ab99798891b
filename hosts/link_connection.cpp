#include "hosts/link_connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sustain {

LinkConnection& LinkConnection::operator=(LinkConnection&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = other.fd_;
        in_ = std::move(other.in_);
        out_ = std::move(other.out_);
        sent_ = other.sent_;
        error_ = std::move(other.error_);
        other.fd_ = -1;
        other.sent_ = 0;
        other.in_.clear();
        other.out_.clear();
    }
    return *this;
}

void LinkConnection::close() {
    // The buffers stay: close() may be called from within receive()'s handler, which still
    // walks them. connectTo() starts a new connection with empty ones.
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

bool LinkConnection::connectTo(const std::string& address, uint16_t port, int timeoutMs, std::string& error) {
    close();
    in_.clear();
    out_.clear();
    sent_ = 0;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int code = getaddrinfo(address.c_str(), std::to_string(port).c_str(), &hints, &found); code != 0) {
        error = "cannot resolve " + address + ": " + gai_strerror(code);
        return false;
    }
    error = "no address for " + address;
    for (addrinfo* at = found; at != nullptr; at = at->ai_next) {
        const int fd = socket(at->ai_family, at->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, at->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, at->ai_addr, at->ai_addrlen) != 0 && errno != EINPROGRESS) {
            error = std::string("cannot connect: ") + std::strerror(errno);
            ::close(fd);
            continue;
        }
        pollfd wait{fd, POLLOUT, 0};
        int soError = ETIMEDOUT;
        socklen_t length = sizeof soError;
        if (poll(&wait, 1, timeoutMs) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length);
        if (soError != 0) {
            error = std::string("cannot connect: ") + std::strerror(soError);
            ::close(fd);
            continue;
        }
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // a command is a few dozen bytes, due now
        fd_ = fd;
        break;
    }
    freeaddrinfo(found);
    return fd_ >= 0;
}

bool LinkConnection::send(LinkType type, const void* payload, uint32_t length) {
    if (fd_ < 0) return false;
    appendLinkMessage(out_, type, payload, length);
    if (out_.size() - sent_ > kMaxBacklog) {
        error_ = "the peer does not keep up";
        close();
        return false;
    }
    return flush();
}

bool LinkConnection::flush() {
    while (fd_ >= 0 && sent_ < out_.size()) {
        const ssize_t written = ::send(fd_, out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (written < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            error_ = std::strerror(errno);
            close();
            return false;
        }
        sent_ += static_cast<size_t>(written);
    }
    if (sent_ == out_.size()) {
        out_.clear();
        sent_ = 0;
    } else if (sent_ > (1u << 16)) {
        out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(sent_));
        sent_ = 0;
    }
    return fd_ >= 0;
}

bool LinkConnection::readAvailable() {
    for (;;) {
        if (fd_ < 0) return false;
        uint8_t buffer[16384];
        const ssize_t got = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
        if (got > 0) {
            in_.insert(in_.end(), buffer, buffer + got);
            if (in_.size() > size_t{kMaxLinkPayload} * 4 + sizeof(LinkHeader)) {
                // takeLinkMessages() below splits them; more than a few messages' worth
                // waiting is read in the next round.
                return true;
            }
            continue;
        }
        if (got == 0) {
            error_ = "closed by the peer";
            close();
            return false;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        if (errno == EINTR) continue;
        error_ = std::strerror(errno);
        close();
        return false;
    }
}

}  // namespace sustain
