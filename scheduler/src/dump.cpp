// dump.cpp — Runtime::dump(): what every live green thread is doing.
//
// A snapshot taken without stopping the runtime. Each live green thread is
// referenced (add_ref) under its registry shard's lock, then described
// outside the locks. What a parked green thread waits on is read between
// two reads of its park word (acquire), like the deadlock check's look:
// the fields a park stores before its park word goes odd are then those of
// that park. A green thread that wakes during the dump is shown as it was.
//
// STACKS. A parked green thread's stack is walked from the registers its
// last switch saved (unwind.hpp), while that one green thread is held
// still; nothing else stops. The handshake, with the waker in
// try_wake_fiber (park.cpp), the one way a parked green thread becomes
// runnable again (a notify, a timer, a kill, an fd):
//
//   dump                                 waker
//   sees park word W (odd: parked)
//   inspectors += 1           (seq_cst)  CAS park word W -> even (seq_cst)
//   re-reads the park word    (seq_cst)  inspectors != 0? (seq_cst)
//   still W: walk the stack                then wait until it is 0
//   inspectors -= 1, notify              schedule the green thread
//
// All four are seq_cst, so they fall in one total order. If the re-read
// still sees W, the CAS comes after it, hence after the increment, and the
// waker's load (after its CAS) sees the increment or the decrement that
// ends the walk: the green thread cannot run during the walk. If the re-read
// sees anything else, the green thread woke (and maybe parked again: the
// word carries the park's sequence number), and its stack is not walked.
// The waker waits without holding anything the dump needs (the dump takes
// no primitive's lock), so the wait ends.
// The stack itself stays mapped: a parked green thread keeps its stack, and
// the reference keeps the control block (and `context`, written before the
// park word went odd) alive. The walk only reads return addresses; they are
// named after the decrement, so a waiting waker waits microseconds.
//
// At most kMaxStackWalks stacks a dump: a million parked green threads
// must not make a dump take minutes. The deadlock report is this dump.
//
// Reading a Lock's HeldBy word and a parked green thread's stack bounds
// relies on the wait being in progress (a Lock with a waiter is alive, a
// parked green thread keeps its stack); a wake in the middle of the dump
// can make one line stale, never a later one wrong.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "fiber_internal.hpp"
#include "runtime_core.hpp"
#include "stack.hpp"
#include "unwind.hpp"

namespace green::detail {

namespace {

std::string label(const Fiber* f) {
  return "green thread " + std::to_string(f->id) + " (" + (f->name.empty() ? "unnamed" : f->name) + ")";
}

std::string address(std::uintptr_t p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(p));
  return buf;
}

std::string millis(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

constexpr std::size_t kMaxFrames = 32;
constexpr std::size_t kMaxStackWalks = 1000;

// describe_code_address(), remembered per address for the life of the
// process: a dump names the same few spawn sites and frames over and over,
// and each fresh lookup reads the binary's symbol table. A spawn site is an
// instruction inside the spawning function (greenlet.hpp), looked up
// exactly; a frame is a return address.
std::string code_address_name(std::uintptr_t pc, bool exact) {
  static std::mutex mu;
  static auto* known = new std::unordered_map<std::uintptr_t, std::string>();  // never freed: dumps may run at exit
  const std::uintptr_t key = (pc << 1) | (exact ? 1 : 0);
  std::lock_guard g(mu);
  auto it = known->find(key);
  if (it == known->end()) it = known->emplace(key, describe_code_address(pc, exact)).first;
  return it->second;
}

// The return addresses on the stack of `f`, seen parked with park word
// `word`; false (and nothing walked) if it has woken since (STACKS above).
bool walk_parked_stack(Fiber* f, std::uint64_t word, std::vector<std::uintptr_t>& frames) {
  f->inspectors.fetch_add(1, std::memory_order_seq_cst);
  const bool still_parked = f->park_word.load(std::memory_order_seq_cst) == word;
  if (still_parked) {
    frames = unwind_switched_out(f->context, kMaxFrames);
    if (auto hook = dump_walk_hook.load(std::memory_order_acquire)) hook(f);
  }
  if (f->inspectors.fetch_sub(1, std::memory_order_seq_cst) == 1) f->inspectors.notify_all();
  return still_parked;
}

struct Entry {
  Fiber* f = nullptr;
  std::string head;                // "green thread N (name): state"
  std::vector<std::string> lines;  // details, indented
  std::uintptr_t held_frame = 0;   // a Lock it waits on: its holder's frame
  std::uintptr_t held_lock = 0;    // ... and that Lock
  const char* held_what = "";
  bool parked = false;
  std::vector<std::uintptr_t> stack;  // return addresses, innermost first
  const char* stack_missing = nullptr;  // why a parked green thread's stack is not shown
  std::uintptr_t stack_low = 0, stack_high = 0;  // bounds while parked
};

}  // namespace

std::atomic<void (*)(Fiber*)> dump_walk_hook{nullptr};

std::string RuntimeCore::dump() {
  std::size_t walks = 0;
  std::vector<Fiber*> fibers;
  for_each_live([&](Fiber* f) {
    f->add_ref();
    fibers.push_back(f);
  });
  std::sort(fibers.begin(), fibers.end(), [](const Fiber* a, const Fiber* b) { return a->id < b->id; });
  const Deadline now = Clock::now();
  std::vector<Entry> entries;
  entries.reserve(fibers.size());

  for (Fiber* f : fibers) {
    Entry e;
    e.f = f;
    e.head = label(f) + ": ";
    const std::uint64_t word = f->park_word.load(std::memory_order_acquire);
    const std::int64_t timer = f->park_timer.load(std::memory_order_relaxed);
    const std::uintptr_t object = f->wait_object.load(std::memory_order_relaxed);
    const char* what = f->wait_reason.load(std::memory_order_relaxed);
    // acquire: the check below stays after the reads above.
    const bool stable = f->park_word.load(std::memory_order_acquire) == word;
    int running_on = -1;
    for (unsigned i = 0; i < worker_count(); ++i)
      if (worker(i).current() == f) running_on = static_cast<int>(i);

    if (!f->started()) {
      e.head += "not started";
    } else if ((word & 1) && stable) {
      e.parked = true;
      e.head += "parked: ";
      e.head += what;
      std::string on;
      switch (object & WaitObject::kMask) {
        case WaitObject::kFd:
          on = "fd " + std::to_string(object >> 2);
          break;
        case WaitObject::kHeld: {
          const auto* held = reinterpret_cast<const HeldBy*>(object & ~WaitObject::kMask);
          on = std::string(what) + " at " + address(object & ~WaitObject::kMask);
          e.held_frame = held->frame.load(std::memory_order_relaxed);
          e.held_lock = object & ~WaitObject::kMask;
          e.held_what = what;
          break;
        }
        default:
          if (object) {
            on = std::string(what) + " at " + address(object);
            for (Fiber* g : fibers)
              if (reinterpret_cast<std::uintptr_t>(&g->joiners) == object) on = "join of " + label(g);
          }
      }
      // "for at least": the first dump to see this park stamps it.
      std::int64_t since = now.time_since_epoch().count();
      if (f->seen_park_word.load(std::memory_order_relaxed) == word) {
        since = f->seen_since.load(std::memory_order_relaxed);
      } else {
        f->seen_since.store(since, std::memory_order_relaxed);
        f->seen_park_word.store(word, std::memory_order_relaxed);
      }
      std::string line = on.empty() ? "waiting" : "waits on " + on;
      if (timer == Fiber::kExternalWake) {
        line += "; woken from outside the runtime";
      } else if (timer != Fiber::kNoParkTimer) {
        const Deadline at{Clock::duration(timer)};
        line += at > now ? "; timer in " + millis(at - now) : "; timer due";
      }
      line += "; parked for at least " + millis(now - Deadline(Clock::duration(since)));
      e.lines.push_back(line);
      e.stack_low = f->stack_low.load(std::memory_order_relaxed);
      e.stack_high = f->stack_high.load(std::memory_order_relaxed);
      if (walks == kMaxStackWalks) {
        e.stack_missing = "not walked: a dump walks at most 1000 stacks";
      } else {
        ++walks;
        if (!walk_parked_stack(f, word, e.stack)) e.stack_missing = "not walked: it woke during the dump";
      }
    } else if (running_on >= 0) {
      e.head += "running on worker " + std::to_string(running_on);
    } else if (f->done()) {
      e.head += "ending";
    } else {
      e.head += "runnable";
    }
    std::string spawned;
    if (f->parent_id) spawned = "spawned by green thread " + std::to_string(f->parent_id);
    if (f->spawn_site) spawned += (spawned.empty() ? "spawned at " : " at ") + code_address_name(reinterpret_cast<std::uintptr_t>(f->spawn_site), /*exact=*/true);
    if (!spawned.empty()) e.lines.push_back(std::move(spawned));
    entries.push_back(std::move(e));
  }

  // Who holds what: a Lock's holder is the parked green thread whose stack
  // holds the frame that took it.
  for (Entry& waiter : entries) {
    if (!waiter.held_frame) continue;
    Entry* holder = nullptr;
    for (Entry& h : entries)
      if (h.parked && waiter.held_frame >= h.stack_low && waiter.held_frame < h.stack_high) holder = &h;
    if (holder) {
      waiter.lines.front() += "; held by " + label(holder->f);
      holder->lines.push_back("holds " + std::string(waiter.held_what) + " at " + address(waiter.held_lock) +
                              ", wanted by " + label(waiter.f));
    } else {
      waiter.lines.front() += "; held by a running green thread or a plain thread";
    }
  }

  std::string out;
  for (const Entry& e : entries) {
    out += e.head;
    out += '\n';
    for (const std::string& l : e.lines) out += "    " + l + '\n';
    if (!e.stack.empty()) {
      out += "    stack:\n";
      for (const std::uintptr_t pc : e.stack) out += "      " + code_address_name(pc, /*exact=*/false) + '\n';
    } else if (e.stack_missing) {
      out += "    stack ";
      out += e.stack_missing;
      out += '\n';
    }
  }
  for (Fiber* f : fibers) f->release();
  return out;
}

}  // namespace green::detail
