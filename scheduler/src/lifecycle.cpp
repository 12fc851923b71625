// lifecycle.cpp — a green thread's life: spawn (submit), join, kill, links,
// completion. Parking itself is park.cpp; where a runnable green thread goes
// is placement.cpp.
#include <cstdio>

#include <memory>
#include <string>
#include <utility>

#include "fiber_internal.hpp"
#include "green/current.hpp"
#include "green/detail/park.hpp"
#include "green/greenlet.hpp"
#include "runtime_core.hpp"
#include "worker.hpp"

namespace green::detail {

Fiber::~Fiber() {
  destroy_locals(*this);
  if (error && !observed.load(std::memory_order_relaxed)) {
    std::fprintf(stderr, "green: green thread %llu (%s) ended with an exception nobody observed: %s\n",
                 static_cast<unsigned long long>(id), name.empty() ? "unnamed" : name.c_str(),
                 describe(error).c_str());
  }
}

std::exception_ptr Fiber::observe_error() noexcept {
  observed.store(true, std::memory_order_relaxed);
  return error;
}

bool Fiber::join(Deadline deadline) {
  if (done()) return true;
  if (current_fiber() == this) throw Error("green: a green thread cannot join itself");
  Fiber* self = current_fiber();
  // A plain thread that would wait forever is watched for a deadlock.
  if (!self && deadline == kNoDeadline && runtime) return runtime->monitor().join_watched(*this);
  if (self && !self->pinned) {
    self->join_worker = current_worker();
    self->join_mark = self->join_worker->queue_mark();
  }
  struct Unmark {
    Fiber* self;
    ~Unmark() {
      if (self) self->join_worker = nullptr;
    }
  } unmark{self};
  wait_until(lock, joiners, deadline, "join", [this] { return done(); });
  return done();
}

bool Fiber::kill(std::exception_ptr exc, bool block, Deadline deadline) {
  if (done()) return true;
  if (!exc) exc = std::make_exception_ptr(GreenletExit());
  if (current_fiber() == this) std::rethrow_exception(exc);
  deliver_interrupt(*this, std::move(exc));
  if (!block) return done();
  return join(deadline);
}

void Fiber::link(std::function<void(Fiber&)> fn) {
  {
    std::lock_guard g(lock);
    if (!done()) {
      links.push_back(std::move(fn));
      return;
    }
  }
  fn(*this);
}

bool Fiber::listen(CompletionListener& l) noexcept {
  std::lock_guard g(lock);
  if (done()) return false;
  l.next_listener_ = listeners;
  listeners = &l;
  return true;
}

void Fiber::unlisten(CompletionListener& l) noexcept {
  std::lock_guard g(lock);
  for (CompletionListener** p = &listeners; *p; p = &(*p)->next_listener_) {
    if (*p == &l) {
      *p = l.next_listener_;
      l.next_listener_ = nullptr;
      return;
    }
  }
}

// ---------------------------------------------------------------------------
// Completion

namespace {

void complete(Fiber* f, std::exception_ptr error, bool exited) noexcept {
  destroy_locals(*f);
  if (error) f->error = std::move(error);
  f->exited = exited;
  std::vector<std::function<void(Fiber&)>> links;
  {
    std::lock_guard g(f->lock);
    f->status.store(Fiber::kDone, std::memory_order_release);
    if (f->interrupt) f->interrupt = nullptr;
    f->interrupt_pending.store(false, std::memory_order_relaxed);
    for (CompletionListener* l = std::exchange(f->listeners, nullptr); l;) {
      CompletionListener* next = std::exchange(l->next_listener_, nullptr);
      l->finished(*f);  // may end l's life: read its link first
      l = next;
    }
    f->joiners.wake_all();
    if (!f->links.empty()) links.swap(f->links);
  }

  for (auto& link : links) {
    try {
      link(*f);
    } catch (...) {
      std::fprintf(stderr, "green: a link of green thread %llu (%s) threw: %s\n",
                   static_cast<unsigned long long>(f->id),
                   f->name.empty() ? "unnamed" : f->name.c_str(),
                   describe(std::current_exception()).c_str());
    }
  }
  // After the links: one may spawn, and its child joins f's Nursery before
  // f leaves it, so the Nursery never sees itself empty while a member could
  // still add one. This is the last touch of the Nursery: once the list is
  // empty its owner may destroy it.
  if (SpawnScope* scope = std::exchange(f->scope, nullptr)) scope->release(*f);
  // Last: a link may spawn, and shutdown() must not see the live count reach
  // zero while a green thread that could still spawn is finishing.
  f->runtime->unregister_fiber(f);
}

}  // namespace

void run_fiber(Fiber* self) noexcept {
  self->status.store(Fiber::kStarted, std::memory_order_release);
  std::exception_ptr error;
  bool exited = false;
  try {
    // Killed before its first run: the body never runs.
    if (has_interrupt(self)) throw_if_interrupted();
    self->run_body();
  } catch (const GreenletExit&) {
    exited = true;
  } catch (...) {
    error = std::current_exception();
  }
  complete(self, std::move(error), exited);
}

void complete_unstarted(Fiber* f, std::exception_ptr error) noexcept {
  complete(f, std::move(error), false);
}

// ---------------------------------------------------------------------------
// Spawning and joining many

void submit(RuntimeCore* rt, Fiber* f, const SpawnOptions& opts, Deadline start_at) {
  Worker* here = current_worker();
  if (!rt) {
    if (!here || !here->current())
      throw Error("green::spawn called outside a green thread: use Runtime::spawn");
    rt = here->runtime();
  } else if (here && here->runtime() != rt) {
    here = nullptr;  // a worker of another runtime spawns like a plain thread
  }
  Worker* chosen = nullptr;
  if (opts.worker >= 0) {
    if (static_cast<unsigned>(opts.worker) >= rt->worker_count())
      throw Error("green::spawn: worker " + std::to_string(opts.worker) + " out of range (runtime has " +
                  std::to_string(rt->worker_count()) + " workers)");
    chosen = &rt->worker(static_cast<unsigned>(opts.worker));
  }
  if (opts.stack_size != 0) {
    if (opts.stack_size < 16 * 1024) throw Error("green::spawn: stack_size below 16 KiB");
    f->stack_size = opts.stack_size;
  }
  if (!opts.name.empty()) f->name = opts.name;
  if (opts.pinned) {
    if (!chosen) chosen = here ? here : &rt->worker(0);
    f->pinned = chosen;
  }
  f->start_on = chosen;
  f->start_at = start_at;
  f->urgent = opts.urgent;
  f->id = here ? here->next_id() : rt->allocate_ids(1);
  if (here && here->current()) f->parent_id = here->current()->id;  // for dump()
  // A child of a green thread inside a Nursery joins it, before it can run
  // (and so before it can end and be released).
  if (Fiber* parent = here ? here->current() : nullptr; parent && parent->scope && !opts.detached) {
    f->scope = parent->scope;
    f->scope->adopt(*f);
  }
  rt->submit_new(f, here);
}

std::vector<Fiber*> join_many(const std::vector<Fiber*>& fibers, Deadline deadline,
                              std::size_t count, bool raise_error) {
  if (count == 0 || count > fibers.size()) count = fibers.size();
  struct Shared {
    SpinLock lock;
    std::vector<Fiber*> finished;
    WaitList waiting;
    std::size_t needed;
    bool raise;
  };
  auto shared = std::make_shared<Shared>();
  shared->needed = count;
  shared->raise = raise_error;
  for (Fiber* f : fibers) {
    f->link([shared](Fiber& done) {
      std::lock_guard g(shared->lock);
      shared->finished.push_back(&done);
      const bool failed = done.error != nullptr;
      if (shared->finished.size() >= shared->needed || (shared->raise && failed))
        shared->waiting.wake_all();
    });
  }
  auto satisfied = [&] {
    if (shared->finished.size() >= count) return true;
    if (raise_error)
      for (Fiber* f : shared->finished)
        if (f->error) return true;
    return false;
  };
  for (;;) {
    {
      std::lock_guard g(shared->lock);
      if (satisfied()) break;
    }
    if (!wait_until(shared->lock, shared->waiting, deadline, "joinall", satisfied)) break;
  }
  std::vector<Fiber*> out;
  {
    std::lock_guard g(shared->lock);
    out = shared->finished;
  }
  if (raise_error)
    for (Fiber* f : out)
      if (auto e = f->observe_error()) std::rethrow_exception(e);
  return out;
}

}  // namespace green::detail
