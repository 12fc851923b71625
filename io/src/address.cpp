// address.cpp — parsing and printing socket addresses.
#include "green/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>
#include <cstring>

#include "green/errors.hpp"

namespace green {

Address::Address(const sockaddr* sa, socklen_t len) {
  if (len > sizeof storage_) throw Error("green::Address: address too long");
  std::memcpy(&storage_, sa, len);
  len_ = len;
}

namespace {
// Parses `host` as one family's numeric form into `a`; false if it is not.
template <class SockAddr, class InAddr>
bool parse_numeric(Address& a, sa_family_t family, InAddr SockAddr::*addr,
                   in_port_t SockAddr::*port_field, const std::string& host, std::uint16_t port) {
  auto* sa = reinterpret_cast<SockAddr*>(a.data());
  if (inet_pton(family, host.c_str(), &(sa->*addr)) != 1) return false;
  reinterpret_cast<sockaddr*>(sa)->sa_family = family;
  sa->*port_field = htons(port);
  a.set_size(sizeof(SockAddr));
  return true;
}
}  // namespace

Address Address::ip(std::string_view numeric_host, std::uint16_t port) {
  const std::string host(numeric_host);
  Address a;
  if (parse_numeric(a, AF_INET, &sockaddr_in::sin_addr, &sockaddr_in::sin_port, host, port)) return a;
  a = Address();
  if (parse_numeric(a, AF_INET6, &sockaddr_in6::sin6_addr, &sockaddr_in6::sin6_port, host, port)) return a;
  throw Error("green::Address: not a numeric IPv4 or IPv6 address: '" + host + "'");
}

Address Address::unix_path(std::string_view path) {
  Address a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  if (path.empty() || path.size() >= sizeof un->sun_path)
    throw Error("green::Address: bad Unix socket path '" + std::string(path) + "'");
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return a;
}

Address Address::parse(std::string_view text) {
  if (text.starts_with("unix:")) return unix_path(text.substr(5));
  std::string_view host, port;
  if (text.starts_with("[")) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw Error("green::Address: expected [ipv6]:port, got '" + std::string(text) + "'");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      throw Error("green::Address: expected host:port, got '" + std::string(text) + "'");
    host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos)
      throw Error("green::Address: write IPv6 addresses in brackets, [host]:port, got '" + std::string(text) + "'");
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535 || port.empty())
    throw Error("green::Address: bad port in '" + std::string(text) + "'");
  return ip(host, static_cast<std::uint16_t>(value));
}

std::uint16_t Address::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

Address Address::with_port(std::uint16_t port) const {
  Address a = *this;
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  } else {
    throw Error("green::Address::with_port: not an IP address");
  }
  return a;
}

std::string Address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (family()) {
    case AF_INET:
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(port());
    case AF_INET6:
    {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf, sizeof buf);
      // Appended piece by piece: "[" + std::string(...) trips GCC 12's
      // -Wrestrict false positive at -O3.
      std::string out = "[";
      out += buf;
      out += "]:";
      out += std::to_string(port());
      return out;
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      const std::size_t max = len_ > offsetof(sockaddr_un, sun_path) ? len_ - offsetof(sockaddr_un, sun_path) : 0;
      return "unix:" + std::string(un->sun_path, strnlen(un->sun_path, max));
    }
    default:
      return "(no address)";
  }
}

bool operator==(const Address& a, const Address& b) noexcept {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

}  // namespace green
