// wait.cpp — green::wait() and iwait() (green/wait.hpp): one park over
// several objects, each watched through its WaitSourceFor (wait_source.hpp).
#include "green/wait.hpp"

#include <boost/intrusive_ptr.hpp>

#include "fiber_internal.hpp"
#include "green/current.hpp"
#include "green/detail/park.hpp"
#include "runtime_core.hpp"
#include "worker.hpp"

namespace green::detail {

struct WaitAccess {
  static bool ready(const Waitable& o) { return o.ops_->ready(o.obj_); }
  static void prepare(const Waitable& o) {
    if (o.ops_->prepare) o.ops_->prepare(o.obj_);
  }
  static bool enlist(const Waitable& o, Waiter& w) { return o.ops_->enlist(o.obj_, w); }
  static void unlist(const Waitable& o, Waiter& w) noexcept { o.ops_->unlist(o.obj_, w); }
  static bool external(const Waitable& o) { return o.ops_->external; }
};

namespace {

// The Waiters one park leaves on the objects' lists, unlinked (each under
// its object's lock, as park.hpp asks of a parker) however the park ends.
class Watches {
 public:
  Watches(std::span<const Waitable> objects, const std::vector<bool>& taken)
      : objects_(objects), taken_(taken), waiters_(objects.size()) {}
  Watches(const Watches&) = delete;
  Watches& operator=(const Watches&) = delete;
  ~Watches() {
    for (std::size_t i = 0; i < objects_.size(); ++i)
      if (!taken_[i]) WaitAccess::unlist(objects_[i], waiters_[i]);
  }

  // The publish step: a Waiter for `me`'s party and wait on every object
  // not yet taken. False (the park ends at once) if one is ready already.
  bool enlist(const Waiter& me) {
    for (std::size_t i = 0; i < objects_.size(); ++i) {
      if (taken_[i]) continue;
      Waiter& w = waiters_[i];
      w.fiber = me.fiber;
      w.thread = me.thread;
      w.seq = me.seq;
      if (!WaitAccess::enlist(objects_[i], w)) return false;
    }
    return true;
  }

 private:
  std::span<const Waitable> objects_;
  const std::vector<bool>& taken_;
  std::vector<Waiter> waiters_;  // never resized while any is linked
};

}  // namespace

std::vector<std::size_t> wait_for(std::span<const Waitable> objects, std::vector<bool>& taken, Deadline deadline,
                                  std::size_t count) {
  std::size_t open = 0;
  for (std::size_t i = 0; i < objects.size(); ++i) open += taken[i] ? 0 : 1;
  if (count == 0 || count > open) count = open;
  std::vector<std::size_t> found;
  auto collect = [&] {
    for (std::size_t i = 0; i < objects.size() && found.size() < count; ++i) {
      if (!taken[i] && WaitAccess::ready(objects[i])) {
        taken[i] = true;
        found.push_back(i);
      }
    }
    return found.size() >= count;
  };
  if (collect()) return found;
  // Nothing in it: only for park_unlocked's shape (each object's own lock
  // guards its list, taken inside enlist).
  SpinLock unshared;
  for (;;) {
    for (std::size_t i = 0; i < objects.size(); ++i)
      if (!taken[i]) WaitAccess::prepare(objects[i]);
    bool woken;
    {
      Watches watches(objects, taken);
      Waiter me;
      for (std::size_t i = 0; i < objects.size(); ++i)
        if (!taken[i] && WaitAccess::external(objects[i])) me.external = true;  // an fd: never a deadlock
      woken = park_unlocked(
          unshared, me, deadline, "wait", [&](Waiter& w) { return watches.enlist(w); }, [](Waiter&) {});
    }
    if (collect() || !woken) return found;
  }
}

bool wait_for_others(Deadline deadline) {
  Worker* worker = current_worker();
  Fiber* self = worker ? worker->current() : nullptr;
  if (!self) throw Error("green::wait() with no objects needs a green thread");
  RuntimeCore* rt = worker->runtime();
  for (;;) {
    std::vector<boost::intrusive_ptr<Fiber>> alive;
    bool finishing = false;
    rt->for_each_live([&](Fiber* f) {
      if (f == self) return;
      if (f->done()) {
        finishing = true;  // its links still run: it may yet spawn
      } else {
        alive.emplace_back(f);  // registered, so the runtime holds a reference
      }
    });
    if (alive.empty() && !finishing) return true;
    for (auto& f : alive)
      if (!f->join(deadline)) return false;
    if (alive.empty()) {
      if (Clock::now() >= deadline) return false;
      green::yield();
    }
  }
}

}  // namespace green::detail

namespace green {

bool wait(std::optional<Clock::duration> timeout) {
  return detail::wait_for_others(timeout ? detail::deadline_after(*timeout) : detail::kNoDeadline);
}

}  // namespace green
