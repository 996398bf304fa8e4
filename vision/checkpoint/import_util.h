// vision/checkpoint/import_util.h: helpers the three importers share (internal; includes JSON).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vision/checkpoint/import.h"
#include "vision/checkpoint/safetensors.h"

namespace attnkit::vision::detail {

/// Parses a JSON file; CheckpointError "<path>: ..." when missing or malformed.
nlohmann::json read_json_file(const std::string& path);

/// `dir/name` if `dir` is a directory, else throws CheckpointError naming what is missing.
std::string file_in_directory(const std::string& dir, const std::string& name);

/// The tensor as float32 (F16/BF16/F64 converted); CheckpointError if absent.
torch::Tensor float_tensor(const SafetensorsFile& file, const std::string& name);

/// The shape of tensor `name` once it is known to have `layout`'s rank (`layout` spells the
/// dimensions, e.g. "(1, tokens, dim)"); CheckpointError naming the file, the tensor, its shape
/// and the layout otherwise, or when the tensor is absent.
std::vector<int64_t> checked_shape(const SafetensorsFile& file, const std::string& name,
                                   size_t rank, const std::string& layout);

/// Heads for a standard ViT width, or 0 when the width is not a standard one.
int64_t standard_num_heads(int64_t dim);

/// The side of a square patch grid holding `cells` cells, or 0 if not a square number.
int64_t square_side(int64_t cells);

/// Validates `imported.config` (CheckpointError naming `source`) and fills `info.arch` and
/// `info.config_json`. Names and shapes are checked when the tensors are loaded into a model.
void finish_import(ImportedModel& imported, const std::string& source);

}  // namespace attnkit::vision::detail
