// The chat protocol as its end-to-end tests speak it: the prompt, the
// notices, a chat_server started on a free port, and a user joining.
#pragma once

#include <string>
#include <vector>

#include "e2e_util.hpp"

namespace e2e {

inline const std::string kPrompt = "Welcome! What is your name?\n";

inline std::string joined(const std::string& name) { return "## " + name + " joined from 127.0.0.1.\n"; }
inline std::string left(const std::string& name) { return "## " + name + " left the chat.\n"; }

// chat_server on two workers and a free port, with `extra` flags.
inline Server chat_server(std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--workers", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return Server(GREEN_E2E_CHAT_SERVER, args);
}

// Connects, answers the prompt with `name` and reads up to its own join
// notice, which must be the first line after the prompt. Mismatches throw
// (e2e::fail), which fails the test.
inline Client join(std::uint16_t port, const std::string& name, int rcvbuf = 0) {
  Client c(port, rcvbuf);
  c.set_label(name + " (before its name)");
  if (c.line() != kPrompt) fail(name + ": no prompt");
  c.send(name + "\n");
  c.set_label(name + " (joining)");
  if (const std::string l = c.line(); l != joined(name)) fail(name + ": expected its join notice, got " + l);
  c.set_label(name);
  return c;
}

}  // namespace e2e
