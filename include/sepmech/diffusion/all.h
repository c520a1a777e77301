#pragma once
// Everything public in the diffusion family (docs/diffusion.md).
#include "sepmech/diffusion/analytic.h"
#include "sepmech/diffusion/sampling.h"
#include "sepmech/diffusion/sde.h"
#include "sepmech/diffusion/spec.h"
#include "sepmech/diffusion/training.h"
