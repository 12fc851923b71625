// errors.cpp — green's exception types.
#include "green/errors.hpp"

#include <cstring>

#include "green/timeout.hpp"

namespace green {

SystemError::SystemError(int err, const std::string& what)
    : Error(what + ": " + std::strerror(err)), code_(err) {}

bool TimeoutError::is(const Timeout& scope) const noexcept { return scope.id() == scope_id_; }

namespace detail {
std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (const BaseException& x) {
    return x.what();
  } catch (...) {
    return "(not a std::exception)";
  }
}
}  // namespace detail

}  // namespace green
