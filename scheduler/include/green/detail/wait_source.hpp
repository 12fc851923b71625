// green/detail/wait_source.hpp — how green::wait() watches an object.
//
// Not part of the user's API. green::wait() and iwait() (green/wait.hpp)
// watch objects of several layers (a Greenlet here, an Event in sync/...)
// without knowing their insides: each waitable type T specialises
// WaitSourceFor<T> beside its own definition, giving
//
//   static void* address(T& obj)         the object watched (its identity)
//   static const WaitSourceOps ops        the operations below, and
//                                         `external`: whether something
//                                         outside the runtime (the kernel,
//                                         for an fd) ends the wait
//
//   ready(obj)      whether a wait on it would not block now (a snapshot)
//   prepare(obj)    may be null: runs on the caller's stack before each
//                   park and may throw (an fd's registration, a busy fd)
//   enlist(obj, w)  under the object's lock: false if ready now; otherwise
//                   links `w` on a wait list that the object wakes, with no
//                   hand-off (nothing is consumed: set(), an item stored, the
//                   end of a green thread), and returns true
//   unlist(obj, w)  under the object's lock: unlinks `w` if still linked
//
// The protocol is park.hpp's: the waker pops a Waiter and wake()s it under
// the object's lock, and the watcher unlinks every Waiter it enlisted, under
// each object's lock, before its frame goes. One party may have a Waiter on
// several lists at once (same party, same seq): the first wake wins the
// park word's CAS and the others find it gone, as a stale wake does.
#pragma once

#include "green/detail/waiter.hpp"

namespace green::detail {

struct WaitSourceOps {
  bool (*ready)(const void* obj);
  void (*prepare)(void* obj);
  bool (*enlist)(void* obj, Waiter& w);
  void (*unlist)(void* obj, Waiter& w) noexcept;
  // A wait that includes this object is never part of a deadlock (LoopExit,
  // scheduler/src/monitor.hpp): Waiter::external.
  bool external = false;
};

template <class T>
struct WaitSourceFor;  // specialised by each waitable type

}  // namespace green::detail
