// locals.cpp — green::local storage: a list of values per green thread,
// destroyed when it ends (local.hpp).
#include "fiber_internal.hpp"
#include "green/errors.hpp"
#include "green/local.hpp"

namespace green::detail {

void destroy_locals(Fiber& f) noexcept {
  if (f.locals.empty()) return;
  for (auto it = f.locals.rbegin(); it != f.locals.rend(); ++it) it->destroy(it->value);
  f.locals.clear();
}

void* find_local(const void* key) {
  Fiber* f = current_fiber();
  if (!f) throw Error("green::local used outside a green thread");
  for (const LocalSlot& s : f->locals)
    if (s.key == key) return s.value;
  return nullptr;
}

void clear_locals() noexcept {
  if (Fiber* f = current_fiber()) destroy_locals(*f);
}

void* add_local(const void* key, void* value, void (*destroy)(void*)) {
  Fiber* f = current_fiber();
  if (!f) {
    destroy(value);
    throw Error("green::local used outside a green thread");
  }
  f->locals.push_back({key, value, destroy});
  return value;
}

}  // namespace green::detail
