#pragma once
#include <string>

namespace sepmech {
/// The library version, "MAJOR.MINOR.PATCH".
std::string version();
}  // namespace sepmech
