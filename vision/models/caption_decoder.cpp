// vision/models/caption_decoder.cpp: decoding loops over CaptionerImpl::step.
#include "vision/models/caption_decoder.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "vision/models/eval_mode_guard.h"

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

/// One beam-search step's choices, kept so captions are read back once at the end instead of
/// every hypothesis' history being copied at every step (which made decoding quadratic).
struct StepRecord {
  std::vector<int64_t> parent;      ///< (N) the row of the previous step each row extends
  std::vector<int64_t> word;        ///< (N) the word it added
  std::vector<double> probability;  ///< (N) p(word | parent)
  torch::Tensor attention;          ///< (N, L) float, indexed by parent row: this step's weights
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

/// The items `index` (1-D long) of `memory`, in that order.
attention::AttentionMemory select_items(const attention::AttentionMemory& memory,
                                        const torch::Tensor& index) {
  attention::AttentionMemory out;
  out.features = memory.features.index_select(0, index);
  out.keys = memory.keys.index_select(0, index);
  // Additive attention's values are the features themselves: one copy serves both.
  out.values =
      memory.values.is_same(memory.features) ? out.features : memory.values.index_select(0, index);
  if (memory.mask.defined()) out.mask = memory.mask.index_select(0, index);
  out.queries_per_item = memory.queries_per_item;
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
  EvalModeGuard eval_mode(*model);
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
  EvalModeGuard eval_mode(*model);
  torch::NoGradGuard no_grad;
  const int64_t batch = encoded.features.size(0);
  const int64_t k = beam;
  // The k hypotheses of an image share one copy of its projected features.
  auto memory = model->prepare(encoded.features);
  memory.queries_per_item = k;
  auto initial = model->initial_state(encoded.features);
  DecoderState state{initial.h.repeat_interleave(k, 0), initial.c.repeat_interleave(k, 0)};
  auto words = torch::full({batch * k}, Vocabulary::kStart, torch::kLong);
  // live[p]: the image at position p of the rows still decoded (rows p*k .. p*k + k - 1).
  // Images leave once done, so the work per step follows the captions still being written.
  std::vector<int64_t> live(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) live[b] = b;
  // Only the first hypothesis of each image is live at the start, so the k are distinct.
  std::vector<double> scores(static_cast<size_t>(batch * k), kNegInf);
  for (int64_t b = 0; b < batch; ++b) scores[b * k] = 0;

  struct Finished {
    double normalized;
    Caption caption;
  };
  std::vector<std::vector<Finished>> finished(static_cast<size_t>(batch));
  // An image is done once k of its hypotheses ended (the usual stopping rule; a live one could in
  // principle still beat them after length normalisation); it then takes no further part, so
  // its caption does not depend on the other images of the batch.
  std::vector<StepRecord> steps;
  torch::Tensor masks[2];

  for (int64_t t = 0; t < max_len && !live.empty(); ++t) {
    const int64_t positions = static_cast<int64_t>(live.size());
    const int64_t rows = positions * k;
    auto s = model->step(memory, words, state);
    auto log_probs =
        torch::log_softmax(s.logits.to(torch::kFloat), 1).to(torch::kDouble).contiguous();
    const int64_t vocab = log_probs.size(1);
    auto& mask = masks[t == 0 ? 0 : 1];
    if (!mask.defined()) mask = selectable_mask(vocab, t == 0, torch::kDouble);
    const auto score_column = torch::from_blob(scores.data(), {rows, 1}, torch::kDouble);
    auto candidates = (score_column + (log_probs + mask)).view({positions, k * vocab});
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
    for (int64_t p = 0; p < positions; ++p) {
      auto& done_list = finished[live[p]];
      int64_t kept = 0;
      for (int64_t j = 0; j < top_scores.size(1) && kept < k; ++j) {
        const double score = top_score[p][j];
        if (score == kNegInf) break;
        const int64_t id = top_id[p][j];
        const int64_t row = p * k + id / vocab, word = id % vocab;
        if (word == Vocabulary::kEnd) {
          // An ended hypothesis is final; the first k to end per image are kept.
          if (static_cast<int64_t>(done_list.size()) < k) {
            auto caption =
                backtrack(steps, t - 1, row, vocabulary, encoded.grid_height, encoded.grid_width);
            caption.log_prob = score;
            caption.ended = true;
            done_list.push_back({score / static_cast<double>(t + 1), std::move(caption)});
          }
          continue;
        }
        const int64_t slot = p * k + kept;
        record.parent[slot] = row;
        record.word[slot] = word;
        record.probability[slot] = std::exp(log_prob[row * vocab + word]);
        new_scores[slot] = score;
        ++kept;
      }
      for (int64_t j = kept; j < k; ++j) record.parent[p * k + j] = p * k;  // dead filler rows
    }
    steps.push_back(std::move(record));
    auto& last = steps.back();

    if (t + 1 == max_len) {
      // Out of steps: the live hypotheses of unfinished images end here, unfinished.
      for (int64_t p = 0; p < positions; ++p) {
        auto& done_list = finished[live[p]];
        if (static_cast<int64_t>(done_list.size()) >= k) continue;
        for (int64_t j = 0; j < k; ++j) {
          const double score = new_scores[p * k + j];
          if (score == kNegInf) continue;
          auto caption =
              backtrack(steps, t, p * k + j, vocabulary, encoded.grid_height, encoded.grid_width);
          caption.log_prob = score;
          caption.ended = false;
          done_list.push_back({score / static_cast<double>(t + 1), std::move(caption)});
        }
      }
      break;
    }

    // Drop the images that are done: their rows leave this step's record (nothing extends
    // them), the state, the scores and the memory.
    std::vector<int64_t> keep_positions, keep_rows;
    for (int64_t p = 0; p < positions; ++p) {
      if (static_cast<int64_t>(finished[live[p]].size()) >= k) continue;
      keep_positions.push_back(p);
      for (int64_t j = 0; j < k; ++j) keep_rows.push_back(p * k + j);
    }
    if (static_cast<int64_t>(keep_positions.size()) < positions) {
      StepRecord kept;
      std::vector<double> kept_scores;
      std::vector<int64_t> kept_live;
      for (int64_t row : keep_rows) {
        kept.parent.push_back(last.parent[row]);
        kept.word.push_back(last.word[row]);
        kept.probability.push_back(last.probability[row]);
        kept_scores.push_back(new_scores[row]);
      }
      for (int64_t p : keep_positions) kept_live.push_back(live[p]);
      kept.attention = std::move(last.attention);
      last = std::move(kept);
      new_scores = std::move(kept_scores);
      live = std::move(kept_live);
      if (!live.empty()) {
        memory = select_items(memory, torch::tensor(keep_positions, torch::kLong));
      }
    }
    const auto parents = torch::tensor(last.parent, torch::kLong);
    words = torch::tensor(last.word, torch::kLong);
    state = {s.state.h.index_select(0, parents), s.state.c.index_select(0, parents)};
    scores = std::move(new_scores);
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
