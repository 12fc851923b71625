// green/channel.hpp — an unbuffered channel: a put() waits until a getter
// takes the item (a rendezvous; gevent.queue.Channel).
//
//   green::Channel<int> ch;
//   green::spawn([&] { ch.put(1); /* returns once somebody got 1 */ });
//   int v = ch.get();
//
// Everything in queue.hpp about order, kill, Timeout, plain threads and
// close() holds here; the difference is that a Channel stores no items:
// size() is always 0, put_nowait() succeeds only if a getter is waiting and
// get_nowait() only if a putter is. Waiting putters and getters are paired
// first come, first served.
#pragma once

#include "green/queue.hpp"

namespace green {

template <class T>
class Channel : public detail::BasicQueue<T, detail::RendezvousStore<T>> {
 public:
  Channel() : Channel::BasicQueue(0) {}
};

}  // namespace green
