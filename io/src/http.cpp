// http.cpp — the minimal HTTP/1.1 GET client (see green/http.hpp).
#include "green/http.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "green/current.hpp"
#include "green/errors.hpp"
#include "green/stream.hpp"
#include "green/timeout.hpp"
#include "green/tls_socket.hpp"

namespace green {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return std::string(s);
}

std::string need_line(Stream& in, const char* what) {
  auto line = in.read_line(16 * 1024);
  if (!line) throw Error(std::string("green::http_get: connection closed while reading ") + what);
  return *line;
}

std::string read_chunked(Stream& in, std::size_t max_body) {
  std::string body;
  for (;;) {
    const std::string size_line = trim(need_line(in, "a chunk size"));
    std::size_t size = 0;
    const auto [end, ec] = std::from_chars(size_line.data(), size_line.data() + size_line.size(), size, 16);
    if (ec != std::errc() || (end != size_line.data() + size_line.size() && *end != ';'))
      throw Error("green::http_get: bad chunk size '" + size_line + "'");
    if (size == 0) break;
    if (body.size() + size > max_body) throw Error("green::http_get: body larger than the limit");
    body += in.read_exactly(size);
    if (trim(need_line(in, "a chunk end")) != "") throw Error("green::http_get: chunk not followed by CRLF");
  }
  // Trailers, up to the empty line.
  while (trim(need_line(in, "trailers")) != "") {
  }
  return body;
}

}  // namespace

Url Url::parse(const std::string& url) {
  Url u;
  std::string_view rest = url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
    u.tls = true;
    u.port = 443;
  } else {
    throw Error("green::Url: only http:// and https:// URLs are supported: '" + url + "'");
  }
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  u.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string_view port;
  if (authority.starts_with("[")) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) throw Error("green::Url: bad IPv6 host in '" + url + "'");
    u.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') throw Error("green::Url: bad authority in '" + url + "'");
      port = authority.substr(close + 2);
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) throw Error("green::Url: no host in '" + url + "'");
  if (!port.empty() || authority.ends_with(":")) {
    unsigned p = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535)
      throw Error("green::Url: bad port in '" + url + "'");
    u.port = static_cast<std::uint16_t>(p);
  }
  return u;
}

namespace {
HttpResponse get(const Url& u, const TlsContext* tls, MaybeTimeout timeout, std::size_t max_body);

HttpResponse get_within(const std::string& url, const TlsContext* tls, MaybeTimeout timeout,
                        std::size_t max_body) {
  const Url u = Url::parse(url);
  if (!timeout || !in_green_thread()) return get(u, tls, timeout, max_body);
  // One scope bounds the whole exchange; it surfaces as the call's own
  // timeout, TimeoutError(0), as every timeout parameter in green does.
  Timeout scope(*timeout);
  try {
    return get(u, tls, timeout, max_body);
  } catch (const TimeoutError& e) {
    if (e.is(scope)) throw TimeoutError(0);
    throw;
  }
}

// The system's CA store, loaded once (at the first https:// call without a
// context of the caller's): reading it takes milliseconds.
const TlsContext& default_client_context() {
  static const TlsContext ctx = TlsContext::client();
  return ctx;
}
}  // namespace

HttpResponse http_get(const std::string& url, MaybeTimeout timeout, std::size_t max_body) {
  return get_within(url, nullptr, timeout, max_body);
}

HttpResponse http_get(const std::string& url, const TlsContext& tls, MaybeTimeout timeout, std::size_t max_body) {
  return get_within(url, &tls, timeout, max_body);
}

namespace {
HttpResponse exchange(StreamTransport& conn, const std::string& request, std::size_t max_body);

HttpResponse get(const Url& u, const TlsContext* tls, MaybeTimeout timeout, std::size_t max_body) {
  const bool v6 = u.host.find(':') != std::string::npos;
  const std::string host_header =
      (v6 ? "[" + u.host + "]" : u.host) + (u.port == (u.tls ? 443 : 80) ? "" : ":" + std::to_string(u.port));
  const std::string request = "GET " + u.path + " HTTP/1.1\r\nHost: " + host_header +
                              "\r\nUser-Agent: green\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  // On a plain thread the timeout bounds each call instead (no Timeout scope).
  const MaybeTimeout per_call = in_green_thread() ? std::nullopt : timeout;
  if (u.tls) {
    TlsSocket conn = create_tls_connection(u.host, u.port, tls ? *tls : default_client_context(), timeout);
    conn.set_timeout(per_call);
    return exchange(conn, request, max_body);
  }
  Socket sock = create_connection(u.host, u.port, timeout);
  sock.set_timeout(per_call);
  return exchange(sock, request, max_body);
}

// The request out, the response in, over either kind of connection.
HttpResponse exchange(StreamTransport& conn, const std::string& request, std::size_t max_body) {
  conn.send_all(request);
  Stream in(conn);
  HttpResponse r;
  const std::string status = trim(need_line(in, "the status line"));
  // "HTTP/1.1 200 OK"
  if (!status.starts_with("HTTP/1.") || status.size() < 12 || status[8] != ' ')
    throw Error("green::http_get: bad status line '" + status + "'");
  const auto [end, ec] = std::from_chars(status.data() + 9, status.data() + 12, r.status);
  if (ec != std::errc() || end != status.data() + 12) throw Error("green::http_get: bad status line '" + status + "'");
  r.reason = status.size() > 13 ? status.substr(13) : "";
  for (;;) {
    const std::string line = trim(need_line(in, "headers"));
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) throw Error("green::http_get: bad header line '" + line + "'");
    r.headers[lower(line.substr(0, colon))] = trim(std::string_view(line).substr(colon + 1));
  }
  if (r.status / 100 == 1 || r.status == 204 || r.status == 304) return r;
  auto te = r.headers.find("transfer-encoding");
  auto cl = r.headers.find("content-length");
  if (te != r.headers.end() && lower(te->second).find("chunked") != std::string::npos) {
    r.body = read_chunked(in, max_body);
  } else if (cl != r.headers.end()) {
    std::size_t n = 0;
    const auto [e, c] = std::from_chars(cl->second.data(), cl->second.data() + cl->second.size(), n);
    if (c != std::errc() || e != cl->second.data() + cl->second.size())
      throw Error("green::http_get: bad Content-Length '" + cl->second + "'");
    if (n > max_body) throw Error("green::http_get: body larger than the limit");
    r.body = in.read_exactly(n);
  } else {
    for (std::string part; !(part = in.read_some()).empty();) {
      if (r.body.size() + part.size() > max_body) throw Error("green::http_get: body larger than the limit");
      r.body += part;
    }
  }
  return r;
}
}  // namespace

}  // namespace green
