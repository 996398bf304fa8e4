// vision/models/caption_decoder.cpp: decoding loops over CaptionerImpl::step.
#include "vision/models/caption_decoder.h"

#include <algorithm>
#include <limits>

#include <torch/torch.h>

namespace attnkit::vision {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

/// Log-probabilities (N, V) with the words that may not be chosen at `step` set to -inf.
torch::Tensor selectable(const torch::Tensor& log_probs, int64_t step) {
  auto masked = log_probs.clone();
  for (int64_t special : {Vocabulary::kPad, Vocabulary::kStart, Vocabulary::kUnk}) {
    masked.select(1, special).fill_(kNegInf);
  }
  if (step == 0) masked.select(1, Vocabulary::kEnd).fill_(kNegInf);
  return masked;
}

/// Switches the model to eval mode for the scope and restores training mode after.
class EvalScope {
 public:
  explicit EvalScope(Captioner& model) : model_(model), was_training_(model->is_training()) {
    model_->eval();
  }
  ~EvalScope() {
    if (was_training_) model_->train();
  }

 private:
  Captioner& model_;
  bool was_training_;
};

}  // namespace

std::string Caption::text() const {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w.word;
  return out;
}

std::vector<Caption> greedy_decode(Captioner& model, const EncodedImages& encoded,
                                   const Vocabulary& vocabulary, int64_t max_len) {
  TORCH_CHECK(max_len >= 1, "greedy_decode: max_len must be at least 1, got ", max_len);
  EvalScope eval(model);
  torch::NoGradGuard no_grad;
  const auto& features = encoded.features;
  const int64_t batch = features.size(0);
  auto memory = model->prepare(features);
  auto state = model->initial_state(features);
  auto words = torch::full({batch}, Vocabulary::kStart, torch::kLong);
  std::vector<Caption> captions(static_cast<size_t>(batch));
  std::vector<bool> done(static_cast<size_t>(batch), false);
  for (int64_t t = 0; t < max_len; ++t) {
    auto s = model->step(memory, words, state);
    auto log_probs = torch::log_softmax(s.logits.to(torch::kFloat), 1);
    words = selectable(log_probs, t).argmax(1);
    auto chosen = log_probs.gather(1, words.unsqueeze(1)).squeeze(1);
    auto weights = s.attention.weights.to(torch::kFloat);
    for (int64_t b = 0; b < batch; ++b) {
      if (done[b]) continue;
      const int64_t index = words[b].item<int64_t>();
      const double lp = chosen[b].item<double>();
      captions[b].log_prob += lp;
      if (index == Vocabulary::kEnd) {
        captions[b].ended = true;
        done[b] = true;
        continue;
      }
      captions[b].words.push_back(
          {index, vocabulary.word(index), std::exp(lp),
           weights[b].reshape({encoded.grid_height, encoded.grid_width}).clone()});
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    state = s.state;
  }
  return captions;
}

std::vector<Caption> beam_search(Captioner& model, const EncodedImages& encoded,
                                 const Vocabulary& vocabulary, int64_t beam, int64_t max_len) {
  TORCH_CHECK(beam >= 1 && max_len >= 1, "beam_search: beam and max_len must be >= 1, got ", beam,
              " and ", max_len);
  EvalScope eval(model);
  torch::NoGradGuard no_grad;
  const int64_t batch = encoded.features.size(0);
  const int64_t cells = encoded.features.size(1);
  const int64_t k = beam;
  // Every image's features repeated for its k hypotheses: rows b*k .. b*k + k - 1.
  auto features = encoded.features.repeat_interleave(k, 0);
  auto memory = model->prepare(features);
  auto state = model->initial_state(features);
  auto words = torch::full({batch * k}, Vocabulary::kStart, torch::kLong);
  // Only the first hypothesis of each image is live at the start, so the k are distinct.
  auto scores = torch::full({batch, k}, kNegInf, torch::kDouble);
  scores.select(1, 0).zero_();
  torch::Tensor history_words = torch::empty({batch * k, 0}, torch::kLong);
  torch::Tensor history_probs = torch::empty({batch * k, 0}, torch::kDouble);
  torch::Tensor history_attention = torch::empty({batch * k, 0, cells}, torch::kFloat);

  struct Finished {
    double normalized;
    Caption caption;
  };
  std::vector<std::vector<Finished>> finished(static_cast<size_t>(batch));
  auto make_caption = [&](int64_t row, int64_t length, double log_prob, bool ended) {
    Caption c;
    c.log_prob = log_prob;
    c.ended = ended;
    for (int64_t i = 0; i < length; ++i) {
      const int64_t index = history_words[row][i].item<int64_t>();
      c.words.push_back({index, vocabulary.word(index), history_probs[row][i].item<double>(),
                         history_attention[row][i]
                             .reshape({encoded.grid_height, encoded.grid_width})
                             .clone()});
    }
    return c;
  };

  for (int64_t t = 0; t < max_len; ++t) {
    auto s = model->step(memory, words, state);
    auto log_probs = torch::log_softmax(s.logits.to(torch::kFloat), 1).to(torch::kDouble);
    const int64_t vocab = log_probs.size(1);
    auto candidates = scores.view({batch * k, 1}) + selectable(log_probs, t);  // (B*k, V)
    candidates = candidates.view({batch, k * vocab});
    // 2k candidates guarantee k that do not end, whatever the k best do.
    auto [top_scores, top_ids] = candidates.topk(std::min(2 * k, k * vocab), 1);
    auto new_rows = torch::empty({batch, k}, torch::kLong);
    auto new_words = torch::full({batch, k}, Vocabulary::kEnd, torch::kLong);
    auto new_scores = torch::full({batch, k}, kNegInf, torch::kDouble);
    for (int64_t b = 0; b < batch; ++b) {
      int64_t kept = 0;
      for (int64_t j = 0; j < top_ids.size(1) && kept < k; ++j) {
        const double score = top_scores[b][j].item<double>();
        if (score == kNegInf) break;
        const int64_t id = top_ids[b][j].item<int64_t>();
        const int64_t row = b * k + id / vocab, word = id % vocab;
        if (word == Vocabulary::kEnd) {
          // An ended hypothesis is final; the first k to end per image are kept.
          if (static_cast<int64_t>(finished[b].size()) < k) {
            finished[b].push_back({score / static_cast<double>(t + 1),
                                   make_caption(row, t, score, true)});
          }
          continue;
        }
        new_rows[b][kept] = row;
        new_words[b][kept] = word;
        new_scores[b][kept] = score;
        ++kept;
      }
      for (int64_t j = kept; j < k; ++j) new_rows[b][j] = b * k;  // dead filler rows
    }
    const auto rows = new_rows.view({-1});
    const auto chosen = new_words.view({-1});
    auto chosen_log_probs = log_probs.index_select(0, rows).gather(1, chosen.unsqueeze(1));
    history_words = torch::cat({history_words.index_select(0, rows), chosen.unsqueeze(1)}, 1);
    history_probs = torch::cat(
        {history_probs.index_select(0, rows), chosen_log_probs.exp()}, 1);
    history_attention = torch::cat({history_attention.index_select(0, rows),
                                    s.attention.weights.to(torch::kFloat)
                                        .index_select(0, rows)
                                        .unsqueeze(1)},
                                   1);
    state = {s.state.h.index_select(0, rows), s.state.c.index_select(0, rows)};
    words = chosen;
    scores = new_scores;

    bool all_done = true;
    for (int64_t b = 0; b < batch; ++b) {
      // Done once k hypotheses ended (the usual stopping rule; a live one could in principle
      // still beat them after length normalisation).
      if (static_cast<int64_t>(finished[b].size()) < k) all_done = false;
    }
    if (all_done) break;
    if (t + 1 == max_len) {
      // Out of steps: the live hypotheses end here, unfinished.
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t j = 0; j < k; ++j) {
          const double score = scores[b][j].item<double>();
          if (score == kNegInf) continue;
          finished[b].push_back({score / static_cast<double>(t + 1),
                                 make_caption(b * k + j, t + 1, score, false)});
        }
      }
    }
  }

  std::vector<Caption> out;
  for (int64_t b = 0; b < batch; ++b) {
    auto& list = finished[b];
    TORCH_CHECK(!list.empty(), "beam_search: no hypothesis for image ", b);
    // The first of equally scored hypotheses wins, as greedy's argmax takes the first maximum.
    auto best = std::max_element(list.begin(), list.end(), [](const auto& a, const auto& c) {
      return a.normalized < c.normalized;
    });
    out.push_back(best->caption);
  }
  return out;
}

}  // namespace attnkit::vision
