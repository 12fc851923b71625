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
#include <string>

#include "cli.hpp"

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
  green_cli::App app("echo_server",
                     "Echoes every line a client sends (--raw: every byte). Port 0 picks a free\n"
                     "port; the port in use is printed. SIGINT/SIGTERM stop the server.");
  app.add_option("--host", host, "address to listen on")->type_name("ADDR");
  green_cli::add_port(app, port);
  green_cli::add_workers(app, workers);
  app.add_flag("--raw", raw, "echo bytes as they come instead of lines");
  if (auto code = green_cli::parse(app, argc, argv)) return *code;
  try {
    green::Runtime rt({.workers = workers, .dump_on_signal = SIGQUIT});  // kill -QUIT: what each green thread does
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
