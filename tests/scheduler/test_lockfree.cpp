// The scheduler's lock-free parts on their own, without a Runtime: a worker's
// work-stealing deque (run_queue.hpp), its inbox (inbox.hpp) and its timer
// heap (timers.hpp: owned by one thread, but racing other threads' wakes
// through the park words it reads).
//
// Every stress test counts what it hands over, so that an item lost or taken
// twice fails it, and runs under ThreadSanitizer too: what a producer writes
// into an item before publishing it is read, non-atomically, by whoever takes
// it, so a missing happens-before is a reported race. No sleeps: threads meet
// through atomics only, and every loop is bounded by an operation count or,
// where it waits for another thread, by a deadline.
//
// Sizes (per_build, tests/support/test_env.hpp): each deque and inbox
// stress test makes 10 million operations in release (5 million items, each
// pushed once and taken once); a fifth of that under AddressSanitizer, and a
// tenth (deque) or a twenty-fifth (inbox) under ThreadSanitizer, where every
// atomic costs tens of times more. The timer heap stress makes a million
// parks in release (200,000 under ASan, 100,000 under TSan).
#include <gtest/gtest.h>

// Internal headers. tests/CMakeLists.txt does not put scheduler/src on the
// test binaries' include path (only the library's own sources see it), so
// they are reached from here; their own includes resolve as in the library.
#include "../../scheduler/src/inbox.hpp"
#include "../../scheduler/src/run_queue.hpp"
#include "../../scheduler/src/timers.hpp"

#include "test_env.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using green::detail::Deadline;
using green::detail::Fiber;
using green::detail::Inbox;
using green::detail::TimerHeap;
using green::detail::WorkDeque;
using green::testing::per_build;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// What a stress test allows itself before it calls the run broken (ctest
// kills a test at 120 s): a thread waiting for another gives up here.
constexpr auto kGiveUp = 60s;

// xorshift64: fast, deterministic per seed, good enough to vary interleavings.
struct Rng {
  std::uint64_t s;
  std::uint32_t next() noexcept {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<std::uint32_t>(s >> 32);
  }
};

// Spins (yielding now and then: the CI machine may have fewer cores than
// threads here) until pred() holds; false at `give_up` or once `abort` is set.
template <class Pred>
bool spin_until(Pred pred, Clock::time_point give_up, const std::atomic<bool>& abort) {
  for (std::uint32_t n = 1;; ++n) {
    if (pred()) return true;
    if (n % 64 == 0) {
      if (abort.load(std::memory_order_relaxed) || Clock::now() > give_up) return false;
      std::this_thread::yield();
    }
  }
}

// ===========================================================================
// WorkDeque

// A deque entry: never run as a Fiber, only pointed at (the deque stores and
// returns pointers and never dereferences them).
struct Item {
  std::uint32_t id = 0;
  std::uint32_t stamp = 0;  // written by the owner just before the push
};
constexpr std::uint32_t stamp_of(std::uint32_t id) noexcept { return id * 2654435761u ^ 0x5bd1e995u; }
Fiber* as_fiber(Item* i) noexcept { return reinterpret_cast<Fiber*>(i); }
Item* as_item(Fiber* f) noexcept { return reinterpret_cast<Item*>(f); }

// A distinct non-null pointer per id, for tests that only compare pointers.
Fiber* fake_fiber(std::uint32_t id) noexcept {
  return reinterpret_cast<Fiber*>(static_cast<std::uintptr_t>(id + 1) << 4);
}

// What one thread (the owner or a thief) took.
struct Taker {
  std::vector<std::uint32_t> got;
  std::uint64_t bad_stamps = 0;  // read before the owner's write was visible
  void take(Fiber* f) {
    const Item* it = as_item(f);
    if (it->stamp != stamp_of(it->id)) ++bad_stamps;
    got.push_back(it->id);
  }
};

// Every id in [0, n) taken exactly once, over all takers.
::testing::AssertionResult each_exactly_once(std::uint32_t n, const std::vector<Taker>& takers) {
  std::vector<std::uint8_t> seen(n, 0);
  std::uint64_t duplicated = 0, foreign = 0, bad_stamps = 0;
  std::int64_t first_dup = -1;
  for (const Taker& t : takers) {
    bad_stamps += t.bad_stamps;
    for (std::uint32_t id : t.got) {
      if (id >= n) {
        ++foreign;
      } else if (seen[id]++ != 0) {
        ++duplicated;
        if (first_dup < 0) first_dup = id;
      }
    }
  }
  std::uint64_t lost = 0;
  std::int64_t first_lost = -1;
  for (std::uint32_t id = 0; id < n; ++id) {
    if (seen[id] == 0) {
      ++lost;
      if (first_lost < 0) first_lost = id;
    }
  }
  if (lost == 0 && duplicated == 0 && foreign == 0 && bad_stamps == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "of " << n << " items: " << lost << " lost (first: " << first_lost
                                       << "), " << duplicated << " taken twice or more (first: " << first_dup
                                       << "), " << foreign << " unknown, " << bad_stamps
                                       << " read before their contents were visible";
}

// Owner-only operations checked one by one against a std::deque, with no
// other thread: LIFO at the owner's end, FIFO at the thieves', push_front
// taken last by the owner and first by a thief, full at kCapacity. The
// indices start at 0 and push_front moves `top` below it, so both indices
// wrap through zero again and again (they are compared by signed difference).
TEST(WorkDeque, SingleThreadMatchesAModel) {
  WorkDeque dq;
  WorkDeque::Owner owner(dq);
  const WorkDeque::Stealer thief = owner.stealer();
  std::deque<std::uint32_t> model;
  Rng rng{42};
  const int kOps = per_build(400'000, 200'000, 50'000);
  std::uint32_t next_id = 0;
  bool top_went_below_zero = false, filled = false;
  // Phases drift the indices: front pushes with back pops walk them down
  // through zero; back pushes with steals walk them up.
  for (int op = 0; op < kOps; ++op) {
    const std::uint32_t r = rng.next();
    const bool down = (op / 5000) % 2 == 0;
    const std::uint32_t kind = r % 16;
    if (kind < 5) {  // push, at the drift's end mostly
      const bool front = down ? kind < 4 : kind < 1;
      const bool full = model.size() == WorkDeque::kCapacity;
      Fiber* f = fake_fiber(next_id);
      const bool ok = front ? owner.push_front(f) : owner.push_back(f);
      ASSERT_EQ(ok, !full) << "op " << op << ": push with " << model.size() << " queued";
      if (ok) {
        if (front) {
          model.push_front(next_id);
        } else {
          model.push_back(next_id);
        }
        ++next_id;
      }
      filled = filled || full;
    } else if (kind < 11) {  // take (a little more often than push): pop_back
                             // when drifting down, steal when up
      const bool back = down ? kind < 10 : kind < 6;
      Fiber* got = back ? owner.pop_back() : thief.steal();
      Fiber* want = nullptr;
      if (!model.empty()) {
        want = fake_fiber(back ? model.back() : model.front());
        if (back) {
          model.pop_back();
        } else {
          model.pop_front();
        }
      }
      ASSERT_EQ(got, want) << "op " << op << (back ? ": pop_back" : ": steal");
    } else if (kind == 11 && (r >> 8) % 1024 == 0) {  // now and then: fill it up
      while (model.size() < WorkDeque::kCapacity) {
        ASSERT_TRUE(owner.push_back(fake_fiber(next_id)));
        model.push_back(next_id++);
      }
    }
    ASSERT_EQ(owner.size_approx(), model.size()) << "op " << op;
    top_went_below_zero = top_went_below_zero || owner.top_index() >= 0x80000000u;
  }
  EXPECT_TRUE(top_went_below_zero) << "the indices never wrapped through zero";
  EXPECT_TRUE(filled) << "the deque was never full";
  while (!model.empty()) {
    ASSERT_EQ(owner.pop_back(), fake_fiber(model.back()));
    model.pop_back();
  }
  EXPECT_EQ(owner.pop_back(), nullptr);
  EXPECT_EQ(thief.steal(), nullptr);
}

// The ABA case the version in `top` exists for, step by step. steal() loads
// top, reads the slot at top's index, and claims it with a CAS on top. A
// thief that stalls between the read and the CAS while the entry is taken
// (by another thief, or by the owner's pop_back of the last entry) and the
// owner's push_front puts a new entry into the same slot finds top's index
// back where it read it: only the version tells the CAS that the slot was
// recycled. Were the CAS to win, the stalled thief would return the entry
// already taken (twice in all) and the new one would be skipped (lost).
//
// The real steal() cannot be stopped between its read and its CAS without a
// hook in run_queue.hpp (say, a test-only callback steal() calls after the
// slot read), so the stalled thief is replayed here: it reads `top` itself
// and makes exactly the CAS steal() makes. `top` is reached as WorkDeque's
// first member, which a standard-layout class shares its address with.
TEST(WorkDeque, VersionStopsAStalledThiefOnARecycledIndex) {
  static_assert(std::is_standard_layout_v<WorkDeque>, "top_ must stay reachable as the first member");
  WorkDeque dq;
  WorkDeque::Owner owner(dq);
  const WorkDeque::Stealer thief = owner.stealer();
  auto& top = *reinterpret_cast<std::atomic<std::uint64_t>*>(&dq);
  ASSERT_EQ(static_cast<std::uint32_t>(top.load()), owner.top_index()) << "top_ is no longer the first member";
  std::uint32_t id = 0;
  // 64 rounds per way, each one index lower: the scenario at index 0, then
  // at indices wrapped below zero.
  for (int round = 0; round < 128; ++round) {
    const bool owner_takes = round % 2 == 1;
    SCOPED_TRACE("round " + std::to_string(round) + (owner_takes ? ": the owner" : ": a thief") +
                 " takes the entry");
    Fiber* const a = fake_fiber(id++);
    Fiber* const b = fake_fiber(id++);
    ASSERT_TRUE(owner.push_back(a));
    // The stalled thief's first step: top (its slot holds a).
    std::uint64_t seen = top.load(std::memory_order_acquire);
    ASSERT_EQ(static_cast<std::uint32_t>(seen), owner.top_index());
    // Meanwhile a is taken, and push_front refills the slot with b.
    if (owner_takes) {
      ASSERT_EQ(owner.pop_back(), a);
    } else {
      ASSERT_EQ(thief.steal(), a);
    }
    ASSERT_TRUE(owner.push_front(b));
    ASSERT_EQ(owner.top_index(), static_cast<std::uint32_t>(seen)) << "not the ABA case: the index moved on";
    // The stalled thief's CAS, as steal() makes it: same version, index + 1.
    const std::uint64_t claim = (seen & 0xffffffff00000000ull) | static_cast<std::uint32_t>(seen + 1);
    std::uint64_t expected = seen;
    EXPECT_FALSE(top.compare_exchange_strong(expected, claim, std::memory_order_seq_cst))
        << "a thief stalled since before the slot was recycled won its CAS: it would return a second "
           "time and b would be lost";
    // b is still there, once; the deque is empty after it.
    EXPECT_EQ(thief.steal(), b);
    EXPECT_EQ(thief.steal(), nullptr);
    EXPECT_EQ(owner.pop_back(), nullptr);
    ASSERT_EQ(owner.size_approx(), 0u);
    if (::testing::Test::HasFailure()) return;
    // The round moved both indices one up; walk them two down (two
    // push_fronts, two pop_backs) for the next round.
    for (int step = 0; step < 2; ++step) {
      Fiber* const x = fake_fiber(id++);
      Fiber* const y = fake_fiber(id++);
      ASSERT_TRUE(owner.push_front(x));
      ASSERT_TRUE(owner.push_front(y));
      ASSERT_EQ(owner.pop_back(), x);
      ASSERT_EQ(owner.pop_back(), y);
    }
  }
  EXPECT_GE(owner.top_index(), 0x80000000u) << "the rounds never reached indices below zero";
}

// The owner's pop_back and a thief's steal race for the last entry, round
// after round in lockstep: exactly one of them gets it (their CASes on top
// decide). The owner's start is shifted against the thief's until each wins
// a good share of rounds. A million rounds in release, 100,000 under ASan,
// 5,000 under TSan, or 5 s. (The fences that order bottom against top are
// the stress tests' business below: without pop_back's, every one of them
// fails on x86, where this test does not.)
TEST(WorkDeque, LastEntryGoesToExactlyOneOfOwnerAndThief) {
  const std::uint32_t kRounds = per_build(1'000'000u, 100'000u, 5'000u);
  WorkDeque dq;
  WorkDeque::Owner owner(dq);
  const WorkDeque::Stealer stealer = owner.stealer();
  std::vector<Item> items(kRounds + 1);
  std::atomic<std::uint32_t> go{0}, done_round{0};
  std::atomic<bool> abort{false};
  std::atomic<Fiber*> thief_got{nullptr};
  const auto give_up = Clock::now() + kGiveUp;
  std::thread thief([&] {
    for (std::uint32_t r = 1; r <= kRounds; ++r) {
      if (!spin_until([&] { return go.load(std::memory_order_acquire) == r; }, give_up, abort)) return;
      thief_got.store(stealer.steal(), std::memory_order_relaxed);
      done_round.store(r, std::memory_order_release);
    }
  });
  Rng rng{7};
  std::uint32_t delay = 0;
  std::uint32_t both = 0, neither = 0, owner_won = 0, thief_won = 0, wrong = 0, left = 0, rounds = 0;
  bool stalled = false;
  // Each round needs both threads on a core at once; where other work takes
  // the cores, a round can wait for a time slice, so the rounds also stop
  // after kBudget.
  constexpr auto kBudget = 5s;
  const auto stop_at = Clock::now() + kBudget;
  for (std::uint32_t r = 1; r <= kRounds; ++r) {
    if (r % 256 == 0 && Clock::now() > stop_at) break;
    rounds = r;
    Item& it = items[r];
    if (!owner.push_back(as_fiber(&it))) ++wrong;  // cannot be full: at most one entry
    go.store(r, std::memory_order_release);
    // Hold the owner back about as long as the thief takes to see `go`, so
    // that the two really meet at the last entry: the delay grows while the
    // owner wins and shrinks while the thief does, with some jitter.
    const std::uint32_t hold = delay + rng.next() % (delay / 4 + 16);
    for (std::uint32_t spin = 0; spin < hold; ++spin) std::atomic_signal_fence(std::memory_order_seq_cst);
    Fiber* mine = owner.pop_back();
    if (!spin_until([&] { return done_round.load(std::memory_order_acquire) == r; }, give_up, abort)) {
      stalled = true;
      break;
    }
    Fiber* theirs = thief_got.load(std::memory_order_relaxed);
    if (mine && theirs) ++both;
    if (!mine && !theirs) ++neither;
    if (mine) {
      ++owner_won;
      if (delay < (1u << 20)) delay += delay / 8 + 4;  // geometric: TSan's thief is slow
    }
    if (theirs) {
      ++thief_won;
      delay -= delay / 4;
    }
    if ((mine && mine != as_fiber(&it)) || (theirs && theirs != as_fiber(&it))) ++wrong;
    if (owner.size_approx() != 0) {
      ++left;
      while (owner.pop_back()) {
      }
    }
  }
  abort.store(true);
  thief.join();
  EXPECT_FALSE(stalled) << "the thief stopped answering";
  EXPECT_EQ(left, 0u) << "rounds that left an entry in the deque";
  EXPECT_EQ(both, 0u) << "rounds where owner and thief both took the last entry";
  EXPECT_EQ(neither, 0u) << "rounds where the last entry was lost";
  EXPECT_EQ(wrong, 0u) << "rounds where a wrong entry came out";
  EXPECT_GT(thief_won, 0u) << "the thief never won: the race was not exercised";
  EXPECT_GT(owner_won, 0u) << "the owner never won: the race was not exercised";
  ::testing::Test::RecordProperty("rounds", static_cast<int>(rounds));
  ::testing::Test::RecordProperty("thief_won", static_cast<int>(thief_won));
  ::testing::Test::RecordProperty("owner_won", static_cast<int>(owner_won));
}

struct DequeStressCase {
  unsigned thieves;
  std::uint32_t front_in_8;              // share of pushes that are push_front
  std::vector<std::uint32_t> targets;    // queue lengths the owner grows to
  std::uint32_t work;                    // the owner's pause after each operation, at most
  const char* name;
};

// The owner pushes (back, and front) and pops while `thieves` threads steal
// all along; the owner grows the queue to a target length and shrinks it to
// empty, over and over, so the last-entry race, a full deque and thieves
// taking the slot push_front refills all occur. Each of the items is taken
// exactly once, with the contents the owner wrote before pushing it.
void deque_stress(const DequeStressCase& c) {
  const std::uint32_t n = per_build(5'000'000u, 1'000'000u, 500'000u);
  WorkDeque dq;
  WorkDeque::Owner owner(dq);
  const WorkDeque::Stealer thief = owner.stealer();
  std::vector<Item> items(n);
  for (std::uint32_t i = 0; i < n; ++i) items[i].id = i;
  std::vector<Taker> takers(c.thieves + 1);  // [0]: the owner
  std::atomic<bool> done{false}, abort{false};
  std::atomic<unsigned> ready{0};
  std::vector<std::thread> thieves;
  for (unsigned k = 1; k <= c.thieves; ++k) {
    thieves.emplace_back([&, k] {
      Taker& me = takers[k];
      me.got.reserve(n / 4);
      ready.fetch_add(1);
      std::uint32_t misses = 0;
      for (;;) {
        // Read before the steal: once the owner is done and has drained its
        // deque, a steal that finds nothing means nothing is left.
        const bool finished = done.load(std::memory_order_acquire);
        if (Fiber* f = thief.steal()) {
          me.take(f);
          misses = 0;
        } else if (finished) {
          break;
        } else if (++misses % 64 == 0) {
          std::this_thread::yield();  // let the owner run where cores are few
        }
      }
    });
  }
  const auto give_up = Clock::now() + kGiveUp;
  if (!spin_until([&] { return ready.load() == c.thieves; }, give_up, abort)) {
    done.store(true);
    for (auto& t : thieves) t.join();
    FAIL() << "the thieves did not start";
  }
  Taker& me = takers[0];
  me.got.reserve(n);
  Rng rng{0x9e3779b97f4a7c15ull + c.thieves};
  std::uint32_t pushed = 0, target = 1, fulls = 0;
  bool growing = true, stuck = false;
  // A broken deque can look full and empty at once for ever (top past
  // bottom): a million operations in a row that move nothing end the run.
  std::uint32_t idle_ops = 0;
  for (std::uint64_t op = 1; pushed < n; ++op) {
    if (++idle_ops > 1'000'000 || (op % 4096 == 0 && Clock::now() > give_up)) {
      stuck = true;
      break;
    }
    const std::uint32_t r = rng.next();
    const std::uint32_t size = owner.size_approx();
    if (growing && size >= target) {
      growing = false;
    } else if (!growing && size == 0) {
      growing = true;
      target = c.targets[r % c.targets.size()];
    }
    const bool push = (r >> 8) % 4 != 0 ? growing : !growing;  // 3 in 4 toward the target
    if (push) {
      Item& it = items[pushed];
      it.stamp = stamp_of(pushed);
      const bool front = (r >> 16) % 8 < c.front_in_8;
      if (front ? owner.push_front(as_fiber(&it)) : owner.push_back(as_fiber(&it))) {
        ++pushed;
        idle_ops = 0;
      } else {
        ++fulls;
        growing = false;
      }
    } else if (Fiber* f = owner.pop_back()) {
      me.take(f);
      idle_ops = 0;
    }
    // A moment's other work, as a worker runs what it pops: the thieves'
    // chance to find entries in the deque.
    for (std::uint32_t spin = (r >> 20) % c.work; spin > 0; --spin) std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  // pop_back returns null only when the deque is empty or a thief won its
  // last entry: either way it is empty then.
  for (std::uint32_t left = 0; left <= WorkDeque::kCapacity; ++left) {
    Fiber* f = owner.pop_back();
    if (!f) break;
    me.take(f);
  }
  done.store(true, std::memory_order_release);
  for (auto& t : thieves) t.join();
  EXPECT_FALSE(stuck) << "the owner got stuck after pushing " << pushed << " of " << n << " items";
  EXPECT_TRUE(each_exactly_once(n, takers));
  std::size_t stolen = 0;
  for (unsigned k = 1; k <= c.thieves; ++k) stolen += takers[k].got.size();
  EXPECT_GT(stolen, 0u) << "the thieves took nothing: no race was exercised";
  EXPECT_EQ(owner.size_approx(), 0u);
  ::testing::Test::RecordProperty("stolen", static_cast<int>(stolen));
  ::testing::Test::RecordProperty("owner_took", static_cast<int>(me.got.size()));
  ::testing::Test::RecordProperty("full", static_cast<int>(fulls));
}

void PrintTo(const DequeStressCase& c, std::ostream* os) { *os << c.name; }

class WorkDequeStress : public ::testing::TestWithParam<DequeStressCase> {};

TEST_P(WorkDequeStress, EveryItemTakenExactlyOnce) { deque_stress(GetParam()); }

// Mixed: 1 push in 8 at the front, lengths from 1 to full.
// FrontRecycling: the ABA pattern under load. The owner only push_fronts and
// keeps at most two entries, so thieves steal from the very slots push_front
// keeps refilling; a CAS that ignored the version would hand an entry out
// twice and drop the next. The owner's longer pauses here give thieves time
// to stall inside steal(): with push_front's version bump removed, these two
// failed 6 runs in 8 on a loaded 2-core machine (VersionStopsAStalledThief...
// above fails every time).
INSTANTIATE_TEST_SUITE_P(
    Thieves, WorkDequeStress,
    ::testing::Values(DequeStressCase{1, 1, {1, 2, 4, 64, WorkDeque::kCapacity}, 128, "Mixed1Thief"},
                      DequeStressCase{2, 1, {1, 2, 4, 64, WorkDeque::kCapacity}, 128, "Mixed2Thieves"},
                      DequeStressCase{3, 1, {1, 2, 4, 64, WorkDeque::kCapacity}, 128, "Mixed3Thieves"},
                      DequeStressCase{1, 8, {1, 2}, 512, "FrontRecycling1Thief"},
                      DequeStressCase{3, 8, {1, 2}, 512, "FrontRecycling3Thieves"}),
    [](const ::testing::TestParamInfo<DequeStressCase>& info) { return std::string(info.param.name); });

// ===========================================================================
// Inbox

// A Fiber that is never run: the inbox links Fibers through inbox_next.
struct Posted final : Fiber {
  void run_body() override {}
  unsigned producer = 0;
  std::uint64_t seq = 0;              // written by its producer before each push
  std::atomic<bool> in_inbox{false};  // from its push until the consumer popped it
};

TEST(Inbox, SingleThreadIsFifo) {
  std::vector<std::unique_ptr<Posted>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(std::make_unique<Posted>());
  Inbox in;
  EXPECT_TRUE(in.empty());
  EXPECT_FALSE(in.has_posted());
  EXPECT_EQ(in.pop(), nullptr);
  for (int i = 0; i < 3; ++i) in.push(fs[i].get());
  EXPECT_TRUE(in.has_posted());
  EXPECT_FALSE(in.empty());
  EXPECT_EQ(in.pop(), fs[0].get());  // takes the whole stack, oldest first
  EXPECT_FALSE(in.has_posted());      // now in the owner's private FIFO
  EXPECT_FALSE(in.empty());
  in.push(fs[3].get());  // posted while older ones wait in the FIFO
  in.push(fs[0].get());  // popped already: may be posted again
  EXPECT_EQ(in.pop(), fs[1].get());
  EXPECT_EQ(in.pop(), fs[2].get());
  EXPECT_EQ(in.pop(), fs[3].get());
  EXPECT_EQ(in.pop(), fs[0].get());
  EXPECT_EQ(in.pop(), nullptr);
  EXPECT_TRUE(in.empty());
  for (auto& f : fs) EXPECT_EQ(f->inbox_next, nullptr);
}

// Producers post their Fibers (each reused as soon as the consumer popped
// it, so links are rewritten all the time) while the owner pops: every post
// arrives exactly once, and each producer's posts arrive in the order made.
void inbox_stress(unsigned producers) {
  const std::uint64_t total = per_build(5'000'000u, 1'000'000u, 200'000u);  // a push and a pop each
  const std::uint64_t per_producer = total / producers;
  // Fibers per producer: enough that a producer and the consumer each get
  // much done in a time slice where they share a core.
  constexpr unsigned kRing = 1024;
  std::vector<std::unique_ptr<Posted>> fibers;
  for (unsigned p = 0; p < producers; ++p) {
    for (unsigned i = 0; i < kRing; ++i) {
      fibers.push_back(std::make_unique<Posted>());
      fibers.back()->producer = p;
    }
  }
  Inbox inbox;
  std::atomic<bool> abort{false};
  const auto give_up = Clock::now() + kGiveUp;
  std::vector<std::thread> threads;
  for (unsigned p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      for (std::uint64_t i = 0; i < per_producer; ++i) {
        Posted& f = *fibers[p * kRing + i % kRing];
        if (!spin_until([&] { return !f.in_inbox.load(std::memory_order_acquire); }, give_up, abort)) return;
        f.seq = i;
        f.in_inbox.store(true, std::memory_order_relaxed);
        inbox.push(&f);
      }
    });
  }
  std::vector<std::uint64_t> next_seq(producers, 0);
  std::uint64_t received = 0, out_of_order = 0;
  std::uint64_t first_bad_producer = 0, first_bad_seq = 0, first_bad_expected = 0;
  const std::uint64_t expected_total = per_producer * producers;
  for (std::uint32_t idle = 0; received < expected_total;) {
    Fiber* got = inbox.pop();
    if (!got) {
      if (++idle % 64 == 0) {
        if (Clock::now() > give_up) break;
        std::this_thread::yield();
      }
      continue;
    }
    auto& f = static_cast<Posted&>(*got);
    if (f.seq != next_seq[f.producer] && out_of_order++ == 0) {
      first_bad_producer = f.producer;
      first_bad_seq = f.seq;
      first_bad_expected = next_seq[f.producer];
    }
    next_seq[f.producer] = f.seq + 1;
    ++received;
    f.in_inbox.store(false, std::memory_order_release);  // its producer may reuse it
  }
  abort.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(received, expected_total) << "posts lost (the consumer gave up after " << kGiveUp.count() << " s)";
  EXPECT_EQ(out_of_order, 0u) << "first: producer " << first_bad_producer << " sent post " << first_bad_expected
                              << " next but post " << first_bad_seq << " arrived";
  for (unsigned p = 0; p < producers; ++p) EXPECT_EQ(next_seq[p], per_producer) << "producer " << p;
  EXPECT_EQ(inbox.pop(), nullptr) << "more posts than were made";
  EXPECT_TRUE(inbox.empty());
  EXPECT_FALSE(inbox.has_posted());
}

TEST(InboxStress, OneProducer) { inbox_stress(1); }
TEST(InboxStress, TwoProducers) { inbox_stress(2); }
TEST(InboxStress, ThreeProducers) { inbox_stress(3); }

// ===========================================================================
// TimerHeap

struct Sleeper final : Fiber {
  void run_body() override {}
};

// Park word of a fiber parked in wait `seq`, and once that wait is over.
constexpr std::uint64_t parked_word(std::uint64_t seq) noexcept { return (seq << 1) | 1; }
constexpr std::uint64_t woken_word(std::uint64_t seq) noexcept { return seq << 1; }

// The virtual clock of the timer tests: nanoseconds since the clock's epoch.
Deadline at(std::int64_t ns) { return Deadline{} + std::chrono::nanoseconds(ns); }
std::int64_t ns(Deadline d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d.time_since_epoch()).count(); }

TEST(TimerHeap, EarliestFirstStaleEntriesDroppedReferencesKept) {
  Sleeper a, b, c;
  {
    TimerHeap heap;
    EXPECT_TRUE(heap.next_deadline() == green::detail::kNoDeadline) << "an empty heap has a deadline";
    a.park_word = parked_word(1);
    b.park_word = parked_word(1);
    c.park_word = parked_word(1);
    heap.push(at(30), &a, 1);
    heap.push(at(10), &b, 1);
    heap.push(at(20), &c, 1);
    EXPECT_EQ(a.refs.load(), 2u);  // an entry holds a reference
    EXPECT_EQ(ns(heap.next_deadline()), 10);
    // b is woken some other way: its entry goes stale and is dropped when
    // it reaches the top, with its reference.
    b.park_word = woken_word(1);
    EXPECT_EQ(ns(heap.next_deadline()), 20);
    EXPECT_EQ(b.refs.load(), 1u);
    // c is woken and parks again (wait 2) with a later deadline: the old
    // entry is stale although c is parked.
    c.park_word = parked_word(2);
    heap.push(at(40), &c, 2);
    EXPECT_EQ(c.refs.load(), 3u);
    EXPECT_EQ(ns(heap.next_deadline()), 30);
    EXPECT_EQ(c.refs.load(), 2u);
    std::vector<std::pair<Fiber*, std::uint64_t>> fired;
    auto record = [&](Fiber* f, std::uint64_t seq) { fired.emplace_back(f, seq); };
    EXPECT_EQ(heap.fire_due(at(29), record), 0);
    EXPECT_EQ(heap.fire_due(at(35), record), 1);
    ASSERT_EQ(fired.size(), 1u);
    EXPECT_EQ(fired[0], std::make_pair(static_cast<Fiber*>(&a), std::uint64_t{1}));
    EXPECT_EQ(a.refs.load(), 1u);
    // A stale entry that comes due before anything drops it still fires,
    // with its own (old) sequence, so that its wake loses.
    a.park_word = parked_word(5);
    heap.push(at(36), &a, 4);
    heap.push(at(50), &a, 5);
    EXPECT_EQ(heap.fire_due(at(45), record), 2);
    ASSERT_EQ(fired.size(), 3u);
    EXPECT_EQ(fired[1], std::make_pair(static_cast<Fiber*>(&a), std::uint64_t{4}));
    EXPECT_EQ(fired[2], std::make_pair(static_cast<Fiber*>(&c), std::uint64_t{2}));
    EXPECT_FALSE(heap.empty());
    EXPECT_EQ(a.refs.load(), 2u);
    EXPECT_EQ(ns(heap.next_deadline()), 50);
  }  // the heap's end releases what it still holds
  EXPECT_EQ(a.refs.load(), 1u);
  EXPECT_EQ(b.refs.load(), 1u);
  EXPECT_EQ(c.refs.load(), 1u);
}

// The heap's owner parks fibers with deadlines on a virtual clock and fires
// what comes due, while `wakers` threads wake parked fibers all along, each
// wake (timer or waker) one CAS on the park word, as in park.hpp. Fibers are
// parked again as soon as they are awake, so stale entries pile up in the
// heap. Every wait must end exactly once, due entries fire earliest first,
// and every reference an entry took is given back.
void timer_stress(unsigned wakers) {
  const std::uint64_t kParks = per_build(1'000'000u, 200'000u, 100'000u);
  constexpr unsigned kFibers = 64;
  std::vector<std::unique_ptr<Sleeper>> fibers;
  for (unsigned i = 0; i < kFibers; ++i) fibers.push_back(std::make_unique<Sleeper>());
  // wins[seq]: how many wakes won wait `seq` (sequences are unique over all
  // fibers here, which park.hpp allows: it only needs them to change).
  std::vector<std::atomic<std::uint8_t>> wins(kParks + 1);
  std::vector<std::int64_t> deadline_of(kParks + 1);  // owner only
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> waker_wins{0};
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < wakers; ++w) {
    threads.emplace_back([&, w] {
      Rng rng{1234567 + w};
      std::uint64_t mine = 0;
      for (std::uint32_t n = 1; !done.load(std::memory_order_acquire); ++n) {
        Sleeper& f = *fibers[rng.next() % kFibers];
        f.add_ref();  // a waker holds its own reference, as a Waiter does
        std::uint64_t word = f.park_word.load(std::memory_order_acquire);
        if ((word & 1) && f.park_word.compare_exchange_strong(word, word & ~std::uint64_t{1},
                                                              std::memory_order_acq_rel)) {
          wins[word >> 1].fetch_add(1, std::memory_order_relaxed);
          ++mine;
        }
        f.release();
        if (n % 64 == 0) std::this_thread::yield();
      }
      waker_wins.fetch_add(mine);
    });
  }
  std::uint64_t timer_wins = 0, next_seq = 1, fired = 0, out_of_order = 0;
  std::int64_t now = 0, last_fired_at = 0;
  Rng rng{99};
  auto fire = [&](Fiber* f, std::uint64_t seq) {
    ++fired;
    if (deadline_of[seq] < last_fired_at) ++out_of_order;
    last_fired_at = deadline_of[seq];
    std::uint64_t expected = parked_word(seq);
    if (f->park_word.compare_exchange_strong(expected, woken_word(seq), std::memory_order_acq_rel)) {
      wins[seq].fetch_add(1, std::memory_order_relaxed);
      ++timer_wins;
    }
  };
  {
    TimerHeap heap;
    while (next_seq <= kParks) {
      for (unsigned i = 0; i < kFibers && next_seq <= kParks; ++i) {
        Sleeper& f = *fibers[i];
        if (f.park_word.load(std::memory_order_acquire) & 1) continue;  // still parked
        const std::uint64_t seq = next_seq++;
        deadline_of[seq] = now + rng.next() % 64;
        f.park_word.store(parked_word(seq), std::memory_order_release);
        heap.push(at(deadline_of[seq]), &f, seq);
      }
      now += 1 + rng.next() % 16;
      const Deadline next = heap.next_deadline();
      if (next != green::detail::kNoDeadline && next < at(last_fired_at)) ++out_of_order;
      heap.fire_due(at(now), fire);
    }
    // Whatever is still parked times out.
    heap.fire_due(at(now + 64), fire);
    EXPECT_TRUE(heap.next_deadline() == green::detail::kNoDeadline) << "an entry is left";
    EXPECT_TRUE(heap.empty());
  }
  done.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  std::uint64_t never = 0, twice = 0, first_never = 0, first_twice = 0;
  for (std::uint64_t s = 1; s <= kParks; ++s) {
    const unsigned n = wins[s].load();
    if (n == 0 && never++ == 0) first_never = s;
    if (n > 1 && twice++ == 0) first_twice = s;
  }
  EXPECT_EQ(never, 0u) << "waits never woken (first: " << first_never << ")";
  EXPECT_EQ(twice, 0u) << "waits woken twice (first: " << first_twice << ")";
  EXPECT_EQ(out_of_order, 0u) << "entries fired (or offered as next) out of deadline order";
  EXPECT_GT(timer_wins, 0u) << "no timer ever won: the race was not exercised";
  EXPECT_GT(waker_wins.load(), 0u) << "no waker ever won: the race was not exercised";
  EXPECT_EQ(timer_wins + waker_wins.load(), kParks);
  for (unsigned i = 0; i < kFibers; ++i) {
    EXPECT_EQ(fibers[i]->refs.load(), 1u) << "fiber " << i << ": references not given back";
    EXPECT_FALSE(fibers[i]->park_word.load() & 1) << "fiber " << i << " still parked";
  }
  ::testing::Test::RecordProperty("timer_wins", static_cast<int>(timer_wins));
  ::testing::Test::RecordProperty("fired", static_cast<int>(fired));
}

TEST(TimerHeapStress, OneWaker) { timer_stress(1); }
TEST(TimerHeapStress, TwoWakers) { timer_stress(2); }

}  // namespace
