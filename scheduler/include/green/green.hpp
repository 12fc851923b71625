// green/green.hpp — everything in one include.
#pragma once

#include "green/current.hpp"
#include "green/errors.hpp"
#include "green/getcurrent.hpp"
#include "green/greenlet.hpp"
#include "green/local.hpp"
#include "green/nursery.hpp"
#include "green/runtime.hpp"
#include "green/timeout.hpp"
