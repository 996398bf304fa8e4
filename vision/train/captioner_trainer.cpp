// vision/train/captioner_trainer.cpp: the captioner's steps in the shared training loop (teacher
// forcing, the doubly stochastic penalty, REINFORCE for hard attention) and its evaluation.
#include "vision/train/captioner_trainer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <utility>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "vision/checkpoint/captioner_file.h"
#include "vision/errors.h"
#include "vision/models/caption_decoder.h"
#include "vision/models/eval_mode_guard.h"
#include "vision/train/cpu_autocast.h"
#include "vision/train/data_parallel.h"
#include "vision/train/train_checkpoint.h"
#include "vision/train/training_loop.h"

namespace attnkit::vision {
namespace {

/// Encoder features for a batch; without gradients (and with BatchNorm statistics frozen) when
/// the encoder is frozen.
EncodedImages encode_batch(Captioner& model, const torch::Tensor& images, bool frozen) {
  if (!frozen) return model->encode(images);
  torch::NoGradGuard no_grad;
  const bool training = model->encoder->is_training();
  model->encoder->eval();
  auto encoded = model->encode(images);
  if (training) model->encoder->train();
  return encoded;
}

/// Per-word cross-entropy pieces of teacher-forced captions: per-position losses (B, T) and the
/// mask of real words (B, T).
std::pair<torch::Tensor, torch::Tensor> word_losses(const CaptionerOutput& out,
                                                    const torch::Tensor& captions) {
  const auto targets = captions.narrow(1, 1, captions.size(1) - 1);
  const int64_t vocab = out.logits.size(2);
  auto losses = torch::nn::functional::cross_entropy(
                    out.logits.reshape({-1, vocab}).to(torch::kFloat), targets.reshape({-1}),
                    torch::nn::functional::CrossEntropyFuncOptions()
                        .reduction(torch::kNone)
                        .ignore_index(Vocabulary::kPad))
                    .view(targets.sizes());
  return {losses, targets.ne(Vocabulary::kPad).to(torch::kFloat)};
}

/// Features of every image, computed once: a frozen encoder gives the same features every
/// epoch, and re-running it per step cost most of the training time. (N, L, D) float32.
torch::Tensor encode_all(Captioner& model, const torch::Tensor& images) {
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < images.size(0); start += 256) {
    const int64_t n = std::min<int64_t>(256, images.size(0) - start);
    const auto encoded = encode_batch(model, images.narrow(0, start, n), true);
    parts.push_back(encoded.features.to(torch::kFloat));
  }
  return torch::cat(parts, 0);
}

/// For each image, the vocabulary ids of the words that name its objects, each with the grid
/// cells (L) whose centres lie inside one of that word's boxes, by the pointing game's own cell
/// centres and hit test. The grid covers the whole image, as evaluate_captioner scores it.
using ObjectCells = std::vector<std::pair<int64_t, torch::Tensor>>;

std::vector<ObjectCells> object_cells(const CaptionData& data, const Vocabulary& vocabulary,
                                      int64_t grid_height, int64_t grid_width) {
  std::vector<ObjectCells> result(data.size());
  for (int64_t i = 0; i < data.size(); ++i) {
    const auto [width, height] = data.image_sizes[i];
    const cv::Rect2d region(0, 0, width, height);
    for (const auto& object : data.records[i].objects) {
      const int64_t id = vocabulary.index(object.word);
      if (id == Vocabulary::kUnk) continue;
      auto it = std::find_if(result[i].begin(), result[i].end(),
                             [&](const auto& entry) { return entry.first == id; });
      if (it == result[i].end()) {
        result[i].emplace_back(id, torch::zeros({grid_height * grid_width}));
        it = std::prev(result[i].end());
      }
      auto cells = it->second.accessor<float, 1>();
      for (int64_t cell = 0; cell < grid_height * grid_width; ++cell) {
        if (box_contains(object.box, grid_cell_centre(cell, grid_height, grid_width, region))) {
          cells[cell] = 1.0F;
        }
      }
    }
  }
  return result;
}

/// Sum over the batch's object words of -log(attention mass on the object's cells), and how many
/// such words there are (the loss is the sum over their count, over every rank's rows).
/// probabilities (B, T, L); targets (B, T) the predicted words; rows[b] the image of row b.
std::pair<torch::Tensor, int64_t> attention_correctness_loss(
    const torch::Tensor& probabilities, const torch::Tensor& targets,
    const std::vector<int64_t>& rows, const std::vector<ObjectCells>& cells) {
  const int64_t batch = probabilities.size(0), steps = probabilities.size(1);
  auto mask = torch::zeros({batch * steps, probabilities.size(2)});
  const auto target_words = targets.contiguous();
  const auto words = target_words.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < steps; ++t) {
      for (const auto& [id, object] : cells[rows[b]]) {
        if (words[b][t] == id) mask[b * steps + t].copy_(object);
      }
    }
  }
  // Words whose boxes hold no cell centre (an item smaller than a cell) have nothing to aim at.
  const auto has_object = mask.sum(1).gt(0);
  const int64_t named = has_object.sum().item<int64_t>();
  if (named == 0) return {torch::zeros({}, probabilities.options().dtype(torch::kFloat)), 0};
  const auto inside = (probabilities.to(torch::kFloat).reshape({batch * steps, -1}) * mask).sum(1);
  return {-torch::log(inside.masked_select(has_object).clamp_min(1e-6)).sum(), named};
}

}  // namespace

CaptionerEvaluation evaluate_captioner(Captioner& model, const CaptionData& data,
                                       const Vocabulary& vocabulary, int64_t beam, int64_t max_len,
                                       int64_t batch_size,
                                       const std::function<void(int64_t)>& on_batch,
                                       DataParallel* parallel) {
  CaptionerEvaluation result;
  EvalModeGuard eval_mode(*model);
  std::vector<std::vector<Tokens>> references;
  double loss_sum = 0, word_count = 0;
  torch::NoGradGuard no_grad;
  const int64_t world = parallel ? parallel->world_size() : 1;
  const int64_t rank = parallel ? parallel->rank() : 0;
  const int64_t first = data.size() * rank / world, last = data.size() * (rank + 1) / world;
  for (int64_t start = first; start < last; start += batch_size) {
    const int64_t n = std::min(batch_size, last - start);
    const auto encoded = model->encode(data.images.narrow(0, start, n));
    const auto captions = beam == 1 ? greedy_decode(model, encoded, vocabulary, max_len)
                                    : beam_search(model, encoded, vocabulary, beam, max_len);
    for (int64_t b = 0; b < n; ++b) {
      const auto& record = data.records[start + b];
      std::vector<std::string> words;
      std::vector<torch::Tensor> grids;
      for (const auto& w : captions[b].words) {
        words.push_back(w.word);
        grids.push_back(w.attention);
      }
      const auto [width, height] = data.image_sizes[start + b];
      result.pointing +=
          pointing_game(words, grids, record.objects, cv::Rect2d(0, 0, width, height));
      result.captions.push_back(words);
      references.push_back(record.captions);
      // Teacher-forced loss over every reference of the image.
      std::vector<const std::vector<int64_t>*> refs;
      for (const auto& r : data.encoded[start + b]) refs.push_back(&r);
      const auto padded = pad_captions(refs, max_len);
      const auto features =
          encoded.features.narrow(0, b, 1).expand({static_cast<int64_t>(refs.size()), -1, -1});
      const auto [losses, mask] = word_losses(model->forward(features, padded), padded);
      loss_sum += (losses * mask).sum().item<double>();
      word_count += mask.sum().item<double>();
    }
    if (on_batch) on_batch(start + n);
  }
  if (world == 1) {
    result.bleu = corpus_bleu(references, result.captions);
    result.cider = cider_d(references, result.captions);
    result.loss = word_count > 0 ? loss_sum / word_count : 0.0;
    return result;
  }
  // This rank's part: BLEU's counts, CIDEr-D per image against the document frequencies of
  // every reference (the other images' captions left empty), then the sums over the ranks.
  const auto part_bleu = corpus_bleu(references, result.captions);
  std::vector<std::vector<Tokens>> all_references;
  for (const auto& record : data.records) all_references.push_back(record.captions);
  std::vector<Tokens> hypotheses(static_cast<size_t>(data.size()));
  for (int64_t i = first; i < last; ++i) hypotheses[i] = result.captions[i - first];
  std::vector<double> per_image;
  cider_d(all_references, hypotheses, &per_image);
  double cider_sum = 0;
  for (int64_t i = first; i < last; ++i) cider_sum += per_image[i];
  std::vector<double> sums;
  for (size_t k = 0; k < 4; ++k) sums.push_back(static_cast<double>(part_bleu.matched[k]));
  for (size_t k = 0; k < 4; ++k) sums.push_back(static_cast<double>(part_bleu.total[k]));
  sums.insert(sums.end(), {static_cast<double>(part_bleu.hypothesis_length),
                           static_cast<double>(part_bleu.reference_length), cider_sum,
                           static_cast<double>(result.pointing.hits),
                           static_cast<double>(result.pointing.total), loss_sum, word_count});
  const auto s = parallel->sum(std::move(sums));
  BleuScores counts;
  for (size_t k = 0; k < 4; ++k) {
    counts.matched[k] = std::llround(s[k]);
    counts.total[k] = std::llround(s[4 + k]);
  }
  counts.hypothesis_length = std::llround(s[8]);
  counts.reference_length = std::llround(s[9]);
  result.bleu = bleu_from_counts(counts);
  result.cider = data.size() > 0 ? s[10] / static_cast<double>(data.size()) : 0.0;
  result.pointing.hits = std::llround(s[11]);
  result.pointing.total = std::llround(s[12]);
  result.loss = s[14] > 0 ? s[13] / s[14] : 0.0;
  return result;
}

FeatureEncoder frozen_feature_encoder(Captioner& model, const PreprocessConfig& preprocess) {
  FeatureEncoder encoder;
  encoder.encode = [model](const torch::Tensor& images) mutable {
    return encode_batch(model, images, /*frozen=*/true).features.to(torch::kFloat);
  };
  const auto probe = encode_batch(
      model, torch::zeros({1, preprocess.channels, preprocess.height, preprocess.width}), true);
  encoder.tokens = probe.features.size(1);
  encoder.dim = probe.features.size(2);
  encoder.grid_height = probe.grid_height;
  encoder.grid_width = probe.grid_width;
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto& p : model->encoder->named_parameters()) state.emplace_back(p.key(), p.value());
  for (const auto& b : model->encoder->named_buffers()) state.emplace_back(b.key(), b.value());
  encoder.key = feature_cache_key(state, model->config().encoder.to_json());
  return encoder;
}

struct CaptionerTrainer::Impl {
  Captioner model{nullptr};
  ModelInfo info;
  Vocabulary vocabulary;
  CaptionData train;
  CaptionData validation;
  CaptionerTrainOptions options;
  std::unique_ptr<torch::optim::Adam> optimizer;
  DataParallel* parallel = nullptr;  // one process when null
  std::shared_ptr<FeatureCache> feature_cache;

  int rank() const { return parallel ? parallel->rank() : 0; }
  int world() const { return parallel ? parallel->world_size() : 1; }
  bool is_main() const { return rank() == 0; }

  // Sums of figures over the ranks (each element summed separately); as given on one process.
  std::vector<double> sum_over_ranks(std::vector<double> values) const {
    return parallel ? parallel->sum(std::move(values)) : values;
  }

  // What the steps read: the (image, caption) pairs the epoch permutes (set by run), and from
  // prepare_steps() the frozen encoder's features when they fit in memory and the object
  // words' cells.
  std::vector<std::pair<int64_t, int64_t>> pairs;
  torch::Tensor cached_features;
  std::vector<ObjectCells> train_cells;

  void prepare_steps() {
    if (options.freeze_encoder && !feature_cache) {
      cached_features = encode_all(model, train.images);
    }
    if (options.attention_supervision <= 0) return;
    int64_t grid_height = 0, grid_width = 0;
    if (feature_cache) {
      grid_height = feature_cache->grid_height();
      grid_width = feature_cache->grid_width();
    } else {
      torch::NoGradGuard no_grad;
      const auto probe = encode_batch(model, train.images.narrow(0, 0, 1), true);
      grid_height = probe.grid_height;
      grid_width = probe.grid_width;
    }
    train_cells = object_cells(train, vocabulary, grid_height, grid_width);
  }

  // The encoder features of these training images: from the feature cache, the cached frozen
  // features, or the (trained) encoder.
  torch::Tensor features(const std::vector<int64_t>& image_rows) {
    if (feature_cache) {
      std::vector<int64_t> cache_rows;
      for (const int64_t row : image_rows) cache_rows.push_back(train.feature_rows[row]);
      return feature_cache->gather(cache_rows);
    }
    const auto rows = torch::tensor(image_rows);
    if (options.freeze_encoder) return cached_features.index_select(0, rows);
    return encode_batch(model, train.images.index_select(0, rows), false).features;
  }

  // The loss of batch `batch` of the epoch's `order`: this rank's contiguous part of the global
  // batch of `batch_size` captions.
  StepLoss step_loss(const torch::Tensor& order, int64_t batch, int64_t batch_size,
                     at::Generator& generator, TrainState& state) {
    const bool hard = model->config().mode == attention::AttentionMode::kHard;
    const int64_t rank_rows = batch_size / world();
    std::vector<int64_t> image_rows;
    std::vector<const std::vector<int64_t>*> captions;
    for (int64_t j = rank() * rank_rows; j < (rank() + 1) * rank_rows; ++j) {
      const auto& pair = pairs[order[batch * batch_size + j].item<int64_t>()];
      image_rows.push_back(pair.first);
      captions.push_back(&train.encoded[pair.first][pair.second]);
    }
    const auto padded = pad_captions(captions, options.max_len);
    const auto batch_features = features(image_rows);
    torch::Tensor expected;
    if (hard) {
      expected = (torch::rand({batch_size}, generator) < options.expected_probability)
                     .narrow(0, rank() * rank_rows, rank_rows);
    }
    CaptionerOutput out;
    {
      CpuAutocast autocast(options.bf16);
      out = model->forward(batch_features, padded, expected);
    }
    // The losses read these in fp32 whatever the matmuls ran in.
    out.logits = out.logits.to(torch::kFloat);
    out.probabilities = out.probabilities.to(torch::kFloat);
    return loss_of(out, padded, expected, image_rows, batch_size, state);
  }

  // Cross-entropy per word, the doubly stochastic penalty, attention supervision and (hard
  // attention) REINFORCE, as this rank's share of the global batch's loss: sums over its rows
  // divided by the global batch's counts, so the shares add up to the loss of the whole batch
  // on one process.
  StepLoss loss_of(const CaptionerOutput& out, const torch::Tensor& padded,
                   const torch::Tensor& expected, const std::vector<int64_t>& image_rows,
                   int64_t batch_size, TrainState& state) {
    const auto& o = options;
    const bool hard = expected.defined();
    const auto [losses, mask] = word_losses(out, padded);
    std::pair<torch::Tensor, int64_t> correctness;
    if (o.attention_supervision > 0) {
      correctness = attention_correctness_loss(
          out.probabilities, padded.narrow(1, 1, padded.size(1) - 1), image_rows, train_cells);
    }
    const auto log_likelihood = -(losses * mask).sum(1).detach();  // (B)
    const auto counts =
        sum_over_ranks({mask.sum().item<double>(), static_cast<double>(correctness.second),
                        hard ? log_likelihood.sum().item<double>() : 0.0});
    const double words = counts[0], named = counts[1];
    const double mean_log_likelihood = counts[2] / static_cast<double>(batch_size);
    auto loss = (losses * mask).sum() / words;
    // Doubly stochastic attention (SAT eq. 14): every cell attended about once in all.
    const auto attended = (out.probabilities * mask.unsqueeze(2)).sum(1);  // (B, L)
    loss = loss + o.doubly_stochastic * (1.0 - attended).pow(2).sum(1).sum() /
                      static_cast<double>(batch_size);
    if (o.attention_supervision > 0 && named > 0) {
      loss = loss + o.attention_supervision * correctness.first / named;
    }
    if (hard) {
      // REINFORCE on the sampled cells with reward log p(y | sampled cells), a moving
      // baseline, and an entropy bonus; images that used the expected context are soft.
      const auto sampled = expected.logical_not().to(torch::kFloat);
      if (!state.baseline_set) {
        state.baseline = mean_log_likelihood;
        state.baseline_set = true;
      }
      const auto advantage = log_likelihood - state.baseline;
      const auto log_p_cells = (out.log_probs * mask).sum(1) * sampled;
      const auto entropy =
          -(out.probabilities * torch::log(out.probabilities.clamp_min(1e-12))).sum(2);
      loss = loss - o.reinforce * (advantage * log_p_cells).sum() / words -
             o.entropy * (entropy * mask).sum() / words;
      state.baseline =
          o.baseline_decay * state.baseline + (1.0 - o.baseline_decay) * mean_log_likelihood;
    }
    // The whole batch's loss, so every rank takes the same decision on a NaN.
    const double value = sum_over_ranks({loss.item<double>()})[0];
    // The gradients are averaged over the ranks: scaled by their count, the average is the
    // gradient of the sum of the shares.
    if (world() > 1) loss = loss * static_cast<double>(world());
    return {loss, value};
  }
};

CaptionerTrainer::CaptionerTrainer(Captioner model, ModelInfo info, Vocabulary vocabulary,
                                   CaptionData train, CaptionData validation,
                                   CaptionerTrainOptions options, std::string out_dir)
    : TrainerRun(std::move(out_dir)), impl_(std::make_unique<Impl>()) {
  TORCH_CHECK(train.size() > 0, "CaptionerTrainer: empty training set");
  TORCH_CHECK(options.batch_size > 0 && options.epochs > 0 && options.max_len > 0,
              "CaptionerTrainer: batch_size, epochs and max_len must be positive");
  TORCH_CHECK(vocabulary.size() == model->config().vocab_size, "CaptionerTrainer: vocabulary of ",
              vocabulary.size(), " words for a model of ", model->config().vocab_size);
  info.arch = "captioner";
  info.config_json = model->config().to_json();
  info.extra[kVocabularyKey] = vocabulary.to_json();
  impl_->model = std::move(model);
  impl_->info = std::move(info);
  impl_->vocabulary = std::move(vocabulary);
  impl_->train = std::move(train);
  impl_->validation = std::move(validation);
  impl_->options = options;
  prepare_run_directory();
  std::vector<torch::Tensor> parameters;
  for (const auto& item : impl_->model->named_parameters(true)) {
    const bool encoder = item.key().rfind("encoder.", 0) == 0;
    if (encoder && options.freeze_encoder) {
      item.value().set_requires_grad(false);
      continue;
    }
    parameters.push_back(item.value());
  }
  impl_->optimizer =
      std::make_unique<torch::optim::Adam>(parameters, torch::optim::AdamOptions(options.lr));
}

CaptionerTrainer::~CaptionerTrainer() = default;

void CaptionerTrainer::resume(const std::string& checkpoint) {
  state_ = resume_training_checkpoint(checkpoint, *impl_->model, *impl_->optimizer);
  if (impl_->is_main()) trim_training_log(log_path(), state_.epoch);
}

void CaptionerTrainer::set_data_parallel(DataParallel* parallel) { impl_->parallel = parallel; }

void CaptionerTrainer::set_feature_cache(std::shared_ptr<FeatureCache> cache) {
  TORCH_CHECK(impl_->options.freeze_encoder,
              "CaptionerTrainer: a feature cache needs a frozen "
              "encoder");
  TORCH_CHECK(static_cast<int64_t>(impl_->train.feature_rows.size()) == impl_->train.size(),
              "CaptionerTrainer: the training data has no feature rows for the cache");
  impl_->feature_cache = std::move(cache);
}

TrainState CaptionerTrainer::run(const CaptionerTrainCallbacks& callbacks) {
  auto& model = impl_->model;
  const auto& o = impl_->options;
  impl_->pairs = caption_pairs(impl_->train);
  const auto examples = static_cast<int64_t>(impl_->pairs.size());
  const int64_t batch_size = std::min<int64_t>(o.batch_size, examples);
  const int64_t world = impl_->world();
  TORCH_CHECK(batch_size % world == 0, "CaptionerTrainer: the batch of ", batch_size,
              " captions does not split into ", world, " equal parts");
  if (impl_->parallel) impl_->parallel->replicate(*model);
  impl_->prepare_steps();  // after the replication: the frozen features are rank 0's encoder's

  TrainingLoopSteps steps;
  steps.loss = [&](const torch::Tensor& order, int64_t batch, at::Generator& generator) {
    return impl_->step_loss(order, batch, batch_size, generator, state_);
  };
  CaptionerEpochReport report;
  steps.validate = [&](const EpochProgress&) {
    EpochValidation validation;
    report = CaptionerEpochReport{};
    if (impl_->validation.size() > 0) {
      const auto evaluation = evaluate_captioner(model, impl_->validation, impl_->vocabulary, 1,
                                                 o.max_len, 128, {}, impl_->parallel);
      report.val_loss = evaluation.loss;
      report.val_bleu = evaluation.bleu;
      report.val_cider = evaluation.cider;
      report.val_pointing = evaluation.pointing;
      validation.improved = evaluation.bleu.bleu[3] > state_.best_metric;
    }
    validation.metric = report.val_bleu.bleu[3];
    validation.log_fields = {{"val_loss", report.val_loss},
                             {"val_bleu", report.val_bleu.bleu},
                             {"val_cider", report.val_cider},
                             {"val_pointing", report.val_pointing.accuracy()}};
    return validation;
  };
  steps.on_step = callbacks.on_step;
  steps.on_epoch = [&](const EpochProgress& progress, const EpochValidation& validation) {
    static_cast<EpochProgress&>(report) = progress;
    report.improved = validation.improved;
    if (callbacks.on_epoch) callbacks.on_epoch(report);
  };
  const auto loop = loop_options(o);
  const TrainingLoopTarget target{
      model.get(), impl_->optimizer.get(), &impl_->info, impl_->parallel, last_path(), best_path(),
      log_path()};
  run_training_loop(target, loop, examples, batch_size, state_, steps);
  return state_;
}

}  // namespace attnkit::vision
