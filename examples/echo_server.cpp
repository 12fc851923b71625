// echo_server — gevent's examples/echoserver.py on every core.
//
//   def echo(socket, address):
//       for line in socket.makefile():
//           socket.sendall(line)
//   StreamServer(("0.0.0.0", 6000), echo).serve_forever()
//
// Each connection is served by its own green thread; the server listens on
// every worker (one SO_REUSEPORT socket each). SIGINT or SIGTERM stops it
// cleanly. --raw echoes bytes as they come instead of lines (what the echo
// benchmark compares against other runtimes' plain echo servers).
#include <green/green.hpp>
#include <green/io.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

static void echo_lines(green::Socket& sock, const green::Address&) {
  green::Stream stream(sock);
  for (auto& line : stream.lines()) sock.send_all(line);
}

static void echo_raw(green::Socket& sock, const green::Address&) {
  char buf[16 * 1024];
  while (std::size_t n = sock.recv(buf, sizeof buf)) sock.send_all(buf, n);
}

int main(int argc, char** argv) {
  std::string host = "0.0.0.0";
  int port = 6000;
  unsigned workers = 0;
  bool raw = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help")) {
      std::puts("usage: echo_server [--host ADDR] [--port N] [--workers M] [--raw]\n"
                "Echoes every line a client sends (--raw: every byte). Port 0 picks a free\n"
                "port; the port in use is printed. SIGINT/SIGTERM stop the server.");
      return 0;
    } else if (!std::strcmp(argv[i], "--host") && i + 1 < argc) {
      host = argv[++i];
    } else if (!std::strcmp(argv[i], "--port") && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--workers") && i + 1 < argc) {
      workers = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--raw")) {
      raw = true;
    } else {
      std::fprintf(stderr, "echo_server: unknown argument %s (try --help)\n", argv[i]);
      return 2;
    }
  }
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "echo_server: --port must be 0..65535\n");
    return 2;
  }
  try {
    green::Runtime rt({.workers = workers});
    rt.run([&] {
      green::StreamServer server(green::Address::ip(host, static_cast<std::uint16_t>(port)),
                                 raw ? echo_raw : echo_lines);
      green::SignalHandler on_int(SIGINT, [&] { server.stop(); });
      green::SignalHandler on_term(SIGTERM, [&] { server.stop(); });
      server.start();
      std::printf("echo_server: listening on %s with %u workers%s\n", server.address().to_string().c_str(),
                  rt.workers(), raw ? " (raw)" : "");
      std::fflush(stdout);
      server.serve_forever();
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
