// apps/serve/analysis_cache.cpp: the LRU of analyses.
#include "apps/serve/analysis_cache.h"

#include <algorithm>

#include "apps/serve/analyzer.h"

namespace attnkit::apps {

AnalysisCache::AnalysisCache(size_t capacity, size_t max_bytes)
    : capacity_(std::max<size_t>(capacity, 1)), max_bytes_(max_bytes) {}

void AnalysisCache::put(std::shared_ptr<const Analysis> analysis) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (const auto found = by_id_.find(analysis->id); found != by_id_.end()) {
    bytes_ -= (*found->second)->bytes;
    order_.erase(found->second);
    by_id_.erase(found);
  }
  bytes_ += analysis->bytes;
  order_.push_front(std::move(analysis));
  by_id_[order_.front()->id] = order_.begin();
  while (order_.size() > capacity_ || (order_.size() > 1 && bytes_ > max_bytes_)) {
    bytes_ -= order_.back()->bytes;
    by_id_.erase(order_.back()->id);
    order_.pop_back();
  }
}

std::shared_ptr<const Analysis> AnalysisCache::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto found = by_id_.find(id);
  if (found == by_id_.end()) return nullptr;
  order_.splice(order_.begin(), order_, found->second);
  return order_.front();
}

AnalysisCache::Usage AnalysisCache::usage() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {order_.size(), capacity_, bytes_, max_bytes_};
}

}  // namespace attnkit::apps
