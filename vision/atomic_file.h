// vision/atomic_file.h: the one way attnkit writes a file: a temporary beside the target, fsync,
// rename, fsync of the directory, so a crash or a full disk leaves the old file or the new one,
// never half of one, and (unless the process is killed) no temporary.
#pragma once

#include <cstddef>
#include <string>

namespace attnkit::vision {

/// A new file that replaces `target` only when commit() succeeds. The temporary lies in the
/// target's directory (so the rename is atomic) and is named ".<name>.tmp-<pid>-<n>": unique per
/// process (n counts up over all its threads) and created with O_EXCL, so two writers never
/// share one. Every failure, and destruction without commit(), unlinks the temporary. Errors are
/// WriteError: "<target>: cannot write: no space left on device".
///
/// Streaming use: `AtomicFile file(path); file.write(a, n); file.write(b, m); file.commit();`.
/// Writers that open files by name (OpenCV's VideoWriter) write to temp_path() instead, then
/// commit(); they must replace the file in place (open with O_TRUNC), as they all do.
class AtomicFile {
 public:
  /// Creates the temporary. `keep_extension` ends its name with the target's extension too,
  /// for writers that choose the format by the name.
  explicit AtomicFile(std::string target, bool keep_extension = false);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends `size` bytes (all of them, or throws).
  void write(const void* data, size_t size);
  /// fsync, close, rename over the target, fsync of the directory. The target is untouched
  /// when this throws.
  void commit();

  const std::string& target() const { return target_; }
  const std::string& temp_path() const { return temp_; }

 private:
  [[noreturn]] void fail(int error);

  std::string target_;
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
};

/// strerror(error) with its first letter in lower case, for "<file>: cannot write: <reason>".
std::string errno_message(int error);

/// Writes `size` bytes to `path` through an AtomicFile. Throws WriteError.
void write_atomically(const std::string& path, const void* data, size_t size);

/// Appends `text` to `path` (created when missing) and reports every write error: for logs, which
/// grow line by line instead of being replaced. Throws WriteError.
void append_to_file(const std::string& path, const std::string& text);

/// Removes the temporaries of `target` that processes no longer running left behind (a writer
/// killed with SIGKILL cannot unlink its own): only names of AtomicFile's pattern for this very
/// target, and never one of a live process. Returns how many were removed.
int remove_stale_temporaries(const std::string& target);

}  // namespace attnkit::vision
