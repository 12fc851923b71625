// examples/cli.hpp — the command lines of the examples and bench programs, on
// CLI11 (Debian libcli11-dev), with the flags they all share.
//
//   green_cli::App app("echo_server", "Echoes every line a client sends.");
//   green_cli::add_port(app, port);
//   green_cli::add_workers(app, workers);
//   app.add_option("--host", host, "address to listen on");
//   if (auto code = green_cli::parse(app, argc, argv)) return *code;
//
// Every number goes through a validator here, not CLI11's own conversion:
// CLI11 2.1 reads "-1" into a size_t as 18446744073709551615, "010" as 8 and
// a number too large for the type as its maximum. A bad value is refused at
// start, before anything runs, with one line on stderr that names the flag.
#pragma once

#include <CLI/CLI.hpp>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>

namespace green_cli {

// Help starts with the usage line ("usage: NAME [OPTIONS]": what the e2e
// tests and the old hand-written help printed first), then the description,
// the options and the footer.
class Formatter : public CLI::Formatter {
 public:
  Formatter() { label("Usage", "usage"); }
  std::string make_help(const CLI::App* app, std::string name, CLI::AppFormatMode mode) const override {
    if (mode == CLI::AppFormatMode::Sub) return CLI::Formatter::make_help(app, std::move(name), mode);
    const std::string footer = make_footer(app);
    return make_usage(app, name) + make_description(app) + make_groups(app, mode) +
           (footer.empty() ? "" : "\n" + footer);
  }
};

// A CLI::App with that help, defaults shown in it, and the last of a
// repeated flag winning (as it did with the hand-written loops).
class App : public CLI::App {
 public:
  App(std::string name, std::string description) : CLI::App(std::move(description), std::move(name)) {
    formatter(std::make_shared<Formatter>());
    option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
};

// Parses argv. nullopt: go on. Otherwise the code main returns: 0 after
// --help (usage on stdout), 2 after any error: an unknown flag, a missing or
// bad value (one line on stderr, "NAME: --flag: what is wrong (try --help)").
inline std::optional<int> parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help-all and the like: what CLI11 would print
      std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "%s: %s (try --help)\n", app.get_name().c_str(), e.what());
    return 2;
  }
}

// A whole decimal number in [min, max]: digits only (no sign, space, base
// prefix), checked for overflow. A transform, not a check: it hands CLI11's
// conversion that follows the digits without leading zeros, which it then
// reads as plain decimal. A max of INT_MAX or more is a type's limit, not a
// bound worth printing unless it is crossed.
inline CLI::Validator whole_number(unsigned long long min, unsigned long long max) {
  const bool show_max = max < static_cast<unsigned long long>(std::numeric_limits<int>::max());
  const std::string want = "must be a whole number " +
                           (show_max ? "from " + std::to_string(min) + " to " + std::to_string(max)
                                     : ">= " + std::to_string(min));
  return CLI::Validator(
      [min, max, show_max, want](std::string& s) -> std::string {
        unsigned long long v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        const bool digits = !s.empty() && end == s.data() + s.size();
        if (!show_max && digits && (ec == std::errc::result_out_of_range || (ec == std::errc() && v > max)))
          return "must be at most " + std::to_string(max) + ", not '" + s + "'";
        if (!digits || ec != std::errc() || v < min || v > max) return want + ", not '" + s + "'";
        s = std::to_string(v);
        return {};
      },
      "", "whole_number");
}

// --FLAG N for an integer variable of any type, min <= N <= max (max
// defaults to the type's largest value, so nothing wraps or truncates). T
// comes from the variable alone, so a plain 2 serves as the min of a size_t.
template <class T>
CLI::Option* add_count(CLI::App& app, const std::string& flag, T& value, const std::string& help,
                       std::type_identity_t<T> min = 1, std::type_identity_t<T> max = std::numeric_limits<T>::max()) {
  static_assert(std::is_integral_v<T>);
  return app.add_option(flag, value, help)
      ->transform(whole_number(static_cast<unsigned long long>(min), static_cast<unsigned long long>(max)))
      ->type_name("N");
}

// --workers M: worker threads, 0 (the default of green::Runtime) = one per
// core, at most 1024 (green::Runtime throws beyond that, after the start).
inline constexpr unsigned kMaxWorkers = 1024;
inline CLI::Option* add_workers(CLI::App& app, unsigned& workers,
                                const std::string& help = "worker threads (0: one per core)") {
  return add_count(app, "--workers", workers, help, 0u, kMaxWorkers);
}

// --port N: a TCP port, 0..65535 (a client passes min 1: it cannot connect to 0).
inline CLI::Option* add_port(CLI::App& app, int& port,
                             const std::string& help = "TCP port (0 picks a free one; the port in use is printed)",
                             int min = 0) {
  return add_count(app, "--port", port, help, min, 65535);
}

// Seconds as a decimal ("2", "0.25") to whole milliseconds; nullopt unless
// a finite number from 0 to a year (so now + it stays far inside
// steady_clock's range).
inline std::optional<std::chrono::milliseconds> parse_seconds(const std::string& s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v) || v < 0 ||
      v > 365.0 * 24 * 3600)
    return std::nullopt;
  return std::chrono::milliseconds(std::llround(v * 1000));
}

// --FLAG SECONDS into a std::chrono::milliseconds, refusing what
// parse_seconds refuses and anything below `min`.
inline CLI::Option* add_seconds(CLI::App& app, const std::string& flag, std::chrono::milliseconds& out,
                                const std::string& help, std::chrono::milliseconds min = {}) {
  char shown[32];
  std::snprintf(shown, sizeof shown, "%g", static_cast<double>(out.count()) / 1000);
  char least[32];
  std::snprintf(least, sizeof least, "%g", static_cast<double>(min.count()) / 1000);
  const std::string want = std::string("a number of seconds from ") + least + " to 31536000 (a year; decimals allowed)";
  return app
      .add_option_function<std::string>(
          flag, [&out](const std::string& s) { out = *parse_seconds(s); }, help)
      ->check(CLI::Validator(
          [min, want](std::string& s) -> std::string {
            const auto ms = parse_seconds(s);
            return ms && *ms >= min ? std::string() : "must be " + want + ", not '" + s + "'";
          },
          "", "seconds"))
      ->type_name("SECONDS")
      ->default_str(shown);
}

}  // namespace green_cli
