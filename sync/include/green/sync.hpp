// green/sync.hpp — everything in sync/: queues, channels, locks, semaphores,
// events, async results, pools and groups.
#pragma once

#include "green/async_result.hpp"
#include "green/channel.hpp"
#include "green/event.hpp"
#include "green/lock.hpp"
#include "green/pool.hpp"
#include "green/queue.hpp"
#include "green/semaphore.hpp"
#include "green/wait.hpp"
