// Errors: every failure rdd can name becomes an rdd::Error with a message a user can act on.
//
//   RDD_CHECK(cond, "conv2d: input has ", c, " channels but the weight expects ", wc);
//
// User-facing checks do not carry file:line (the message names the layer, file or flag instead);
// failed library calls (CUDA, cuDNN, cuBLAS, NCCL — see cuda_check.h) do, because those are ours to fix.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace rdd {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

// Runs f(); an rdd::Error thrown inside comes out with `context` in front, so a layer deep inside a
// model reports which one it is: with_error_context("Conv2d 'head.block.0'", [&] { return ...; }).
template <class F>
auto with_error_context(const std::string& context, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error(context + ": " + e.what());
  }
}

}  // namespace rdd

#define RDD_CHECK(cond, ...)                \
  do {                                      \
    if (!(cond)) ::rdd::fail(__VA_ARGS__);  \
  } while (0)
