// test_resolve.cpp — name lookups through the hooks. On a green thread the
// lookup runs on green's blocking pool while the worker runs other green
// threads; on a plain thread it is libc's. No DNS is reachable here, so the
// names need none ("localhost" from /etc/hosts, numeric addresses) or fail
// inside glibc before any query ("a..b", an empty label). A lookup that
// blocks for as long as the test wants is glibc's own: HOSTALIASES names a
// FIFO, which glibc's resolver opens and reads for a name without a dot,
// and the open waits until the test opens the other end.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <green/green.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "monkey_util.hpp"
#include "parked.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using namespace green::testing;

std::string ipv4_of(const sockaddr* sa) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, text, sizeof text);
  return text;
}

// The lookups the tests expect from any thread.
void lookups_that_need_no_network() {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  ASSERT_EQ(::getaddrinfo("localhost", "80", &hints, &res), 0);
  ASSERT_NE(res, nullptr);
  EXPECT_EQ(res->ai_family, AF_INET);
  EXPECT_EQ(ipv4_of(res->ai_addr), "127.0.0.1");
  EXPECT_EQ(ntohs(reinterpret_cast<const sockaddr_in*>(res->ai_addr)->sin_port), 80);
  ::freeaddrinfo(res);

  hints.ai_flags = AI_NUMERICHOST;
  res = nullptr;
  ASSERT_EQ(::getaddrinfo("10.1.2.3", nullptr, &hints, &res), 0);
  EXPECT_EQ(ipv4_of(res->ai_addr), "10.1.2.3");
  ::freeaddrinfo(res);
  EXPECT_EQ(::getaddrinfo("not-numeric", nullptr, &hints, &res), EAI_NONAME);

  hints.ai_flags = 0;
  EXPECT_EQ(::getaddrinfo("a..b", nullptr, &hints, &res), EAI_NONAME);
  hints.ai_flags = 0x7fff'0000;
  EXPECT_EQ(::getaddrinfo("localhost", nullptr, &hints, &res), EAI_BADFLAGS);

  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(8080);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  ASSERT_EQ(::getnameinfo(reinterpret_cast<sockaddr*>(&sin), sizeof sin, host, sizeof host, serv, sizeof serv,
                          NI_NUMERICHOST | NI_NUMERICSERV),
            0);
  EXPECT_STREQ(host, "127.0.0.1");
  EXPECT_STREQ(serv, "8080");
  EXPECT_EQ(::getnameinfo(reinterpret_cast<sockaddr*>(&sin), 3, host, sizeof host, serv, sizeof serv, 0),
            EAI_FAMILY);

  hostent entry{};
  hostent* result = nullptr;
  int herr = 0;
  char buf[2048];
  EXPECT_EQ(::gethostbyname_r("localhost", &entry, buf, sizeof buf, &result, &herr), 0);
  ASSERT_EQ(result, &entry);
  EXPECT_STREQ(entry.h_name, "localhost");
  ASSERT_NE(entry.h_addr_list[0], nullptr);
  char tiny[8];
  EXPECT_EQ(::gethostbyname_r("localhost", &entry, tiny, sizeof tiny, &result, &herr), ERANGE);
  EXPECT_EQ(result, nullptr);
  ::gethostbyname_r("a..b", &entry, buf, sizeof buf, &result, &herr);
  EXPECT_EQ(result, nullptr);
  EXPECT_EQ(herr, HOST_NOT_FOUND);
}

TEST(MonkeyResolve, LookupsOnGreenThreads) {
  green::Runtime rt(workers(2));
  rt.run([] {
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < 8; ++i) gs.push_back(green::spawn([] { lookups_that_need_no_network(); }));
    for (auto& g : gs) ASSERT_TRUE(g.join(10s));
  });
}

TEST(MonkeyResolve, LookupsOnAPlainThreadAreLibcs) {
  green::Runtime rt(workers(2));  // green is present: the hooks are registered
  std::thread plain([] { lookups_that_need_no_network(); });
  plain.join();
}

// gethostbyname's result is the calling OS thread's, as libc's static one
// is the process's: not libc's buffer (which a plain thread's lookup
// overwrites here), and not the pool thread's.
TEST(MonkeyResolve, GethostbynameResultBelongsToTheCallingThread) {
  green::Runtime rt(workers(2));
  rt.run([] {
    h_errno = 0;
    const hostent* h = ::gethostbyname("localhost");
    ASSERT_NE(h, nullptr);
    EXPECT_STREQ(h->h_name, "localhost");
    EXPECT_EQ(h->h_addrtype, AF_INET);
    ASSERT_EQ(h->h_length, 4);
    ASSERT_NE(h->h_addr_list[0], nullptr);
    in_addr first{};
    std::memcpy(&first, h->h_addr_list[0], 4);
    EXPECT_EQ(first.s_addr, htonl(INADDR_LOOPBACK));

    const hostent* plain = nullptr;
    std::thread([&] { plain = ::gethostbyname("10.9.8.7"); }).join();
    ASSERT_NE(plain, nullptr);
    EXPECT_NE(plain, h);
    EXPECT_STREQ(h->h_name, "localhost") << "overwritten by another thread's lookup";
    std::memcpy(&first, h->h_addr_list[0], 4);
    EXPECT_EQ(first.s_addr, htonl(INADDR_LOOPBACK));

    h_errno = 0;
    EXPECT_EQ(::gethostbyname("a..b"), nullptr);
    EXPECT_EQ(h_errno, HOST_NOT_FOUND);
  });
}

// Whether glibc asks DNS for host names here (nsswitch.conf's hosts line):
// only its dns module reads HOSTALIASES.
bool dns_is_consulted() {
  std::ifstream f("/etc/nsswitch.conf");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("hosts:", 0) == 0) return line.find(" dns") != std::string::npos;
  return true;  // no nsswitch.conf: glibc's default is "dns files"
}

// HOSTALIASES as a FIFO: glibc's resolver, looking a dotless name up,
// opens it and blocks there until a writer comes. The test is the writer,
// and ends the lookup with an alias that fails inside glibc ("a..b"). A
// watchdog thread plays the writer if the test never does (a broken hook
// would hold the only worker), so nothing waits forever.
class BlockingLookup {
 public:
  BlockingLookup() {
    char tmpl[] = "/tmp/green_monkey_hostsXXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
    path_ = dir_ + "/aliases";
    if (::mkfifo(path_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo");
    ::setenv("HOSTALIASES", path_.c_str(), 1);
    watchdog_ = std::thread([this] {
      std::unique_lock lk(m_);
      if (!cv_.wait_for(lk, 20s, [this] { return done_; })) finish(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
    });
  }
  ~BlockingLookup() {
    {
      std::lock_guard g(m_);
      done_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    ::unsetenv("HOSTALIASES");
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  static constexpr const char* kName = "greenalias";  // no dot: the alias file is read

  // The lookup's open of the FIFO is under way (a non-blocking open for
  // writing succeeds only while a reader has it open): the writer's end.
  int reader_is_in() const { return ::open(path_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC); }

  // The lookup has read the FIFO and closed it: nobody has it open for reading.
  bool reader_gone() const {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
    return fd < 0 && errno == ENXIO;
  }

  // Ends the lookup: an alias, then EOF.
  static void finish(int writer) {
    if (writer < 0) return;
    static constexpr char kAlias[] = "greenalias a..b\n";
    [[maybe_unused]] const ssize_t n = ::write(writer, kAlias, sizeof kAlias - 1);
    ::close(writer);
  }

 private:
  std::string dir_, path_;
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread watchdog_;
};

// On one worker: while the lookup blocks in glibc (in the pool), the
// worker runs this green thread, which finds the lookup parked and its
// reader inside the FIFO's open, then lets it finish.
TEST(MonkeyResolve, ALookupRunsOnTheBlockingPoolWhileTheWorkerRunsOthers) {
  if (!dns_is_consulted()) GTEST_SKIP() << "no dns in nsswitch.conf's hosts: HOSTALIASES is never read";
  BlockingLookup lookup;
  green::Runtime rt(workers(1));
  rt.run([&] {
    int rc = -1;
    addrinfo* res = nullptr;
    auto g = green::spawn(green::SpawnOptions{.name = "resolver"},
                          [&] { rc = ::getaddrinfo(BlockingLookup::kName, nullptr, nullptr, &res); });
    ASSERT_TRUE(wait_parked(rt, "resolver", "getaddrinfo (hooked)"));
    int writer = -1;
    ASSERT_TRUE(wait_until([&] { return (writer = lookup.reader_is_in()) >= 0; }, 10s));
    EXPECT_TRUE(wait_parked(rt, "resolver", "getaddrinfo (hooked)")) << "still waiting while glibc blocks";
    BlockingLookup::finish(writer);
    ASSERT_TRUE(g.join(10s));
    EXPECT_EQ(rc, EAI_NONAME);
    EXPECT_EQ(res, nullptr);
  });
}

// A kill while the lookup blocks: getaddrinfo fails with EAI_SYSTEM and
// errno EINTR at once; the lookup finishes later on the pool and frees its
// own results (the ASan build's leak check would see them otherwise).
TEST(MonkeyResolve, KillWhileALookupBlocksGivesEaiSystemWithEintr) {
  if (!dns_is_consulted()) GTEST_SKIP() << "no dns in nsswitch.conf's hosts: HOSTALIASES is never read";
  BlockingLookup lookup;
  green::Runtime rt(workers(2));
  rt.run([&] {
    int rc = -1, e = 0;
    bool exit_raised = false;
    auto g = green::spawn(green::SpawnOptions{.name = "resolver"}, [&] {
      addrinfo* res = nullptr;
      rc = ::getaddrinfo(BlockingLookup::kName, "80", nullptr, &res);
      e = errno;
      green::testing::next_green_call_raises_exit(exit_raised);
    });
    ASSERT_TRUE(wait_parked(rt, "resolver", "getaddrinfo (hooked)"));
    int writer = -1;
    ASSERT_TRUE(wait_until([&] { return (writer = lookup.reader_is_in()) >= 0; }, 10s));
    g.kill();
    EXPECT_TRUE(g.killed());
    EXPECT_EQ(rc, EAI_SYSTEM);
    EXPECT_EQ(e, EINTR);
    EXPECT_TRUE(exit_raised);
    BlockingLookup::finish(writer);  // the abandoned lookup ends on its pool thread
    EXPECT_TRUE(wait_until([&] { return lookup.reader_gone(); }, 10s));
  });
}

// Shutdown while a green thread waits for a lookup that blocks: the
// runtime kills it, getaddrinfo returns EAI_SYSTEM/EINTR, the runtime
// stops; the lookup then ends on its pool thread.
TEST(MonkeyResolve, ShutdownWhileALookupBlocks) {
  if (!dns_is_consulted()) GTEST_SKIP() << "no dns in nsswitch.conf's hosts: HOSTALIASES is never read";
  BlockingLookup lookup;
  int rc = -1, e = 0, writer = -1;
  {
    green::Runtime rt(workers(2));
    rt.spawn(green::SpawnOptions{.name = "resolver"}, [&] {
      addrinfo* res = nullptr;
      rc = ::getaddrinfo(BlockingLookup::kName, nullptr, nullptr, &res);
      e = errno;
    });
    ASSERT_TRUE(wait_parked(rt, "resolver", "getaddrinfo (hooked)"));
    ASSERT_TRUE(wait_until([&] { return (writer = lookup.reader_is_in()) >= 0; }, 10s));
  }
  EXPECT_EQ(rc, EAI_SYSTEM);
  EXPECT_EQ(e, EINTR);
  BlockingLookup::finish(writer);
  EXPECT_TRUE(wait_until([&] { return lookup.reader_gone(); }, 10s));
}

}  // namespace
