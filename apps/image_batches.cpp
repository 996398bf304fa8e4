// apps/image_batches.cpp: the reader thread that decodes images ahead (classify, caption,
// overlay), and the load-preprocess-batch loop of classify and caption.
#include "apps/image_batches.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include <torch/torch.h>
#include <opencv2/core.hpp>

#include "vision/errors.h"
#include "vision/image/image_io.h"

namespace attnkit::apps {

namespace {

/// The reader should mostly use the cycles the forward pass leaves idle: with as many compute
/// threads as cores, a reader at normal priority preempts one of them and the whole parallel
/// region waits for it at its barrier (ViT-B on 6-megapixel photos ran 5% slower than without a
/// reader), while SCHED_IDLE starved it until the consumer waited. Nice 5 (Linux: per thread)
/// was as good as either extreme in every case measured.
void lower_priority() { setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 5); }

}  // namespace

struct ImageReader::Impl {
  Impl(const std::vector<InputItem>& items, int64_t budget_pixels, size_t min_ahead,
       std::function<bool(const InputItem&)> skip)
      : items_(items),
        budget_(budget_pixels),
        min_ahead_(min_ahead),
        skip_(std::move(skip)),
        thread_([this] { run(); }) {}
  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  DecodedImage next() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return !ready_.empty() || failure_; });
    if (ready_.empty()) std::rethrow_exception(failure_);
    DecodedImage item = std::move(ready_.front());
    ready_.pop_front();
    held_ -= static_cast<int64_t>(item.rgb.total());
    changed_.notify_all();
    return item;
  }

  void run() {
    lower_priority();
    try {
      for (const auto& input : items_) {
        DecodedImage item;
        if (!input.error.empty()) {
          item.error = input.error;
        } else if (skip_ && skip_(input)) {
          item.skipped = true;
        } else {
          try {
            item.rgb = vision::load_image_rgb(input.path);
          } catch (const vision::Error& e) {
            item.error = e.what();
          }
        }
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return stopping_ || may_hold_more(); });
        if (stopping_) return;
        held_ += static_cast<int64_t>(item.rgb.total());
        ready_.push_back(std::move(item));
        changed_.notify_all();
      }
    } catch (...) {
      // Anything but a bad image (out of memory, an OpenCV bug) goes to the consumer.
      std::lock_guard<std::mutex> lock(mutex_);
      failure_ = std::current_exception();
      changed_.notify_all();
    }
  }

  /// Always one image; below the budget, more; and up to min_ahead_ images (the consumer's next
  /// batch) within four times the budget, so a batch of large photos is ready when asked for.
  bool may_hold_more() const {
    return ready_.empty() || held_ < budget_ || (ready_.size() < min_ahead_ && held_ < 4 * budget_);
  }

  const std::vector<InputItem>& items_;
  const int64_t budget_;
  const size_t min_ahead_;
  const std::function<bool(const InputItem&)> skip_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<DecodedImage> ready_;
  int64_t held_ = 0;  ///< pixels decoded and not yet taken
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::thread thread_;  ///< last: starts once the members above exist
};

ImageReader::ImageReader(const std::vector<InputItem>& items, size_t min_ahead,
                         std::function<bool(const InputItem&)> skip, int64_t budget_pixels)
    : impl_(std::make_unique<Impl>(items, budget_pixels, min_ahead, std::move(skip))) {}

ImageReader::~ImageReader() = default;

DecodedImage ImageReader::next() { return impl_->next(); }

void for_each_image_batch(const std::vector<InputItem>& items, size_t batch_size,
                          const PrepareImage& prepare, const ReportError& on_error,
                          const ProcessBatch& on_batch, const Advance& on_advance) {
  batch_size = std::max<size_t>(batch_size, 1);
  if (items.empty()) return;
  // Decoding the next images overlaps this group's preprocessing and forward pass.
  ImageReader reader(items, batch_size);
  for (size_t start = 0; start < items.size(); start += batch_size) {
    const size_t end = std::min(items.size(), start + batch_size);
    std::vector<torch::Tensor> images;
    std::vector<std::string> paths;
    for (size_t i = start; i < end; ++i) {
      const auto decoded = reader.next();
      const auto& path = items[i].path;
      if (!decoded.error.empty()) {
        on_error(path, decoded.error);
        continue;
      }
      try {
        images.push_back(prepare(decoded.rgb, path));
        paths.push_back(path);
      } catch (const vision::Error& e) {
        on_error(path, e.what());
      }
    }
    if (!images.empty()) on_batch(torch::stack(images), paths);
    on_advance(static_cast<int64_t>(end - start));
  }
}

}  // namespace attnkit::apps
