// vision/errors.h: typed exceptions thrown at the file and image boundaries.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace attnkit::vision {

/// Base of every error a user can cause with a bad file or argument. The message reads
/// "<where>: <what failed>", e.g. "photos/x.jpg: not a decodable image (PNG signature broken)".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An input image could not be read, decoded or written.
class ImageError : public Error {
 public:
  using Error::Error;
};

/// A model file (safetensors, imported checkpoint, config JSON) is unreadable or does not fit.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

/// A dataset file (idx, Karpathy JSON, image folder) is unreadable or inconsistent.
class DataError : public Error {
 public:
  using Error::Error;
};

/// An output file could not be written (vision/atomic_file.h): "out.png: cannot write: no space
/// left on device". The file it would have replaced is intact.
class WriteError : public Error {
 public:
  using Error::Error;
};

/// Training cannot go on: the loss or the weights became NaN or Inf. The message names the epoch
/// and step; the last checkpoint written before them is kept.
class TrainingDiverged : public Error {
 public:
  using Error::Error;
};

/// Data-parallel training cannot go on: the rendezvous with the other processes failed (the
/// message names the master's address), or a collective failed because a process died or did not
/// answer within the timeout.
class DistributedError : public Error {
 public:
  using Error::Error;
};

/// A checkpoint whose files do not say something the import needs: `missing` names what would
/// supply it ("num_heads": ImportOptions::num_heads; "format": the checkpoint format), so a
/// caller can say how to pass it.
class ImportNeedsOption : public CheckpointError {
 public:
  ImportNeedsOption(const std::string& message, std::string missing)
      : CheckpointError(message), missing_(std::move(missing)) {}
  const std::string& missing() const { return missing_; }

 private:
  std::string missing_;
};

}  // namespace attnkit::vision
