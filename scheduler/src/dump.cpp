// dump.cpp — Runtime::dump(): what every live green thread is doing.
#include <string>

#include "fiber_internal.hpp"
#include "runtime_core.hpp"

namespace green::detail {

std::string RuntimeCore::dump() {
  std::string out;
  for_each_live([&](Fiber* f) {
    out += "green thread " + std::to_string(f->id) + " (" + (f->name.empty() ? "unnamed" : f->name) + "): ";
    if (!f->started()) {
      out += "not started";
    } else if (is_parked(f)) {
      out += "parked: ";
      out += f->wait_reason.load(std::memory_order_relaxed);
    } else {
      out += "runnable or running";
    }
    out += '\n';
  });
  return out;
}

}  // namespace green::detail
