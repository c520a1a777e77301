#pragma once
// Private: the text of a shape in error messages, written once for the whole library.
//
//   TORCH_CHECK(x.dim() == 4, "sepmech::X: x must be (B, C, H, W), got shape ", kernels::shape_str(x));
//
// A shape reads like LibTorch prints one, "[2, 3, 4]" ("[]" for a scalar); an undefined tensor
// reads "undefined", so a check on an optional argument can print it without testing first.
#include <string>

#include <torch/torch.h>

namespace sepmech::kernels {

/// "[2, 3, 4]".
inline std::string shape_str(c10::IntArrayRef sizes) { return c10::str(sizes); }

/// The tensor's sizes as above, or "undefined".
inline std::string shape_str(const torch::Tensor& t) {
  return t.defined() ? shape_str(t.sizes()) : std::string("undefined");
}

}  // namespace sepmech::kernels
