// vision/api/captioner.cpp: attnkit::Captioner: a Show-Attend-Tell model file behind cv::Mat
// in, a caption with each word's attention out.
#include <stdexcept>

#include <torch/torch.h>

#include "vision/api/api_helpers.h"
#include "vision/api/attnkit.h"
#include "vision/checkpoint/captioner_file.h"
#include "vision/cpu_features.h"
#include "vision/models/caption_decoder.h"
#include "vision/models/inference_precision.h"

namespace attnkit {

struct Captioner::Impl {
  vision::LoadedCaptioner loaded;
};

Captioner::Captioner(const std::string& model_path, const LoadOptions& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->loaded = vision::load_captioner(model_path);
  vision::apply_inference_precision(
      *impl_->loaded.model,
      vision::choose_inference_precision(options.precision, vision::cpu_features()));
}

Captioner::~Captioner() = default;
Captioner::Captioner(Captioner&&) noexcept = default;
Captioner& Captioner::operator=(Captioner&&) noexcept = default;

Caption Captioner::caption(const cv::Mat& rgb, int beam, int max_len) const {
  if (beam < 1)
    throw std::invalid_argument("caption: beam must be at least 1, got " + std::to_string(beam));
  if (max_len < 1)
    throw std::invalid_argument("caption: max_len must be at least 1, got " +
                                std::to_string(max_len));
  const auto image =
      vision::preprocess_image(api_detail::as_rgb8(rgb, "caption"), impl_->loaded.info.preprocess);
  c10::InferenceMode inference;
  auto& model = impl_->loaded.model;
  const auto encoded = model->encode(image.unsqueeze(0));
  const auto decoded =
      vision::beam_search(model, encoded, impl_->loaded.vocabulary, beam, max_len).front();
  Caption out;
  out.text = decoded.text();
  out.log_prob = decoded.log_prob;
  out.ended = decoded.ended;
  for (const auto& w : decoded.words) {
    out.words.push_back({w.word, w.probability, api_detail::grid_to_mat(w.attention)});
  }
  return out;
}

cv::Mat Captioner::overlay(const cv::Mat& rgb, const CaptionWord& word,
                           const OverlayOptions& options) const {
  return api_detail::draw_grid(api_detail::as_rgb8(rgb, "overlay"),
                               api_detail::mat_to_grid(word.attention, "overlay: word.attention"),
                               impl_->loaded.info.preprocess, options);
}

}  // namespace attnkit
