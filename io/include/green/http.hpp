// green/http.hpp — a minimal HTTP/1.1 client: GET a URL, get the status,
// headers and body. Enough for the talk's bulk downloader, not a browser.
//
//   auto r = green::http_get("http://127.0.0.1:8080/file/3", 10s);
//   if (r.status == 200) use(r.body);
//
// Supported: http:// URLs (no TLS), host names (resolved off the workers)
// and numeric IPv4/IPv6 hosts, an explicit port, bodies delimited by
// Content-Length, by chunked transfer encoding, or by the connection
// closing. One request per connection ("Connection: close").
//
// Errors: green::Error for a malformed URL or response (with what was
// wrong), SystemError for network failures, TimeoutError(0) when the
// timeout (covering the whole exchange) passes. Responses larger than
// max_body bytes throw green::Error instead of growing without bound.
// Blocking and kill/Timeout behaviour are the Socket's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "green/socket.hpp"

namespace green {

struct HttpResponse {
  int status = 0;
  std::string reason;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct Url {
  std::string host;
  std::uint16_t port = 80;
  std::string path = "/";
  // Parses "http://host[:port][/path]"; throws green::Error.
  static Url parse(const std::string& url);
};

HttpResponse http_get(const std::string& url, MaybeTimeout timeout = std::nullopt,
                      std::size_t max_body = 64 * 1024 * 1024);

}  // namespace green
