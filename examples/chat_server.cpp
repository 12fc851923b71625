// chat_server — the talk's chat server, on every core.
//
//   def handle(socket, address):
//       name = ask_name(socket)
//       broadcast("## %s joined from %s." % (name, address[0]))
//       q = users[name] = Queue()
//       spawn(writer, q, socket)            # one writer per user
//       for line in socket.makefile():       # and one reader
//           broadcast("%s> %s" % (name, line), skip=name)
//       del users[name]
//       broadcast("## %s left the chat." % name)
//
// The first line a client sends is its name; an empty, over-long, taken or
// unprintable name gets a message and a new prompt. A client that gives no
// name within --name-timeout seconds is told and disconnected, so that
// connections cannot be held for free. Every later line goes to every
// other user as "<name>> <text>". Each user has a reader green thread (the
// connection's handler), a writer green thread and a bounded Queue between
// them. The writer sends what is queued in pieces of up to 64 KiB, so a
// burst of lines costs one system call, not one per line. The writer lives
// in the handler's green::Nursery (StreamServer opens one per connection):
// however the handler ends, the writer ends before the socket closes.
//
// Input rules. Names are printable ASCII (space to '~') and never start
// with '#', so nobody can pass for a server notice ("## ...") or send a
// terminal escape in a name. In lines, control characters other than tab
// are dropped before the line is relayed ('\r' too: "\r\n" endings become
// "\n"). A line of more than --max-line bytes (not counting its line end)
// is rejected with a notice.
//
// Slow clients: the lines waiting for one user are bounded in bytes
// (--max-backlog, the lines' text) and in number (--max-queue). A user past
// either bound (it reads slower than the room talks) is told so and
// disconnected, instead of letting its backlog grow without end. Once
// dropped, it has --grace seconds to take what is already on its way and
// the notice; a client that reads nothing at all is cut off then, so it
// cannot keep its connection and writer forever.
//
// The users map is shared by every worker. Joins and leaves are rare and
// every line is broadcast, so readers must not contend: the map is an
// immutable snapshot behind a shared_ptr, replaced (copy on write) under a
// green::Lock when somebody joins or leaves. A broadcast copies the pointer
// (under a mutex held for just that copy) and never waits for a join or a
// leave; a oneTBB concurrent_hash_map would make every broadcast walk a
// structure that joins and leaves may change under it.
//
// SIGINT or SIGTERM stops the server: users are told, then disconnected.
// From then on nothing more is relayed and the readers stop, so the CPU goes
// to flushing what is already queued: under a flood, relaying the lines
// still coming in took a third of the shutdown's CPU time (perf).
// SIGUSR1 prints the runtime's counters (Runtime::stats()) to stderr, SIGQUIT
// what every green thread is doing (Runtime::dump()).
#include <green/green.hpp>
#include <green/io.hpp>
#include <green/sync.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli.hpp"

namespace {

struct Options {
  std::string host = "0.0.0.0";
  int port = 7000;
  unsigned workers = 0;
  std::size_t max_name = 32;
  std::size_t max_line = 4096;
  std::size_t max_queue = 100000;         // lines waiting for one slow user
  std::size_t max_backlog = 1 << 20;      // bytes of those lines
  std::chrono::milliseconds grace{2000};  // for a dropped user to take the rest
  std::chrono::milliseconds name_timeout{30000};
};

// What the writer sends in one system call at most: bounds the copy a slow
// user's backlog costs when it is finally written.
constexpr std::size_t kSendPiece = 64 * 1024;

// A broadcast line is built once and shared by every recipient's queue.
using Line = std::shared_ptr<const std::string>;

struct User {
  std::string name;
  green::Queue<Line> outbox;
  // Bytes of the lines queued for it or taken by its writer and not yet
  // sent: what --max-backlog bounds.
  std::atomic<std::size_t> backlog{0};
  std::atomic<bool> dropped{false};  // no more lines are queued for it
  std::atomic<bool> too_slow{false};  // dropped because its backlog was full
  User(std::string n, std::size_t max_queue) : name(std::move(n)), outbox(max_queue) {}
};

using Users = std::map<std::string, std::shared_ptr<User>>;

// The current users map. std::atomic<std::shared_ptr> would do the same with
// a lock bit, but libstdc++ 12's load() releases that bit with relaxed order:
// its read of the pointer races with the next store (ThreadSanitizer reports
// it). The mutex is held only while a pointer is copied, never across a
// switch; the old map is freed outside it.
class Snapshot {
 public:
  explicit Snapshot(std::shared_ptr<const Users> users) : users_(std::move(users)) {}
  std::shared_ptr<const Users> load() const {
    std::lock_guard g(m_);
    return users_;
  }
  void store(std::shared_ptr<const Users> users) {
    std::lock_guard g(m_);
    users_.swap(users);
  }

 private:
  mutable std::mutex m_;
  std::shared_ptr<const Users> users_;
};

class Room {
 public:
  explicit Room(const Options& o) : options_(o), users_(std::make_shared<const Users>()) {}

  // Adds a user unless the name is taken.
  std::shared_ptr<User> join(const std::string& name) {
    std::lock_guard g(writers_);
    auto current = users_.load();
    if (current->count(name)) return nullptr;
    auto user = std::make_shared<User>(name, options_.max_queue);
    auto next = std::make_shared<Users>(*current);
    next->emplace(name, user);
    users_.store(std::move(next));
    return user;
  }

  void leave(const std::string& name) {
    std::lock_guard g(writers_);
    auto next = std::make_shared<Users>(*users_.load());
    next->erase(name);
    users_.store(std::move(next));
  }

  // Queues `line` for `user`, or drops the user if its backlog is full.
  void deliver(User& user, const Line& line) {
    const std::size_t size = line->size();
    if (user.backlog.fetch_add(size) + size > options_.max_backlog) {
      user.backlog.fetch_sub(size);
      too_slow(user);
      return;
    }
    Line copy = line;
    try {
      if (user.outbox.try_put(copy)) return;
    } catch (const green::QueueClosed&) {
      // leaving: nothing to deliver
    }
    user.backlog.fetch_sub(size);
    if (!user.outbox.closed()) too_slow(user);
  }

  // Queues `text` for every user but `skip`.
  void broadcast(std::string text, const User* skip = nullptr) {
    if (closed()) return;
    const Line line = std::make_shared<const std::string>(std::move(text));
    const auto users = users_.load();
    for (const auto& [name, user] : *users) {
      if (user.get() == skip || user->dropped.load(std::memory_order_relaxed)) continue;
      deliver(*user, line);
    }
  }

  void too_slow(User& user) {
    user.too_slow.store(true);
    drop(user);
  }

  void drop(User& user) {
    if (user.dropped.exchange(true)) return;
    user.outbox.close();  // the writer sends what it has, the notice, and disconnects
  }

  // At shutdown: nothing more is relayed, and every user is dropped.
  void close() {
    closed_.store(true);
    // Hold the snapshot: a range-for over *users_.load() would free the
    // temporary shared_ptr before the loop runs, and a leave in the meantime
    // would free the map under it.
    const auto users = users_.load();
    for (const auto& [name, user] : *users) drop(*user);
  }
  bool closed() const { return closed_.load(std::memory_order_relaxed); }

 private:
  const Options& options_;
  green::Lock writers_;
  Snapshot users_;
  std::atomic<bool> closed_{false};
};

struct CutOff {};  // a dropped user did not take its data within the grace

// Sends all of `data`. A user in the room may take as long as it likes (its
// backlog bound catches it if it falls behind); once it has been dropped, it
// gets `grace` to take the rest, or CutOff is thrown.
void send_or_cut(User& user, green::Socket& sock, std::string_view data, std::chrono::milliseconds grace) {
  using namespace std::chrono_literals;
  std::optional<std::chrono::steady_clock::time_point> cut_at;
  while (!data.empty()) {
    try {
      data.remove_prefix(sock.send(data.data(), data.size(), 100ms));
    } catch (const green::TimeoutError&) {  // the client is not reading
      if (!user.dropped.load()) continue;
      const auto now = std::chrono::steady_clock::now();
      if (!cut_at) cut_at = now + grace;
      if (now >= *cut_at) throw CutOff{};
    }
  }
}

// Sends what is queued, in pieces of up to kSendPiece bytes, until the
// queue is closed.
void writer(User& user, green::Socket& sock, const Options& o) {
  std::string piece;
  std::deque<Line> taken;  // out of the queue (one lock for the lot), not yet sent
  try {
    for (auto& first : user.outbox) {
      taken.push_back(std::move(first));
      user.outbox.try_get_many(std::back_inserter(taken));
      while (!taken.empty()) {
        piece.clear();
        while (!taken.empty() && (piece.empty() || piece.size() + taken.front()->size() <= kSendPiece)) {
          piece += *taken.front();
          taken.pop_front();
        }
        send_or_cut(user, sock, piece, o.grace);
        user.backlog.fetch_sub(piece.size());
      }
      if (piece.capacity() > 4 * kSendPiece) std::string().swap(piece);  // one long line: give it back
    }
    if (user.too_slow.load()) {
      send_or_cut(user, sock, "## you are not reading fast enough: disconnected.\n", o.grace);
    }
  } catch (const CutOff&) {
    // dropped and still not reading: it loses the rest
  } catch (const green::SystemError&) {
    // the connection broke: the reader sees it too
  }
  sock.shutdown(SHUT_RDWR);  // ends the reader's loop
}

// Removes the line end ("\n", "\r\n", or none at the end of the stream).
void chomp(std::string& line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
}

bool printable_name(std::string_view name) {
  return !name.empty() && name.front() != '#' &&
         std::all_of(name.begin(), name.end(), [](char c) { return c >= ' ' && c <= '~'; });
}

// Drops control characters other than tab (ESC, NUL, '\r'...): a line is
// relayed to terminals, which would act on them.
void strip_controls(std::string& text) {
  std::erase_if(text, [](char c) { return (static_cast<unsigned char>(c) < ' ' && c != '\t') || c == '\x7f'; });
}

// Sends a last word to a client that may not read it: at most a short wait.
void try_tell(green::Socket& sock, std::string_view text) {
  using namespace std::chrono_literals;
  try {
    sock.send(text.data(), text.size(), 100ms);
  } catch (const green::Error&) {
  } catch (const green::TimeoutError&) {  // not a green::Error: see errors.hpp
  }
}

std::string ask_name(green::Stream& stream, green::Socket& sock, Room& room, const Options& o,
                     std::shared_ptr<User>& user) {
  const std::string too_long = "That name is too long (at most " + std::to_string(o.max_name) + " bytes). Name?\n";
  sock.send_all("Welcome! What is your name?\n");
  for (;;) {
    std::optional<std::string> line;
    try {
      line = stream.read_line(o.max_name + 2);
    } catch (const green::LineTooLong&) {
      // Skip the rest of it, however long: the name timeout bounds the time.
      for (bool skipping = true; skipping;) {
        try {
          auto rest = stream.read_line(64 * 1024);
          if (!rest) return {};
          skipping = rest->back() != '\n';
        } catch (const green::LineTooLong&) {
        }
      }
      sock.send_all(too_long);
      continue;
    }
    if (!line) return {};
    std::string name = *line;
    chomp(name);
    if (name.empty()) {
      sock.send_all("A name cannot be empty. Name?\n");
    } else if (name.size() > o.max_name) {
      sock.send_all(too_long);
    } else if (!printable_name(name)) {
      sock.send_all("A name is printable ASCII and does not start with '#'. Name?\n");
    } else if (!(user = room.join(name))) {
      sock.send_all("The name " + name + " is taken. Name?\n");
    } else {
      return name;
    }
  }
}

void handle(green::Socket& sock, const green::Address& peer, Room& room, const Options& o) {
  green::Stream stream(sock, o.max_line + 2);  // + the line end
  std::shared_ptr<User> user;
  std::string name;
  try {
    green::Timeout deadline(o.name_timeout);
    try {
      name = ask_name(stream, sock, room, o, user);
    } catch (const green::TimeoutError& e) {
      if (!e.is(deadline)) throw;
      char text[80];
      std::snprintf(text, sizeof text, "No name within %g s: disconnected.\n",
                    static_cast<double>(o.name_timeout.count()) / 1000);
      try_tell(sock, text);
      return;
    }
  } catch (const green::SystemError&) {
    return;  // gone before it had a name: nothing to report
  }
  if (!user) return;
  // However the handler ends (a kill at shutdown included), the user leaves.
  struct Leave {
    Room& room;
    User& user;
    bool done = false;
    void now() {
      if (std::exchange(done, true)) return;
      room.leave(user.name);
      room.drop(user);  // closes the outbox: the writer flushes and ends
    }
    ~Leave() { now(); }
  } leave{room, *user};
  std::string host = peer.to_string();
  host = host.substr(0, host.rfind(':'));
  room.broadcast("## " + name + " joined from " + host + ".\n");
  // A member of the handler's Nursery: it ends before the socket closes,
  // but after this function's locals are gone when a kill unwinds it (at
  // shutdown), so it holds the user itself (it read a freed User once).
  auto w = green::spawn({.name = "writer " + name},
                        [user, &sock = sock, &o = o] { writer(*user, sock, o); });
  const Line rejected = std::make_shared<const std::string>("## line rejected: longer than " +
                                                            std::to_string(o.max_line) + " bytes.\n");
  try {
    bool skipping = false;  // inside an over-long line: drop up to its end
    for (;;) {
      std::optional<std::string> line;
      try {
        line = stream.read_line();
      } catch (const green::LineTooLong&) {
        if (!skipping) room.deliver(*user, rejected);
        skipping = true;
        continue;
      }
      if (!line || room.closed()) break;
      if (skipping) {
        skipping = line->back() != '\n';
        continue;
      }
      chomp(*line);
      if (line->size() > o.max_line) {  // within the read limit only thanks to its line end
        room.deliver(*user, rejected);
        continue;
      }
      strip_controls(*line);
      room.broadcast(name + "> " + *line + "\n", user.get());
    }
  } catch (const green::SystemError&) {
    // reset by the peer, or shut down by the writer
  }
  leave.now();
  w.join();
  room.broadcast("## " + name + " left the chat.\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  green_cli::App app("chat_server",
                     "The talk's chat server on every core. Join with: nc localhost PORT\n"
                     "A user with more than --max-backlog bytes or --max-queue lines waiting is dropped\n"
                     "as too slow; it gets --grace seconds to take what is on its way and a notice, then\n"
                     "it is cut off. SIGINT/SIGTERM stop the server.");
  app.add_option("--host", o.host, "address to listen on");
  green_cli::add_port(app, o.port);
  green_cli::add_workers(app, o.workers);
  green_cli::add_count(app, "--max-name", o.max_name, "longest name, in bytes");
  green_cli::add_count(app, "--max-line", o.max_line, "longest line, in bytes (without its line end)");
  green_cli::add_count(app, "--max-queue", o.max_queue, "lines waiting for one user before it is dropped");
  green_cli::add_count(app, "--max-backlog", o.max_backlog, "bytes waiting for one user before it is dropped");
  green_cli::add_seconds(app, "--grace", o.grace, "time a dropped user gets to take the rest");
  green_cli::add_seconds(app, "--name-timeout", o.name_timeout, "time a new client gets to give a name",
                         std::chrono::milliseconds(1));
  if (auto code = green_cli::parse(app, argc, argv)) return *code;
  try {
    green::Runtime rt({.workers = o.workers, .dump_on_signal = SIGQUIT});  // kill -QUIT: what each green thread does
    rt.run([&] {
      Room room(o);
      green::StreamServer server(green::Address::ip(o.host, static_cast<std::uint16_t>(o.port)),
                                 [&](green::Socket& sock, const green::Address& peer) { handle(sock, peer, room, o); });
      auto stop = [&] {
        room.broadcast("## the server is shutting down.\n");
        room.close();
        server.stop(std::chrono::milliseconds(500));  // then the rest are killed: all done within 2 s
      };
      green::SignalHandler on_int(SIGINT, stop);
      green::SignalHandler on_term(SIGTERM, stop);
      // kill -USR1: the scheduler's counters, per worker, on stderr.
      green::SignalHandler on_usr1(SIGUSR1, [&] {
        const std::string table = rt.stats().to_string();
        std::fwrite(table.data(), 1, table.size(), stderr);
      });
      server.start();
      std::printf("chat_server: listening on %s with %u workers\n", server.address().to_string().c_str(),
                  rt.workers());
      std::fflush(stdout);
      server.serve_forever();
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chat_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
