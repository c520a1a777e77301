#pragma once
// PyTorch checkpoints written by torch.save (the zip format, PyTorch >= 1.6).
//
// The archive holds `<dir>/data.pkl` (a pickle of the saved object) and one `<dir>/data/<key>`
// record per storage. data.pkl is read by a restricted unpickler that never imports or calls
// anything: it builds dicts (collections.OrderedDict and Lightning's AttributeDict included),
// lists, tuples, strings, numbers, None, booleans and tensors rebuilt from their storages
// (torch._utils._rebuild_tensor_v2 / _rebuild_parameter). Any other global is refused with its
// name. (LibTorch's own torch::pickle_load turns an OrderedDict into None.)
//
// The loaded object is flattened: nested dict keys and list/tuple indices are joined with '.',
// tensors go to `tensors`, the other leaves (numbers, strings, booleans, None) to `metadata` as
// text. Tensors keep the sizes, strides, storage offset and storage sharing they were saved
// with (like torch.load); they are CPU tensors whatever device they were saved from.
//
// Basic usage:
//   auto ckpt = sepmech::io::load_checkpoint("epoch=9.ckpt");
//   auto sd = sepmech::io::checkpoint_state_dict(ckpt);   // Lightning's "state_dict" entry
//   sepmech::io::LoadOptions opt;
//   opt.strip_prefix = "model.";
//   sepmech::io::load_state_dict(*module, sd, opt);
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "sepmech/io/errors.h"
#include "sepmech/io/safetensors.h"

namespace sepmech::io {

struct Checkpoint {
  TensorMap tensors;   ///< flattened name -> tensor (views onto the saved storages)
  Metadata metadata;   ///< flattened name -> text of every non-tensor leaf ("3", "0.001", "None")
  std::set<std::string> top_level_keys;  ///< keys of the saved object if it is a dict
};

/// Reads a torch.save zip checkpoint. Throws FormatError naming the file (and the archive
/// entry) when it is malformed, uses anything outside the allowed globals, or is a legacy
/// (non-zip) file; the message then says how to re-save it in the zip format.
Checkpoint load_checkpoint(const std::string& path);

/// The same on bytes in memory; `name` is used in error messages.
Checkpoint parse_checkpoint(const std::uint8_t* data, std::size_t size, const std::string& name = "<memory>");

/// The state dict inside a checkpoint: the tensors under the top-level "state_dict" entry (a
/// Lightning checkpoint), with that prefix removed, if there is one; else all tensors.
TensorMap checkpoint_state_dict(const Checkpoint& ckpt);

/// How many leading bytes looks_like_torch_checkpoint needs to decide.
constexpr std::size_t kCheckpointSniffBytes = 32;

/// True if the bytes start like a zip archive ("PK\3\4", "PK\5\6") or a legacy torch.save
/// file (a pickle of torch.save's magic number). No safetensors file starts either way,
/// whatever its header length.
bool looks_like_torch_checkpoint(const std::uint8_t* data, std::size_t size);

}  // namespace sepmech::io
