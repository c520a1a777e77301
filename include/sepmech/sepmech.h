#pragma once
// Umbrella header: everything public in sepmech.
#include <torch/torch.h>

#include "sepmech/io/checkpoint.h"
#include "sepmech/io/errors.h"
#include "sepmech/io/safetensors.h"
#include "sepmech/runtime.h"
#include "sepmech/version.h"
#include "sepmech/io/state_dict.h"
#include "sepmech/osa.h"
#include "sepmech/tac.h"
#include "sepmech/dfop.h"
#include "sepmech/multiframe.h"
#include "sepmech/diffusion/all.h"
