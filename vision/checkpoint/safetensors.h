// vision/checkpoint/safetensors.h: memory-mapped reading and atomic writing of .safetensors files.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace attnkit::vision {

/// One tensor entry of a safetensors header.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;  ///< as spelled in the file: "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;  ///< byte offset into the data section
  uint64_t end = 0;    ///< one past the last byte
};

/// Parses and validates a safetensors header as strictly as the reference (Rust) reader:
/// header length <= 100,000,000 and within the file, valid UTF-8 JSON object, every entry with a
/// known dtype, a shape and data_offsets, offsets contiguous from 0 in order, byte count equal to
/// shape x dtype size, last offset equal to the data section size (no trailing bytes),
/// `__metadata__` a map of strings, no duplicate names.
/// `file` only names the source in error messages. Throws CheckpointError "<file>: <problem>".
/// Entries come back sorted by offset; metadata fills `metadata` when given.
std::vector<SafetensorsEntry> parse_safetensors(const uint8_t* bytes, size_t size,
                                                const std::string& file,
                                                std::map<std::string, std::string>* metadata);

/// A validated, memory-mapped .safetensors file. Tensors are zero-copy views of the mapping
/// where their data is aligned for their dtype (copies otherwise); the mapping lives as long
/// as any tensor taken from it.
class SafetensorsFile {
 public:
  /// Maps and validates `path`; throws CheckpointError naming the file and the problem.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// Entries in file order (sorted by offset).
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  bool contains(const std::string& name) const;
  /// The entry called `name`; throws CheckpointError if absent.
  const SafetensorsEntry& entry(const std::string& name) const;
  /// The tensor in its stored dtype (read-only view: do not write into it).
  torch::Tensor tensor(const std::string& name) const;
  /// The tensor converted to `dtype` (e.g. F16/BF16 -> the model's float type); a new tensor
  /// when a conversion happens.
  torch::Tensor tensor(const std::string& name, torch::ScalarType dtype) const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
};

/// Writes tensors (any of the dtypes above, contiguous or not) and string metadata to `path`
/// as the reference writer does (header padded with spaces to a multiple of 8 bytes), streamed
/// through an AtomicFile (vision/atomic_file.h): a failure, a full disk or a crash never leaves a
/// half-written file. Throws CheckpointError on I/O failure or duplicate names.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace attnkit::vision
