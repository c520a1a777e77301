#pragma once
// safetensors: 8-byte little-endian header length N, N bytes of JSON header, then the raw
// little-endian tensor bytes. Every header entry is {"dtype", "shape", "data_offsets": [a, b]}
// with offsets relative to the data section; "__metadata__" is a string->string map.
//
// sepmech's convention (shared with the golden files): complex tensors are stored as their
// real view (trailing dimension 2) and their keys listed, comma-separated, in metadata
// "complex". load_* turns them back into complex tensors; save_* does the reverse.
//
// Basic usage:
//   auto f = sepmech::io::load_safetensors("weights.safetensors");
//   torch::Tensor w = f.tensors.at("conv.weight");
//   sepmech::io::save_safetensors("out.safetensors", {{"y", y}}, {{"note", "hello"}});
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

#include "sepmech/io/errors.h"

namespace sepmech::io {

using TensorMap = std::map<std::string, torch::Tensor>;
using Metadata = std::map<std::string, std::string>;

struct TensorFile {
  TensorMap tensors;  ///< name -> tensor (contiguous, CPU, owns its memory)
  Metadata metadata;  ///< the "__metadata__" map ("complex" included as stored)
};

/// Largest header accepted (the format's own reference implementation uses 100 MB).
constexpr std::uint64_t kMaxSafetensorsHeader = 100ull * 1024 * 1024;
/// Most dimensions a tensor may have (the checkpoint reader's bound too).
constexpr std::size_t kMaxSafetensorsDims = 64;

/// Reads and validates a file. Throws FormatError naming the file (and the tensor) on any
/// violation: short file, header length beyond the file or above kMaxSafetensorsHeader,
/// malformed JSON, unknown dtype, more than kMaxSafetensorsDims dimensions, shape products
/// that overflow, offsets outside the data section, byte sizes that do not match dtype x
/// shape, overlapping tensors. A path that is not a regular file is refused the same way.
TensorFile load_safetensors(const std::string& path);

/// The same validation on bytes in memory; `name` is used in error messages.
TensorFile parse_safetensors(const std::uint8_t* data, std::size_t size,
                             const std::string& name = "<memory>");

/// Serialises tensors (any supported dtype, complex64/128 as real view + "complex" metadata).
std::vector<std::uint8_t> serialize_safetensors(const TensorMap& tensors, const Metadata& metadata = {});

/// Writes a file (atomically: to a temporary name, then renamed).
void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});

/// "F32", "I64", ... for a dtype; throws for dtypes safetensors cannot hold.
std::string safetensors_dtype_name(torch::ScalarType t);

}  // namespace sepmech::io
