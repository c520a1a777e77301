#pragma once
// Private to the diffusion family and its parity adapter: the Gaussian oracle evaluated op by op.
#include "sepmech/diffusion/analytic.h"

namespace sepmech::diffusion {

/// A ScoreFn bound to `sde` (which must outlive it) using `oracle.score_unfused`: the reference
/// oracle's LibTorch operations in its order, so its float32 rounding is the golden generator's bit
/// for bit. The parity adapters use it because scipy-style RK45 step control reacts to last-bit
/// differences of the drift (the fused kernel multiplies by 1/v; with the 48 kHz parameters that
/// alone changes the ODE sampler's evaluation count from 50 to 44).
ScoreFn score_fn_reference(const GaussianOracle& oracle, const SDE& sde);

}  // namespace sepmech::diffusion
