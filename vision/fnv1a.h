// vision/fnv1a.h: 64-bit FNV-1a, a stable hash of bytes (the same on every machine and run) for
// cache keys and shard assignment; not for security.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace attnkit::vision {

/// Feeds bytes in any number of pieces; value() is the hash so far.
class Fnv1a {
 public:
  Fnv1a& add(const void* data, size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) hash_ = (hash_ ^ bytes[i]) * 1099511628211ull;
    return *this;
  }
  Fnv1a& add(const std::string& text) { return add(text.data(), text.size() + 1); }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 14695981039346656037ull;  // FNV offset basis; the prime is above
};

}  // namespace attnkit::vision
