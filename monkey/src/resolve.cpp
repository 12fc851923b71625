// resolve.cpp — name lookups: getaddrinfo, getnameinfo, gethostbyname,
// gethostbyname_r (green/monkey.hpp says what each does).
//
// A lookup may read files, ask nscd or systemd-resolved, or wait for DNS
// for seconds; none of it is an fd the hooks could wait on (glibc's
// resolver makes its calls inside libc, past the hooks). So on a green
// thread the whole call runs on green's blocking pool (ops.hpp's
// run_blocking) while the green thread is parked and its worker runs
// others; on a plain thread it is libc's call.
//
// A lookup cannot be interrupted: a kill or Timeout ends the caller's wait,
// and the lookup runs on. So each lookup is a Job on the heap that owns
// copies of its inputs and its own output buffers; the caller copies the
// results out once the job has run, or, when the caller left first, the
// job is freed (its results with it) by the pool thread when it ends.
#include "hooks.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace green::monkey_hooks {

namespace {

struct ResolveReal {
  int (*getaddrinfo)(const char*, const char*, const addrinfo*, addrinfo**);
  int (*getnameinfo)(const sockaddr*, socklen_t, char*, socklen_t, char*, socklen_t, int);
  hostent* (*gethostbyname)(const char*);
  int (*gethostbyname_r)(const char*, hostent*, char*, size_t, hostent**, int*);
};

const ResolveReal& rreal() {
  static const ResolveReal r = [] {
    ResolveReal x{};
    resolve(x.getaddrinfo, "getaddrinfo");
    resolve(x.getnameinfo, "getnameinfo");
    resolve(x.gethostbyname, "gethostbyname");
    resolve(x.gethostbyname_r, "gethostbyname_r");
    return x;
  }();
  return r;
}

// Resolved when the library loads (see multiplex.cpp's g_mux_resolved_at_load).
[[maybe_unused]] const ResolveReal& g_resolve_resolved_at_load = rreal();

// A Job of type J with `extra` bytes after it, zeroed: one malloc, so that
// its release is one free (J's own buffers aside).
template <class J>
J* new_job(std::size_t extra) noexcept {
  return static_cast<J*>(std::calloc(1, sizeof(J) + extra));
}

// Copies s (null stays null) to `at`, which moves past it.
const char* keep(char*& at, const char* s) noexcept {
  if (!s) return nullptr;
  const std::size_t n = std::strlen(s) + 1;
  std::memcpy(at, s, n);
  const char* copy = at;
  at += n;
  return copy;
}

std::size_t size_of(const char* s) noexcept { return s ? std::strlen(s) + 1 : 0; }

// Runs j->run() on the blocking pool: 0 when it has run (j is the
// caller's, to free), else the errno to report (j is the pool's).
template <class J>
int in_pool(const Ops* o, J* j, const char* what) noexcept {
  return o->run_blocking([](void* p) { static_cast<J*>(p)->run(); },
                         [](void* p) { J::release(static_cast<J*>(p)); }, j, what);
}

// ---- getaddrinfo ------------------------------------------------------------------

struct AddrJob {
  const char* node;
  const char* service;
  addrinfo hints;
  bool has_hints;
  int rc;
  int error;  // errno, for EAI_SYSTEM
  addrinfo* res;

  void run() noexcept {
    errno = 0;
    rc = rreal().getaddrinfo(node, service, has_hints ? &hints : nullptr, &res);
    error = errno;
  }
  static void release(AddrJob* j) noexcept {
    if (j->rc == 0 && j->res) freeaddrinfo(j->res);
    std::free(j);
  }
};

// ---- getnameinfo ------------------------------------------------------------------

struct NameJob {
  sockaddr_storage addr;
  socklen_t addrlen;
  char* host;  // in the job's own allocation, or null
  socklen_t hostlen;
  char* serv;
  socklen_t servlen;
  int flags;
  int rc;
  int error;

  void run() noexcept {
    errno = 0;
    rc = rreal().getnameinfo(reinterpret_cast<const sockaddr*>(&addr), addrlen, host, hostlen, serv, servlen,
                             flags);
    error = errno;
  }
  static void release(NameJob* j) noexcept { std::free(j); }
};

// ---- gethostbyname, gethostbyname_r ---------------------------------------------------

struct HostJob {
  const char* name;
  hostent entry;
  hostent* result;
  char* buf;  // grown until gethostbyname_r stops saying ERANGE
  int rc;
  int h_error;

  void run() noexcept {
    for (std::size_t len = 1024;; len *= 2) {
      char* grown = static_cast<char*>(std::realloc(buf, len));
      if (!grown) {
        rc = ENOMEM;
        result = nullptr;
        h_error = NETDB_INTERNAL;
        return;
      }
      buf = grown;
      rc = rreal().gethostbyname_r(name, &entry, buf, len, &result, &h_error);
      if (rc != ERANGE || len >= (std::size_t{1} << 24)) return;
    }
  }
  static void release(HostJob* j) noexcept {
    std::free(j->buf);
    std::free(j);
  }
};

std::size_t count(char* const* list) noexcept {
  std::size_t n = 0;
  while (list && list[n]) ++n;
  return n;
}

// Bytes a copy of `h` and all it points to takes, pointer arrays aligned.
std::size_t hostent_bytes(const hostent& h) noexcept {
  const std::size_t aliases = count(h.h_aliases);
  const std::size_t addrs = count(h.h_addr_list);
  std::size_t n = alignof(char*) - 1 + (aliases + 1 + addrs + 1) * sizeof(char*);
  n += addrs * static_cast<std::size_t>(h.h_length) + size_of(h.h_name);
  for (std::size_t i = 0; i < aliases; ++i) n += size_of(h.h_aliases[i]);
  return n;
}

// Copies `from` into `to` with everything it points to in buf (len
// bytes), as gethostbyname_r lays a result out; false if it does not fit.
bool copy_hostent(const hostent& from, hostent& to, char* buf, std::size_t len) noexcept {
  if (hostent_bytes(from) > len) return false;
  const std::size_t aliases = count(from.h_aliases);
  const std::size_t addrs = count(from.h_addr_list);
  const auto misalign = reinterpret_cast<std::uintptr_t>(buf) % alignof(char*);
  char* at = buf + (misalign ? alignof(char*) - misalign : 0);
  auto** alias_list = reinterpret_cast<char**>(at);
  at += (aliases + 1) * sizeof(char*);
  auto** addr_list = reinterpret_cast<char**>(at);
  at += (addrs + 1) * sizeof(char*);
  for (std::size_t i = 0; i < addrs; ++i) {
    std::memcpy(at, from.h_addr_list[i], static_cast<std::size_t>(from.h_length));
    addr_list[i] = at;
    at += from.h_length;
  }
  addr_list[addrs] = nullptr;
  for (std::size_t i = 0; i < aliases; ++i) alias_list[i] = const_cast<char*>(keep(at, from.h_aliases[i]));
  alias_list[aliases] = nullptr;
  to.h_name = const_cast<char*>(keep(at, from.h_name));
  to.h_aliases = alias_list;
  to.h_addrtype = from.h_addrtype;
  to.h_length = from.h_length;
  to.h_addr_list = addr_list;
  return true;
}

// gethostbyname's "static" result for the calling OS thread (the worker):
// valid, as libc's, until the next gethostbyname on that thread.
struct ThreadHost {
  hostent entry{};
  char* buf = nullptr;
  std::size_t len = 0;
  ~ThreadHost() { std::free(buf); }
};
thread_local ThreadHost t_host;

// Runs a HostJob for `name` on the pool: the job when it ran, else null
// with errno and *h_error set.
HostJob* host_lookup(const Ops* o, const char* name, int* h_error) noexcept {
  auto* j = new_job<HostJob>(size_of(name));
  if (!j) {
    errno = ENOMEM;
    *h_error = NETDB_INTERNAL;
    return nullptr;
  }
  char* at = reinterpret_cast<char*>(j + 1);
  j->name = keep(at, name);
  if (const int e = in_pool(o, j, "gethostbyname (hooked)")) {
    errno = e;
    *h_error = NETDB_INTERNAL;  // "see errno"
    return nullptr;
  }
  return j;
}

}  // namespace

}  // namespace green::monkey_hooks

using namespace green::monkey_hooks;

GREEN_HOOK int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  const Ops* o = nullptr;
  if (!green_here(o)) return rreal().getaddrinfo(node, service, hints, res);
  auto* j = new_job<AddrJob>(size_of(node) + size_of(service));
  if (!j) return EAI_MEMORY;
  char* at = reinterpret_cast<char*>(j + 1);
  j->node = keep(at, node);
  j->service = keep(at, service);
  if (hints) j->hints = *hints;
  j->has_hints = hints != nullptr;
  if (const int e = in_pool(o, j, "getaddrinfo (hooked)")) {
    errno = e;
    return EAI_SYSTEM;
  }
  const int rc = j->rc;
  if (rc == 0) *res = j->res;
  if (rc == EAI_SYSTEM) errno = j->error;
  std::free(j);
  return rc;
}

GREEN_HOOK int getnameinfo(const sockaddr* addr, socklen_t addrlen, char* host, socklen_t hostlen, char* serv,
                           socklen_t servlen, int flags) {
  const Ops* o = nullptr;
  if (!green_here(o) || !addr || addrlen > sizeof(sockaddr_storage))
    return rreal().getnameinfo(addr, addrlen, host, hostlen, serv, servlen, flags);
  const std::size_t hlen = host ? hostlen : 0;
  const std::size_t slen = serv ? servlen : 0;
  auto* j = new_job<NameJob>(hlen + slen);
  if (!j) return EAI_MEMORY;
  std::memcpy(&j->addr, addr, addrlen);
  j->addrlen = addrlen;
  char* at = reinterpret_cast<char*>(j + 1);
  j->host = host ? at : nullptr;
  j->hostlen = host ? hostlen : 0;
  j->serv = serv ? at + hlen : nullptr;
  j->servlen = serv ? servlen : 0;
  j->flags = flags;
  if (const int e = in_pool(o, j, "getnameinfo (hooked)")) {
    errno = e;
    return EAI_SYSTEM;
  }
  const int rc = j->rc;
  if (rc == 0) {
    if (host && hlen) std::memcpy(host, j->host, hlen);
    if (serv && slen) std::memcpy(serv, j->serv, slen);
  }
  if (rc == EAI_SYSTEM) errno = j->error;
  std::free(j);
  return rc;
}

GREEN_HOOK int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t buflen, hostent** result,
                               int* h_errnop) {
  const Ops* o = nullptr;
  if (!green_here(o)) return rreal().gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
  *result = nullptr;
  HostJob* j = host_lookup(o, name, h_errnop);
  if (!j) return errno;
  int rc = j->rc;
  *h_errnop = j->h_error;
  if (rc == 0 && j->result) {
    if (copy_hostent(*j->result, *ret, buf, buflen)) {
      *result = ret;
    } else {
      rc = ERANGE;  // as libc: the caller retries with a larger buffer
      *h_errnop = NETDB_INTERNAL;
    }
  }
  HostJob::release(j);
  if (rc != 0) errno = rc;
  return rc;
}

GREEN_HOOK hostent* gethostbyname(const char* name) {
  const Ops* o = nullptr;
  if (!green_here(o)) return rreal().gethostbyname(name);
  int h_error = 0;
  HostJob* j = host_lookup(o, name, &h_error);
  hostent* found = nullptr;
  if (j && j->rc == 0 && j->result) {
    ThreadHost& t = t_host;
    const std::size_t need = hostent_bytes(*j->result);
    if (t.len < need) {
      if (char* grown = static_cast<char*>(std::realloc(t.buf, need))) {
        t.buf = grown;
        t.len = need;
      }
    }
    if (copy_hostent(*j->result, t.entry, t.buf, t.len)) {
      found = &t.entry;
    } else {
      errno = ENOMEM;
      h_error = NETDB_INTERNAL;
    }
  } else if (j) {
    h_error = j->h_error;
    if (j->rc != 0) errno = j->rc;
  }
  if (j) HostJob::release(j);
  h_errno = h_error;
  return found;
}
