#pragma once
// Shared by the file-parser tests: what FormatError a call throws.
#include <gtest/gtest.h>

#include <string>

#include "sepmech/io/errors.h"

namespace sepmech::testing {

// The message of the FormatError `f` throws ("" and a test failure if it throws nothing or
// something else).
template <class F>
std::string format_error(F&& f) {
  try {
    f();
  } catch (const sepmech::io::FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a FormatError, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected a FormatError, nothing was thrown";
  return "";
}

}  // namespace sepmech::testing
