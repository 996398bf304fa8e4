// vision/models/caption_decoder.cpp: decoding loops over CaptionerImpl::step.
#include "vision/models/caption_decoder.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/torch.h>

namespace attnkit::vision {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

/// (V) added to log-probabilities: -inf for the words that may not be chosen at a step (<pad>,
/// <start>, <unk>, and <end> at the first step), 0 for the others.
torch::Tensor selectable_mask(int64_t vocab, bool first_step, torch::ScalarType dtype) {
  auto mask = torch::zeros({vocab}, dtype);
  for (int64_t special : {Vocabulary::kPad, Vocabulary::kStart, Vocabulary::kUnk}) {
    mask[special] = kNegInf;
  }
  if (first_step) mask[Vocabulary::kEnd] = kNegInf;
  return mask;
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

/// One beam-search step's choices, kept so captions are read back once at the end instead of
/// every hypothesis' history being copied at every step (which made decoding quadratic).
struct StepRecord {
  std::vector<int64_t> parent;       ///< (N) the row of the previous step each row extends
  std::vector<int64_t> word;         ///< (N) the word it added
  std::vector<double> probability;   ///< (N) p(word | parent)
  torch::Tensor attention;           ///< (N, L) float, indexed by parent row: this step's weights
};

/// The caption of `row` after step `last` (the words of steps 0..last), following parents back.
Caption backtrack(const std::vector<StepRecord>& steps, int64_t last, int64_t row,
                  const Vocabulary& vocabulary, int64_t grid_height, int64_t grid_width) {
  Caption c;
  c.words.resize(static_cast<size_t>(last + 1));
  for (int64_t t = last; t >= 0; --t) {
    const auto& step = steps[static_cast<size_t>(t)];
    const int64_t parent = step.parent[row];
    const int64_t index = step.word[row];
    c.words[static_cast<size_t>(t)] = {
        index, vocabulary.word(index), step.probability[row],
        step.attention[parent].reshape({grid_height, grid_width}).clone()};
    row = parent;
  }
  return c;
}

/// The rows of `memory` repeated `k` times each (rows b*k .. b*k + k - 1 are image b's).
attention::AttentionMemory repeat_rows(const attention::AttentionMemory& memory, int64_t k) {
  attention::AttentionMemory out;
  out.features = memory.features.repeat_interleave(k, 0);
  out.keys = memory.keys.repeat_interleave(k, 0);
  out.values = memory.values.repeat_interleave(k, 0);
  if (memory.mask.defined()) out.mask = memory.mask.repeat_interleave(k, 0);
  return out;
}

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
  int64_t remaining = batch;
  torch::Tensor masks[2];
  for (int64_t t = 0; t < max_len && remaining > 0; ++t) {
    auto s = model->step(memory, words, state);
    auto log_probs = torch::log_softmax(s.logits.to(torch::kFloat), 1);
    auto& mask = masks[t == 0 ? 0 : 1];
    if (!mask.defined()) mask = selectable_mask(log_probs.size(1), t == 0, torch::kFloat);
    words = (log_probs + mask).argmax(1);
    // One read of the step's choices for every image, not one per image.
    const auto chosen = log_probs.gather(1, words.unsqueeze(1)).squeeze(1).to(torch::kDouble);
    const auto word_of = words.accessor<int64_t, 1>();
    const auto log_prob_of = chosen.accessor<double, 1>();
    auto weights = s.attention.weights.to(torch::kFloat);
    for (int64_t b = 0; b < batch; ++b) {
      if (done[b]) continue;
      const int64_t index = word_of[b];
      const double lp = log_prob_of[b];
      captions[b].log_prob += lp;
      if (index == Vocabulary::kEnd) {
        captions[b].ended = true;
        done[b] = true;
        --remaining;
        continue;
      }
      captions[b].words.push_back(
          {index, vocabulary.word(index), std::exp(lp),
           weights[b].reshape({encoded.grid_height, encoded.grid_width}).clone()});
    }
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
  const int64_t k = beam;
  const int64_t rows = batch * k;
  // Every image's projected features and initial state, repeated for its k hypotheses.
  auto memory = repeat_rows(model->prepare(encoded.features), k);
  auto initial = model->initial_state(encoded.features);
  DecoderState state{initial.h.repeat_interleave(k, 0), initial.c.repeat_interleave(k, 0)};
  auto words = torch::full({rows}, Vocabulary::kStart, torch::kLong);
  // Only the first hypothesis of each image is live at the start, so the k are distinct.
  std::vector<double> scores(static_cast<size_t>(rows), kNegInf);
  for (int64_t b = 0; b < batch; ++b) scores[b * k] = 0;

  struct Finished {
    double normalized;
    Caption caption;
  };
  std::vector<std::vector<Finished>> finished(static_cast<size_t>(batch));
  // An image is done once k of its hypotheses ended (the usual stopping rule; a live one could in
  // principle still beat them after length normalisation); it then takes no further part, so
  // its caption does not depend on the other images of the batch.
  std::vector<bool> done(static_cast<size_t>(batch), false);
  int64_t remaining = batch;
  std::vector<StepRecord> steps;
  torch::Tensor masks[2];

  for (int64_t t = 0; t < max_len && remaining > 0; ++t) {
    auto s = model->step(memory, words, state);
    auto log_probs =
        torch::log_softmax(s.logits.to(torch::kFloat), 1).to(torch::kDouble).contiguous();
    const int64_t vocab = log_probs.size(1);
    auto& mask = masks[t == 0 ? 0 : 1];
    if (!mask.defined()) mask = selectable_mask(vocab, t == 0, torch::kDouble);
    const auto score_column = torch::from_blob(scores.data(), {rows, 1}, torch::kDouble);
    auto candidates = (score_column + (log_probs + mask)).view({batch, k * vocab});  // (B, k*V)
    // 2k candidates guarantee k that do not end, whatever the k best do.
    auto [top_scores, top_ids] = candidates.topk(std::min(2 * k, k * vocab), 1);
    top_scores = top_scores.contiguous();
    top_ids = top_ids.contiguous();
    const auto top_score = top_scores.accessor<double, 2>();
    const auto top_id = top_ids.accessor<int64_t, 2>();
    const double* log_prob = log_probs.data_ptr<double>();

    StepRecord record;
    record.parent.assign(static_cast<size_t>(rows), 0);
    record.word.assign(static_cast<size_t>(rows), Vocabulary::kEnd);
    record.probability.assign(static_cast<size_t>(rows), 0.0);
    record.attention = s.attention.weights.to(torch::kFloat).contiguous();
    std::vector<double> new_scores(static_cast<size_t>(rows), kNegInf);
    for (int64_t b = 0; b < batch; ++b) {
      int64_t kept = 0;
      for (int64_t j = 0; !done[b] && j < top_scores.size(1) && kept < k; ++j) {
        const double score = top_score[b][j];
        if (score == kNegInf) break;
        const int64_t id = top_id[b][j];
        const int64_t row = b * k + id / vocab, word = id % vocab;
        if (word == Vocabulary::kEnd) {
          // An ended hypothesis is final; the first k to end per image are kept.
          if (static_cast<int64_t>(finished[b].size()) < k) {
            auto caption = backtrack(steps, t - 1, row, vocabulary, encoded.grid_height,
                                     encoded.grid_width);
            caption.log_prob = score;
            caption.ended = true;
            finished[b].push_back({score / static_cast<double>(t + 1), std::move(caption)});
          }
          continue;
        }
        const int64_t slot = b * k + kept;
        record.parent[slot] = row;
        record.word[slot] = word;
        record.probability[slot] = std::exp(log_prob[row * vocab + word]);
        new_scores[slot] = score;
        ++kept;
      }
      for (int64_t j = kept; j < k; ++j) record.parent[b * k + j] = b * k;  // dead filler rows
    }
    const auto parents = torch::tensor(record.parent, torch::kLong);
    words = torch::tensor(record.word, torch::kLong);
    state = {s.state.h.index_select(0, parents), s.state.c.index_select(0, parents)};
    scores = std::move(new_scores);
    steps.push_back(std::move(record));

    for (int64_t b = 0; b < batch; ++b) {
      if (!done[b] && static_cast<int64_t>(finished[b].size()) >= k) {
        done[b] = true;
        --remaining;
      }
    }
    if (t + 1 == max_len) {
      // Out of steps: the live hypotheses end here, unfinished.
      for (int64_t b = 0; b < batch; ++b) {
        if (done[b]) continue;
        for (int64_t j = 0; j < k; ++j) {
          const double score = scores[b * k + j];
          if (score == kNegInf) continue;
          auto caption = backtrack(steps, t, b * k + j, vocabulary, encoded.grid_height,
                                   encoded.grid_width);
          caption.log_prob = score;
          caption.ended = false;
          finished[b].push_back({score / static_cast<double>(t + 1), std::move(caption)});
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
    out.push_back(std::move(best->caption));
  }
  return out;
}

}  // namespace attnkit::vision
