// vision/atomic_file.cpp: temporary + fsync + rename + directory fsync, and log appends, with
// errors that name the target and the errno text.
#include "vision/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "vision/errors.h"

namespace attnkit::vision {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail_write(const std::string& path, int error) {
  throw WriteError(path + ": cannot write: " + errno_message(error));
}

fs::path directory_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// The temporaries of `target` start with this; the pid and a counter follow.
std::string temporary_prefix(const std::string& target) {
  return "." + fs::path(target).filename().string() + ".tmp-";
}

// Writes every byte; returns 0 or the errno that stopped it.
int write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd, p, size);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return errno;
    // write() returns 0 only for a zero-sized request; treat it as the device refusing more.
    if (written == 0) return ENOSPC;
    p += written;
    size -= static_cast<size_t>(written);
  }
  return 0;
}

// Makes a rename durable: without it a crash can forget the new directory entry.
void sync_directory(const fs::path& dir, const std::string& target) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_write(target, errno);
  // Some file systems cannot sync a directory (EINVAL); there is nothing more to do there.
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0 && error != EINVAL) fail_write(target, error);
}

bool process_is_running(pid_t pid) {
  if (pid == ::getpid()) return true;  // a thread of this process may be writing it now
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

}  // namespace

AtomicFile::AtomicFile(std::string target, bool keep_extension) : target_(std::move(target)) {
  static std::atomic<uint64_t> counter{0};
  const fs::path dir = directory_of(target_);
  const std::string prefix = temporary_prefix(target_) + std::to_string(::getpid()) + "-";
  const std::string extension = keep_extension ? fs::path(target_).extension().string() : "";
  // A name can only be taken by a temporary this process left behind earlier; skip those.
  for (int attempt = 0; attempt < 100; ++attempt) {
    temp_ = (dir / (prefix + std::to_string(counter++) + extension)).string();
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) return;
    if (errno != EEXIST) fail_write(target_, errno);
  }
  throw WriteError(target_ + ": cannot write: no free temporary name in " + dir.string());
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::fail(int error) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_.c_str());
  fail_write(target_, error);
}

void AtomicFile::write(const void* data, size_t size) {
  if (const int error = write_all(fd_, data, size)) fail(error);
}

void AtomicFile::commit() {
  // Without fsync a crash right after the rename could leave an empty file under the target.
  if (::fsync(fd_) != 0) fail(errno);
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) fail(errno);  // close can report a delayed ENOSPC (NFS)
  if (std::rename(temp_.c_str(), target_.c_str()) != 0) fail(errno);
  committed_ = true;
  sync_directory(directory_of(target_), target_);
}

void write_atomically(const std::string& path, const void* data, size_t size) {
  AtomicFile file(path);
  file.write(data, size);
  file.commit();
}

void append_to_file(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) fail_write(path, errno);
  struct stat before {};
  const bool sized = ::fstat(fd, &before) == 0;
  if (const int error = write_all(fd, text.data(), text.size())) {
    // Take back a line cut short by a full disk so the log stays whole lines. Should that fail
    // too, the reader copes: trim_training_log drops a torn line on resume.
    const bool taken_back = sized && ::ftruncate(fd, before.st_size) == 0;
    static_cast<void>(taken_back);
    ::close(fd);
    fail_write(path, error);
  }
  if (::close(fd) != 0) fail_write(path, errno);
}

int remove_stale_temporaries(const std::string& target) {
  const std::string prefix = temporary_prefix(target);
  std::error_code error;
  int removed = 0;
  for (const auto& entry : fs::directory_iterator(directory_of(target), error)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    // ".<name>.tmp-<pid>-<n>[.ext]": read the pid and require the dash after it.
    const char* begin = name.c_str() + prefix.size();
    char* end = nullptr;
    const long pid = std::strtol(begin, &end, 10);
    if (end == begin || *end != '-' || pid <= 0) continue;
    if (process_is_running(static_cast<pid_t>(pid))) continue;
    if (fs::remove(entry.path(), error)) ++removed;
  }
  return removed;
}

std::string errno_message(int error) {
  // strerror capitalises its first word; messages are lower-case after the colon.
  std::string text = std::strerror(error);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

}  // namespace attnkit::vision
