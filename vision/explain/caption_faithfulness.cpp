// vision/explain/caption_faithfulness.cpp: masking the picked cells against random ones, every
// word of a caption in one teacher-forced batch.
#include "vision/explain/caption_faithfulness.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "vision/models/eval_mode_guard.h"
#include "vision/models/vocabulary.h"

namespace attnkit::vision {

CaptionFaithfulnessSummary summarize_faithfulness(
    const std::vector<std::vector<WordFaithfulness>>& captions) {
  std::vector<double> attended, random, difference;
  double wins = 0, cells = 0;
  for (const auto& caption : captions) {
    for (const auto& w : caption) {
      attended.push_back(w.attended_drop);
      random.push_back(w.random_drop);
      difference.push_back(w.attended_drop - w.random_drop);
      wins += w.attended_drop > w.random_drop ? 1 : 0;
      cells += static_cast<double>(w.cells);
    }
  }
  CaptionFaithfulnessSummary s;
  s.attended_drop = summarize(attended);
  s.random_drop = summarize(random);
  s.difference = summarize(difference);
  s.words = static_cast<int64_t>(attended.size());
  if (s.words > 0) {
    s.attended_wins = wins / static_cast<double>(s.words);
    s.mean_cells = cells / static_cast<double>(s.words);
  }
  return s;
}

std::vector<int64_t> picked_cells(const torch::Tensor& attention, double mass) {
  TORCH_CHECK(mass > 0 && mass <= 1, "picked_cells: mass must be in (0, 1], got ", mass);
  const auto flat = attention.reshape({-1}).to(torch::kDouble);
  const auto sorted = flat.sort(c10::optional<bool>(true), /*dim=*/0, /*descending=*/true);
  const auto values = std::get<0>(sorted), order = std::get<1>(sorted);
  const double total = flat.sum().item<double>();
  std::vector<int64_t> cells;
  double held = 0;
  for (int64_t i = 0; i < flat.size(0); ++i) {
    cells.push_back(order[i].item<int64_t>());
    held += values[i].item<double>();
    if (held >= mass * total) break;
  }
  return cells;
}

std::vector<std::vector<WordFaithfulness>> caption_faithfulness(
    Captioner& model, const EncodedImages& encoded, const std::vector<Caption>& captions,
    const CaptionFaithfulnessOptions& options) {
  TORCH_CHECK(static_cast<int64_t>(captions.size()) == encoded.features.size(0),
              "caption_faithfulness: ", captions.size(), " captions for ", encoded.features.size(0),
              " images");
  TORCH_CHECK(options.random_draws >= 1, "caption_faithfulness: random draws must be >= 1, got ",
              options.random_draws);
  torch::NoGradGuard no_grad;
  EvalModeGuard eval_mode(*model);
  auto generator = at::detail::createCPUGenerator(options.seed);
  const int64_t cells = encoded.features.size(1);
  std::vector<std::vector<WordFaithfulness>> out;
  for (size_t b = 0; b < captions.size(); ++b) {
    const auto& words = captions[b].words;
    const auto steps = static_cast<int64_t>(words.size());
    const auto features = encoded.features[static_cast<int64_t>(b)].to(torch::kFloat);
    const auto mean = features.mean(0);
    // Copy 0 unmasked; then per word one attended mask and `random_draws` random ones.
    const int64_t copies = 1 + steps * (1 + options.random_draws);
    auto batch = features.unsqueeze(0).repeat({copies, 1, 1});
    std::vector<WordFaithfulness> figures(static_cast<size_t>(steps));
    for (int64_t t = 0; t < steps; ++t) {
      const auto picked = picked_cells(words[t].attention, options.mass);
      const auto count = static_cast<int64_t>(picked.size());
      figures[t].word = words[t].word;
      figures[t].cells = count;
      batch[1 + t].index_copy_(0, torch::tensor(picked, torch::kLong),
                               mean.expand({count, -1}).contiguous());
      for (int64_t d = 0; d < options.random_draws; ++d) {
        const auto random = torch::randperm(cells, generator, torch::kLong).narrow(0, 0, count);
        batch[1 + steps + t * options.random_draws + d].index_copy_(
            0, random, mean.expand({count, -1}).contiguous());
      }
    }
    std::vector<int64_t> tokens{Vocabulary::kStart};
    for (const auto& w : words) tokens.push_back(w.index);
    const auto caption = torch::tensor(tokens, torch::kLong).unsqueeze(0).expand({copies, -1});
    const auto probabilities = torch::softmax(model->forward(batch, caption).logits, -1);
    const auto targets = caption.narrow(1, 1, steps).unsqueeze(-1);
    const auto p = probabilities.gather(2, targets).squeeze(-1).to(torch::kDouble);  // (copies, T)
    for (int64_t t = 0; t < steps; ++t) {
      auto& f = figures[t];
      f.probability = p[0][t].item<double>();
      f.attended_drop = f.probability - p[1 + t][t].item<double>();
      const auto random =
          p.narrow(0, 1 + steps + t * options.random_draws, options.random_draws).select(1, t);
      f.random_drop = f.probability - random.mean().item<double>();
    }
    out.push_back(std::move(figures));
  }
  return out;
}

}  // namespace attnkit::vision
