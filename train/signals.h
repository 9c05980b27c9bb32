// A graceful stop for long runs: SIGINT (Ctrl-C) and SIGTERM (a cluster's pre-emption) ask the training
// loop to finish the step it is in, write a checkpoint, flush its records and return; a second signal
// ends the process at once (the default action of that signal).
//
//   StopSignals scope;                          // handlers installed for the run, restored afterwards
//   for (...) { step(); if (const int sig = stop_requested()) { save(); return interrupted(sig); } }
//
// The handler only stores the signal number and writes one fixed line to stderr (async-signal-safe).
// Data-parallel ranks agree on the stop through the loss all-reduce of every iteration (trainer.cpp),
// so all of them stop after the same step; a launcher forwards the signal to its workers
// (dist/launcher.h).
#pragma once

#include <string>

namespace rdd::train {

// Installs the SIGINT/SIGTERM handlers while alive (nesting is fine: the outermost scope restores the
// previous handlers). A stop requested before the scope (request_stop) is kept.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
};

// The first signal received (SIGINT or SIGTERM), or 0.
int stop_requested();
// As if `sig` had been received (tests, and a rank that learns of another rank's stop).
void request_stop(int sig);
// Forget a stop (the next run in the same process starts clean).
void clear_stop();

// "SIGTERM", "SIGINT", "signal 10".
std::string signal_name(int sig);

}  // namespace rdd::train
