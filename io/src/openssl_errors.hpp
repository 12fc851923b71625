// openssl_errors.hpp — OpenSSL's error queue as text, for green::TlsError.
//
// OpenSSL keeps its error queue per OS thread. A green thread may move to
// another worker whenever it parks, so the queue is read right after the
// failing call, before anything can park: every caller clears it before a
// call (ERR_clear_error) and takes it (take_openssl_errors) straight after.
#pragma once

#include <openssl/err.h>

#include <string>

namespace green::io_detail {

// Every error queued on this thread, oldest first, "; "-separated (empty
// if none), and the queue emptied.
inline std::string take_openssl_errors() {
  std::string out;
  char buf[256];
  const char* data = nullptr;
  int flags = 0;
  while (const unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    // The reason ("certificate verify failed") is what a reader needs, not
    // the packed code; the data, when there is some, says on what
    // ("calling fopen(/etc/app/key.pem, r)").
    if (!out.empty()) out += "; ";
    if (const char* reason = ERR_reason_error_string(e)) {
      out += reason;
    } else {
      ERR_error_string_n(e, buf, sizeof buf);
      out += buf;
    }
    if ((flags & ERR_TXT_STRING) && data && *data) {
      out += " (";
      out += data;
      out += ")";
    }
  }
  return out;
}

}  // namespace green::io_detail
