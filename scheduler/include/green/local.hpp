// green/local.hpp — a value per green thread (gevent.local).
//
//   static green::local<RequestContext> ctx;
//   ctx->user = "ann";          // this green thread's copy
//
// Each green thread sees its own T, default-constructed on first access and
// destroyed when that green thread ends. Unlike thread_local, the value
// follows the green thread when it migrates between workers. Access from a
// plain thread throws green::Error. The local object must outlive every green
// thread that used it (make it static or long-lived).
#pragma once

#include <memory>

#include "green/detail/fiber.hpp"
#include "green/errors.hpp"

namespace green {

namespace detail {
void* find_local(const void* key);                                   // null if absent
void* add_local(const void* key, void* value, void (*destroy)(void*));  // takes ownership
// Destroys the calling green thread's values (newest first), as its end
// would; for code that runs unrelated calls one after another on one green
// thread (Pool::map). Nothing on a plain thread.
void clear_locals() noexcept;
}  // namespace detail

template <class T>
class local {
 public:
  local() = default;
  local(const local&) = delete;
  local& operator=(const local&) = delete;

  T& get() const {
    if (void* v = detail::find_local(this)) return *static_cast<T*>(v);
    auto value = std::make_unique<T>();
    T* raw = value.get();
    detail::add_local(this, value.release(), [](void* p) { delete static_cast<T*>(p); });
    return *raw;
  }
  T& operator*() const { return get(); }
  T* operator->() const { return &get(); }
};

}  // namespace green
