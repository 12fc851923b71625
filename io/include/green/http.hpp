// green/http.hpp — a minimal HTTP/1.1 client: GET a URL, get the status,
// headers and body. Enough for the talk's bulk downloader, not a browser.
//
//   auto r = green::http_get("http://127.0.0.1:8080/file/3", 10s);
//   if (r.status == 200) use(r.body);
//   auto s = green::http_get("https://example.org/", 10s);   // verified TLS
//
// Supported: http:// and https:// URLs, host names (resolved off the
// workers) and numeric IPv4/IPv6 hosts, an explicit port, bodies delimited
// by Content-Length, by chunked transfer encoding, or by the connection
// closing. One request per connection ("Connection: close"). Redirects are
// returned, not followed.
//
// HTTPS runs over green::TlsSocket (green/tls_socket.hpp): by default with
// a client context shared by the process that trusts the system's CA store
// (TlsContext::client(), built at the first https:// call), verifying the
// certificate and that it names the URL's host, sent as SNI. Pass a
// TlsContext of your own to trust another CA (or, knowingly, to skip
// verification); it is used for https:// URLs only.
//
// Errors: green::Error for a malformed URL or response (with what was
// wrong), TlsError for a TLS failure (an untrusted certificate, a wrong host
// name: green/tls_context.hpp), SystemError for network failures,
// TimeoutError(0) when the timeout (covering the whole exchange, the TLS
// handshake included) passes. Responses larger than max_body bytes throw
// green::Error instead of growing without bound. Blocking and kill/Timeout
// behaviour are the Socket's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "green/socket.hpp"
#include "green/tls_context.hpp"

namespace green {

struct HttpResponse {
  int status = 0;
  std::string reason;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct Url {
  bool tls = false;  // https://
  std::string host;
  std::uint16_t port = 80;  // 443 for https:// unless given
  std::string path = "/";
  // Parses "http://host[:port][/path]" or "https://..."; throws green::Error.
  static Url parse(const std::string& url);
};

inline constexpr std::size_t kDefaultMaxHttpBody = 64 * 1024 * 1024;

HttpResponse http_get(const std::string& url, MaybeTimeout timeout = std::nullopt,
                      std::size_t max_body = kDefaultMaxHttpBody);
// The same, with `tls` (a client context) for an https:// URL.
HttpResponse http_get(const std::string& url, const TlsContext& tls, MaybeTimeout timeout = std::nullopt,
                      std::size_t max_body = kDefaultMaxHttpBody);

}  // namespace green
