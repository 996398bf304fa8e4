// apps/serve/analysis_cache.h: the analyses `attn serve` keeps for later map and overlay
// requests: least recently used first out, bounded by count and by bytes.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace attnkit::apps {

struct Analysis;

class AnalysisCache {
 public:
  /// At most `capacity` analyses (>= 1) and about `max_bytes` of them (the newest is kept
  /// even when it alone is larger).
  AnalysisCache(size_t capacity, size_t max_bytes);

  /// Stores `analysis` under its id, evicting the least recently used beyond the bounds.
  void put(std::shared_ptr<const Analysis> analysis);

  /// The analysis with this id, marked as just used; nullptr when unknown or evicted.
  std::shared_ptr<const Analysis> get(const std::string& id);

  struct Usage {
    size_t entries = 0;
    size_t capacity = 0;
    size_t bytes = 0;
    size_t max_bytes = 0;
  };
  Usage usage() const;

 private:
  using Order = std::list<std::shared_ptr<const Analysis>>;
  const size_t capacity_;
  const size_t max_bytes_;
  mutable std::mutex mutex_;
  Order order_;  ///< most recently used first
  std::unordered_map<std::string, Order::iterator> by_id_;
  size_t bytes_ = 0;
};

}  // namespace attnkit::apps
