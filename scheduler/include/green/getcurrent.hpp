// green/getcurrent.hpp — a handle to the calling green thread.
//
//   green::GreenletRef me = green::getcurrent();
//   auto helper = green::spawn([me] { ...; me.kill(); });   // kill the spawner
//
// GreenletRef (green/greenlet.hpp) is a Greenlet<T> with its result type
// forgotten: what getcurrent() can return for a green thread whose body's
// type the caller does not know. It can be compared, hashed, joined and
// killed. Ownership and blocking: as Greenlet<T> (a reference-counted
// handle; join() and kill(block) suspend only the calling green thread, or
// block a plain thread on a futex). A green thread cannot join itself
// (Error), and one that kills itself gets the exception thrown at once.
#pragma once

#include "green/detail/fiber.hpp"
#include "green/errors.hpp"
#include "green/greenlet.hpp"

namespace green {

// The calling green thread (gevent's getcurrent()). Throws green::Error on
// a plain OS thread, which is no green thread: there is nothing to kill or
// join there (gevent would return the thread's main greenlet; green's
// plain threads have none). Never blocks.
inline GreenletRef getcurrent() {
  detail::Fiber* self = detail::current_fiber();
  if (!self) throw Error("green::getcurrent called outside a green thread");
  return GreenletRef(self);
}

}  // namespace green
