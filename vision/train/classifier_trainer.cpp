// vision/train/classifier_trainer.cpp: the classifier's steps in the shared training loop: its
// batches (augmentation, Mixup / CutMix), loss and validation.
#include "vision/train/classifier_trainer.h"

#include <filesystem>

#include <torch/torch.h>

#include "vision/errors.h"
#include "vision/image/preprocess.h"
#include "vision/train/classification_metrics.h"
#include "vision/train/cpu_autocast.h"
#include "vision/train/data_parallel.h"
#include "vision/train/train_checkpoint.h"
#include "vision/train/training_loop.h"

namespace attnkit::vision {
namespace {

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
    : TrainerRun(std::move(out_dir)), impl_(std::make_unique<Impl>()) {
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
  prepare_run_directory();

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
  const int64_t batch_size = std::min(options.batch_size, train.size());
  const int64_t world = impl_->world(), rank = impl_->rank();
  TORCH_CHECK(batch_size % world == 0, "ClassifierTrainer: the batch of ", batch_size,
              " does not split into ", world, " equal parts");
  const int64_t rank_rows = batch_size / world;
  if (impl_->parallel) impl_->parallel->replicate(*model);

  TrainingLoopSteps steps;
  steps.loss = [&](const torch::Tensor& order, int64_t batch, at::Generator& generator) {
    const auto indices = order.narrow(0, batch * batch_size, batch_size);
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
    StepLoss loss;
    {
      CpuAutocast autocast(options.bf16);
      loss.loss = soft_cross_entropy(model->forward(images), targets);
    }
    // The global batch's loss; each rank's gradient is of its mean, and the ranks' gradients
    // are averaged.
    loss.value = impl_->mean_over_ranks(loss.loss.item<double>());
    return loss;
  };
  ClassifierEpochReport report;
  steps.validate = [&](const EpochProgress& progress) {
    EpochValidation validation;
    report = ClassifierEpochReport{};
    if (impl_->validation.size() > 0) {
      const auto metrics = impl_->evaluate(preprocess);
      report.val_loss = metrics.loss;
      report.val_top1 = metrics.top1;
      report.val_top5 = metrics.top5;
      validation.improved = metrics.top1 > state_.best_metric;
    }
    validation.metric = report.val_top1;
    validation.log_fields = {{"val_loss", report.val_loss},
                             {"val_top1", report.val_top1},
                             {"val_top5", report.val_top5},
                             {"images_per_second", progress.examples_per_second}};
    return validation;
  };
  steps.on_step = callbacks.on_step;
  steps.on_epoch = [&](const EpochProgress& progress, const EpochValidation& validation) {
    static_cast<EpochProgress&>(report) = progress;
    report.images_per_second = progress.examples_per_second;
    report.improved = validation.improved;
    if (callbacks.on_epoch) callbacks.on_epoch(report);
  };
  auto loop = loop_options(options);
  loop.save_every = options.save_every;
  const TrainingLoopTarget target{
      model.get(), impl_->optimizer.get(), &impl_->info, impl_->parallel, last_path(), best_path(),
      log_path()};
  run_training_loop(target, loop, train.size(), batch_size, state_, steps);
  return state_;
}

}  // namespace attnkit::vision
