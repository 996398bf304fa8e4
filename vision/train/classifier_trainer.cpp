// vision/train/classifier_trainer.cpp: the classifier training loop.
#include "vision/train/classifier_trainer.h"

#include <chrono>
#include <filesystem>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "vision/errors.h"
#include "vision/image/preprocess.h"
#include "vision/train/classification_metrics.h"
#include "vision/train/cpu_autocast.h"
#include "vision/train/data_parallel.h"
#include "vision/train/lr_schedule.h"
#include "vision/train/train_checkpoint.h"

namespace attnkit::vision {
namespace {

using Clock = std::chrono::steady_clock;

/// timm's weight-decay rule: no decay on 1-d parameters (biases, norms, LayerScale) or on the
/// learned tokens and position embeddings.
bool decays(const std::string& name, const torch::Tensor& parameter) {
  if (parameter.dim() <= 1) return false;
  for (const char* skip : {"pos_embed", "cls_token", "dist_token", "reg_token", "latent"}) {
    if (name.find(skip) != std::string::npos) return false;
  }
  return true;
}

}  // namespace

struct ClassifierTrainer::Impl {
  VisionTransformer model{nullptr};
  ModelInfo info;
  LabeledImages train;
  LabeledImages validation;
  ClassifierTrainOptions options;
  std::string out_dir;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  DataParallel* parallel = nullptr;  // one process when null

  int rank() const { return parallel ? parallel->rank() : 0; }
  int world() const { return parallel ? parallel->world_size() : 1; }
  bool is_main() const { return rank() == 0; }

  // The mean of a per-rank mean over the ranks (every rank's part of the batch is the same size).
  double mean_over_ranks(double value) const {
    return parallel ? parallel->sum({value})[0] / world() : value;
  }

  // Validation split over the ranks in contiguous parts, the figures summed over them.
  ClassificationMetrics evaluate(const PreprocessConfig& preprocess) {
    const int64_t n = validation.size();
    const int64_t begin = n * rank() / world(), end = n * (rank() + 1) / world();
    ClassificationMetrics local;
    if (end > begin) {
      const auto part = world() == 1 ? validation : validation.subset(torch::arange(begin, end));
      local = evaluate_classifier(model, part, preprocess, options.eval_batch_size);
    }
    if (!parallel) return local;
    const double count = static_cast<double>(local.count);
    const auto s =
        parallel->sum({local.loss * count, local.top1 * count, local.top5 * count, count});
    ClassificationMetrics total;
    total.count = static_cast<int64_t>(s[3]);
    if (s[3] > 0) {
      total.loss = s[0] / s[3];
      total.top1 = s[1] / s[3];
      total.top5 = s[2] / s[3];
    }
    return total;
  }
};

ClassifierTrainer::ClassifierTrainer(VisionTransformer model, ModelInfo info, LabeledImages train,
                                     LabeledImages validation, ClassifierTrainOptions options,
                                     std::string out_dir)
    : impl_(std::make_unique<Impl>()) {
  TORCH_CHECK(train.size() > 0, "ClassifierTrainer: empty training set");
  TORCH_CHECK(options.batch_size > 0 && options.epochs > 0,
              "ClassifierTrainer: batch_size and epochs must be positive, got ", options.batch_size,
              " and ", options.epochs);
  TORCH_CHECK(model->config().num_classes == static_cast<int64_t>(train.classes.size()),
              "ClassifierTrainer: the model has ", model->config().num_classes,
              " classes, the data ", train.classes.size());
  impl_->model = std::move(model);
  impl_->info = std::move(info);
  impl_->train = std::move(train);
  impl_->validation = std::move(validation);
  impl_->options = options;
  impl_->out_dir = std::move(out_dir);
  std::filesystem::create_directories(impl_->out_dir);
  remove_stale_run_temporaries(impl_->out_dir);

  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& item : impl_->model->named_parameters(/*recurse=*/true)) {
    (decays(item.key(), item.value()) ? decay : no_decay).push_back(item.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(
      decay, std::make_unique<torch::optim::AdamWOptions>(
                 torch::optim::AdamWOptions(options.lr).weight_decay(options.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(options.lr).weight_decay(0.0)));
  impl_->optimizer = std::make_unique<torch::optim::AdamW>(
      groups, torch::optim::AdamWOptions(options.lr).weight_decay(options.weight_decay));
}

ClassifierTrainer::~ClassifierTrainer() = default;

std::string ClassifierTrainer::last_path() const {
  return run_file(impl_->out_dir, "last.safetensors");
}
std::string ClassifierTrainer::best_path() const {
  return run_file(impl_->out_dir, "best.safetensors");
}
std::string ClassifierTrainer::log_path() const { return run_file(impl_->out_dir, "log.jsonl"); }

void ClassifierTrainer::resume(const std::string& checkpoint) {
  state_ = resume_training_checkpoint(checkpoint, *impl_->model, *impl_->optimizer);
  if (impl_->is_main()) trim_training_log(log_path(), state_.epoch);
}

void ClassifierTrainer::set_data_parallel(DataParallel* parallel) { impl_->parallel = parallel; }

TrainState ClassifierTrainer::run(const ClassifierTrainCallbacks& callbacks) {
  auto& model = impl_->model;
  const auto& options = impl_->options;
  const auto& train = impl_->train;
  const auto& preprocess = impl_->info.preprocess;
  const int64_t classes = static_cast<int64_t>(train.classes.size());
  // Drop the ragged last batch: BatchNorm in a conv stem dislikes tiny batches.
  const int64_t batches_per_epoch =
      std::max<int64_t>(1, train.size() / std::min(options.batch_size, train.size()));
  const int64_t batch_size = std::min(options.batch_size, train.size());
  const int64_t total_steps = batches_per_epoch * options.epochs;
  const auto warmup_steps =
      static_cast<int64_t>(options.warmup_epochs * static_cast<double>(batches_per_epoch));

  auto save_checkpoint = [&](const std::string& path) {
    if (!impl_->is_main()) return;  // the weights are the same on every rank
    save_training_checkpoint(path, *model, impl_->info, *impl_->optimizer, state_.to_json());
  };
  const int64_t world = impl_->world(), rank = impl_->rank();
  TORCH_CHECK(batch_size % world == 0, "ClassifierTrainer: the batch of ", batch_size,
              " does not split into ", world, " equal parts");
  const int64_t rank_rows = batch_size / world;
  if (impl_->parallel) impl_->parallel->replicate(*model);

  model->train();
  while (state_.epoch < options.epochs && !state_.stopped_early) {
    auto order_generator = at::detail::createCPUGenerator(mix_seed(options.seed, 1, state_.epoch));
    const auto order = torch::randperm(train.size(), order_generator, torch::kLong);
    const auto epoch_start = Clock::now();
    const int64_t first_batch = state_.batch;
    double lr = options.lr;
    for (; state_.batch < batches_per_epoch; ++state_.batch) {
      if (options.max_steps > 0 && state_.step >= options.max_steps) break;
      const auto step_start = Clock::now();
      auto generator = at::detail::createCPUGenerator(mix_seed(options.seed, 2, state_.step));
      const uint64_t dropout_seed = mix_seed(options.seed, 3, state_.step);
      torch::manual_seed(rank == 0 ? dropout_seed : mix_seed(dropout_seed, 4, rank));
      const auto indices = order.narrow(0, state_.batch * batch_size, batch_size);
      auto pixels =
          augment_geometry(train.images.index_select(0, indices), options.augment, generator);
      auto labels = train.labels.index_select(0, indices);
      auto images = normalize_pixels(pixels, preprocess);
      random_erase_(images, options.augment, generator);
      auto targets = smooth_targets(labels, classes, options.label_smoothing);
      mix_batch_(images, targets, options.augment, generator);
      if (world > 1) {
        // Every rank draws the whole batch's augmentation (the same random numbers as one
        // process) and keeps its own rows.
        images = images.narrow(0, rank * rank_rows, rank_rows);
        targets = targets.narrow(0, rank * rank_rows, rank_rows);
      }

      lr = warmup_cosine_lr(state_.step, warmup_steps, total_steps, options.lr, options.min_lr);
      for (auto& group : impl_->optimizer->param_groups()) group.options().set_lr(lr);
      impl_->optimizer->zero_grad();
      torch::Tensor loss;
      {
        CpuAutocast autocast(options.bf16);
        loss = soft_cross_entropy(model->forward(images), targets);
      }
      // The global batch's loss, so every rank takes the same decision on a NaN.
      const double loss_value = impl_->mean_over_ranks(loss.item<double>());
      check_finite_loss(loss_value, state_, last_path());
      loss.backward();
      if (impl_->parallel) impl_->parallel->finish_gradients();
      if (options.grad_clip > 0) {
        torch::nn::utils::clip_grad_norm_(model->parameters(), options.grad_clip);
      }
      impl_->optimizer->step();
      ++state_.step;
      state_.epoch_loss_sum += loss_value;
      ++state_.epoch_loss_count;
      state_.elapsed_seconds += std::chrono::duration<double>(Clock::now() - step_start).count();
      if (callbacks.on_step) {
        callbacks.on_step((state_.batch + 1) * batch_size, batches_per_epoch * batch_size,
                          loss_value, lr);
      }
      if (options.save_every > 0 && state_.step % options.save_every == 0) {
        check_finite_parameters(*model, state_, last_path());
        state_.batch += 1;  // the checkpoint resumes after this batch
        save_checkpoint(last_path());
        state_.batch -= 1;
      }
    }
    const bool epoch_done = state_.batch >= batches_per_epoch;
    check_finite_parameters(*model, state_, last_path());
    if (!epoch_done) {  // max_steps reached inside the epoch
      save_checkpoint(last_path());
      break;
    }

    ClassifierEpochReport report;
    report.epoch = state_.epoch + 1;
    report.step = state_.step;
    report.lr = lr;
    report.train_loss =
        state_.epoch_loss_count > 0 ? state_.epoch_loss_sum / state_.epoch_loss_count : 0.0;
    report.epoch_seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    report.images_per_second =
        static_cast<double>((batches_per_epoch - first_batch) * batch_size) / report.epoch_seconds;
    const auto eval_start = Clock::now();
    if (impl_->validation.size() > 0) {
      const auto metrics = impl_->evaluate(preprocess);
      report.val_loss = metrics.loss;
      report.val_top1 = metrics.top1;
      report.val_top5 = metrics.top5;
      report.improved = metrics.top1 > state_.best_metric;
    } else {
      report.improved = true;
    }
    state_.elapsed_seconds += std::chrono::duration<double>(Clock::now() - eval_start).count();
    report.elapsed_seconds = state_.elapsed_seconds;
    state_.end_epoch(report.improved, report.val_top1, options.patience);
    nlohmann::json line{{"epoch", report.epoch},
                        {"step", report.step},
                        {"lr", report.lr},
                        {"train_loss", report.train_loss},
                        {"val_loss", report.val_loss},
                        {"val_top1", report.val_top1},
                        {"val_top5", report.val_top5},
                        {"epoch_seconds", report.epoch_seconds},
                        {"images_per_second", report.images_per_second},
                        {"elapsed_seconds", report.elapsed_seconds},
                        {"improved", report.improved},
                        {"precision", options.bf16 ? "bf16" : "fp32"},
                        {"world_size", world}};
    if (impl_->parallel) {
      // Gradient all-reduce time that backward did not hide, per step of this epoch.
      const auto [wait, steps] = impl_->parallel->take_gradient_wait();
      line["allreduce_wait_ms_per_step"] = steps > 0 ? 1000 * wait / steps : 0.0;
    }
    // Log, best, then last: a run killed between them redoes this epoch from the previous
    // checkpoint, and the resume drops the log line it wrote (trim_training_log).
    if (impl_->is_main()) {
      append_training_log(log_path(), line.dump());
      if (report.improved) save_model(best_path(), *model, impl_->info);
    }
    save_checkpoint(last_path());
    if (callbacks.on_epoch) callbacks.on_epoch(report);
  }
  model->eval();
  return state_;
}

}  // namespace attnkit::vision
