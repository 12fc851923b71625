// green/address.hpp — socket addresses: IPv4, IPv6 and Unix domain.
//
//   auto a = green::Address::parse("127.0.0.1:8080");
//   auto b = green::Address::parse("[::1]:8080");
//   auto c = green::Address::unix_path("/tmp/chat.sock");
//   a.to_string();   // "127.0.0.1:8080"
//
// Parsing takes numeric addresses only; names go through green::resolve()
// (socket.hpp), which does not block the worker. Bad input throws
// green::Error with the offending text.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace green {

class Address {
 public:
  Address() = default;  // an empty address (family() == AF_UNSPEC)
  Address(const sockaddr* sa, socklen_t len);

  // "1.2.3.4:80", "[::1]:80", or "unix:/path".
  static Address parse(std::string_view text);
  // A numeric IPv4 or IPv6 address and a port.
  static Address ip(std::string_view numeric_host, std::uint16_t port);
  static Address unix_path(std::string_view path);

  int family() const noexcept { return storage_.ss_family; }
  std::uint16_t port() const noexcept;  // 0 for Unix addresses
  // "1.2.3.4:80", "[::1]:80", "unix:/path".
  std::string to_string() const;
  // The same address with another port (IP families only).
  Address with_port(std::uint16_t port) const;

  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return len_; }
  void set_size(socklen_t len) noexcept { len_ = len; }
  static constexpr socklen_t capacity() noexcept { return sizeof(sockaddr_storage); }

  friend bool operator==(const Address& a, const Address& b) noexcept;

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

}  // namespace green
