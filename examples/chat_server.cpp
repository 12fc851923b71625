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
// The first line a client sends is its name; an empty, over-long or taken
// name gets a message and a new prompt. Every later line goes to every other
// user as "<name>> <text>". Each user has a reader green thread (the
// connection's handler), a writer green thread and a bounded Queue between
// them. The writer drains everything queued into one send, so a burst of
// lines costs one system call, not one per line.
//
// Slow clients: a user whose queue is full (it reads slower than the room
// talks) is told so and disconnected, instead of letting its queue grow
// without end. Once dropped, it has --grace seconds to take what is already
// on its way and the notice; a client that reads nothing at all is cut off
// then, so it cannot keep its connection and writer forever. Lines longer
// than --max-line bytes are rejected with a notice.
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
#include <green/green.hpp>
#include <green/io.hpp>
#include <green/sync.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Options {
  std::string host = "0.0.0.0";
  int port = 7000;
  unsigned workers = 0;
  std::size_t max_name = 32;
  std::size_t max_line = 4096;
  std::size_t max_queue = 100000;  // lines waiting for one slow user (16 bytes each)
  std::chrono::milliseconds grace{2000};  // for a dropped user to take the rest
};

// A broadcast line is built once and shared by every recipient's queue.
using Line = std::shared_ptr<const std::string>;

struct User {
  std::string name;
  green::Queue<Line> outbox;
  std::atomic<bool> dropped{false};  // no more lines are queued for it
  std::atomic<bool> too_slow{false};  // dropped because its queue was full
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

  // Queues `line` for every user but `skip`; a user whose queue is full is
  // dropped (its writer tells it and closes the connection).
  void broadcast(std::string text, const User* skip = nullptr) {
    const Line line = std::make_shared<const std::string>(std::move(text));
    const auto users = users_.load();
    for (const auto& [name, user] : *users) {
      if (user.get() == skip || user->dropped.load(std::memory_order_relaxed)) continue;
      Line copy = line;
      try {
        if (!user->outbox.try_put(copy)) {
          user->too_slow.store(true);
          drop(*user);
        }
      } catch (const green::QueueClosed&) {
        // leaving: nothing to deliver
      }
    }
  }

  void drop(User& user) {
    if (user.dropped.exchange(true)) return;
    user.outbox.close();  // the writer sends what it has, the notice, and disconnects
  }

  void drop_all() {
    // Hold the snapshot: a range-for over *users_.load() would free the
    // temporary shared_ptr before the loop runs, and a leave in the meantime
    // would free the map under it.
    const auto users = users_.load();
    for (const auto& [name, user] : *users) drop(*user);
  }

  std::size_t size() const { return users_.load()->size(); }

 private:
  const Options& options_;
  green::Lock writers_;
  Snapshot users_;
};

struct CutOff {};  // a dropped user did not take its data within the grace

// Sends all of `data`. A user in the room may take as long as it likes (its
// queue bound catches it if it falls behind); once it has been dropped, it
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

// Sends everything queued in one write, until the queue is closed.
void writer(User& user, green::Socket& sock, const Options& o) {
  std::string batch;
  std::vector<Line> more;
  try {
    for (auto& line : user.outbox) {
      batch.assign(*line);
      user.outbox.try_get_many(std::back_inserter(more));  // one lock for the lot
      for (const Line& l : more) batch += *l;
      more.clear();
      send_or_cut(user, sock, batch, o.grace);
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

std::string ask_name(green::Stream& stream, green::Socket& sock, Room& room, const Options& o,
                     std::shared_ptr<User>& user) {
  sock.send_all("Welcome! What is your name?\n");
  for (;;) {
    std::optional<std::string> line;
    try {
      line = stream.read_line(o.max_name + 2);
    } catch (const green::LineTooLong&) {
      sock.send_all("That name is too long (at most " + std::to_string(o.max_name) + " bytes). Name?\n");
      stream.read_line(1 << 20);  // skip the rest of it
      continue;
    }
    if (!line) return {};
    std::string name = *line;
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
    if (name.empty()) {
      sock.send_all("A name cannot be empty. Name?\n");
    } else if (name.size() > o.max_name) {
      sock.send_all("That name is too long (at most " + std::to_string(o.max_name) + " bytes). Name?\n");
    } else if (!(user = room.join(name))) {
      sock.send_all("The name " + name + " is taken. Name?\n");
    } else {
      return name;
    }
  }
}

void handle(green::Socket& sock, const green::Address& peer, Room& room, const Options& o) {
  green::Stream stream(sock, o.max_line + 2);
  std::shared_ptr<User> user;
  std::string name;
  try {
    name = ask_name(stream, sock, room, o, user);
  } catch (const green::SystemError&) {
    return;  // gone before it had a name: nothing to report
  }
  if (!user) return;
  std::string host = peer.to_string();
  host = host.substr(0, host.rfind(':'));
  room.broadcast("## " + name + " joined from " + host + ".\n");
  auto w = green::spawn({.name = "writer " + name}, [&] { writer(*user, sock, o); });
  try {
    bool skipping = false;  // inside an over-long line: drop up to its end
    for (;;) {
      std::optional<std::string> line;
      try {
        line = stream.read_line();
        if (skipping && line) {
          skipping = line->back() != '\n';
          continue;
        }
      } catch (const green::LineTooLong&) {
        if (skipping) continue;
        skipping = true;
        Line notice = std::make_shared<const std::string>(
            "## line rejected: longer than " + std::to_string(o.max_line) + " bytes.\n");
        if (!user->outbox.try_put(notice)) {
          user->too_slow.store(true);
          room.drop(*user);
        }
        continue;
      }
      if (!line) break;
      if (line->back() != '\n') line->push_back('\n');  // the last line of a closed stream
      room.broadcast(name + "> " + *line, user.get());
    }
  } catch (const green::SystemError&) {
    // reset by the peer, or shut down by the writer
  } catch (const green::QueueClosed&) {
  }
  room.leave(name);
  room.drop(*user);  // closes the outbox: the writer flushes and ends
  w.join();
  room.broadcast("## " + name + " left the chat.\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "chat_server: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--help")) {
      std::puts("usage: chat_server [--host ADDR] [--port N] [--workers M] [--max-line BYTES]\n"
                "                   [--max-queue LINES] [--grace SECONDS]\n"
                "The talk's chat server on every core. Join with: nc localhost PORT\n"
                "A user with more than LINES waiting is dropped as too slow; it gets SECONDS\n"
                "(default 2) to take what is on its way and a notice, then it is cut off.\n"
                "Port 0 picks a free port; the port in use is printed. SIGINT/SIGTERM stop it.");
      return 0;
    } else if (!std::strcmp(argv[i], "--host")) {
      o.host = value();
    } else if (!std::strcmp(argv[i], "--port")) {
      o.port = std::atoi(value());
    } else if (!std::strcmp(argv[i], "--workers")) {
      o.workers = static_cast<unsigned>(std::atoi(value()));
    } else if (!std::strcmp(argv[i], "--max-line")) {
      o.max_line = static_cast<std::size_t>(std::atol(value()));
    } else if (!std::strcmp(argv[i], "--max-queue")) {
      o.max_queue = static_cast<std::size_t>(std::atol(value()));
    } else if (!std::strcmp(argv[i], "--grace")) {
      o.grace = std::chrono::milliseconds(static_cast<long>(std::atof(value()) * 1000));
    } else {
      std::fprintf(stderr, "chat_server: unknown argument %s (try --help)\n", argv[i]);
      return 2;
    }
  }
  if (o.port < 0 || o.port > 65535 || o.max_line < 1 || o.max_queue < 1 || o.grace.count() < 0) {
    std::fprintf(stderr, "chat_server: bad arguments (try --help)\n");
    return 2;
  }
  try {
    green::Runtime rt({.workers = o.workers});
    rt.run([&] {
      Room room(o);
      green::StreamServer server(green::Address::ip(o.host, static_cast<std::uint16_t>(o.port)),
                                 [&](green::Socket& sock, const green::Address& peer) { handle(sock, peer, room, o); });
      auto stop = [&] {
        room.broadcast("## the server is shutting down.\n");
        room.drop_all();
        server.stop(std::chrono::seconds(1));
      };
      green::SignalHandler on_int(SIGINT, stop);
      green::SignalHandler on_term(SIGTERM, stop);
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
