// Precompiled header: LibTorch's frontend is ~200k lines of headers; parsing it once per
// build instead of once per translation unit is what keeps a clean build short on 2 cores.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
