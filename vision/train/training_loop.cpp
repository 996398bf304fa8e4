// vision/train/training_loop.cpp: the epoch and step loop the classifier and captioner trainers
// share.
#include "vision/train/training_loop.h"

#include <chrono>

#include <torch/torch.h>

#include "vision/checkpoint/model_file.h"
#include "vision/train/data_parallel.h"
#include "vision/train/lr_schedule.h"
#include "vision/train/train_checkpoint.h"

namespace attnkit::vision {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Gradient clipping over what is trained (a frozen encoder has no gradients).
void clip_gradients(torch::nn::Module& model, double max_norm) {
  std::vector<torch::Tensor> trainable;
  for (const auto& p : model.parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  torch::nn::utils::clip_grad_norm_(trainable, max_norm);
}

class Loop {
 public:
  Loop(const TrainingLoopTarget& target, const TrainingLoopOptions& options, int64_t examples,
       int64_t batch_size, TrainState& state, const TrainingLoopSteps& steps)
      : t_(target),
        o_(options),
        examples_(examples),
        batch_size_(batch_size),
        batches_per_epoch_(std::max<int64_t>(1, examples / batch_size)),
        total_steps_(batches_per_epoch_ * options.epochs),
        warmup_steps_(
            static_cast<int64_t>(options.warmup_epochs * static_cast<double>(batches_per_epoch_))),
        rank_(target.parallel ? target.parallel->rank() : 0),
        state_(state),
        steps_(steps) {}

  void run() {
    t_.model->train();
    while (state_.epoch < o_.epochs && !state_.stopped_early) {
      auto order_generator = at::detail::createCPUGenerator(mix_seed(o_.seed, 1, state_.epoch));
      const auto order = torch::randperm(examples_, order_generator, torch::kLong);
      const auto epoch_start = Clock::now();
      const int64_t first_batch = state_.batch;
      lr_ = o_.lr;
      for (; state_.batch < batches_per_epoch_; ++state_.batch) {
        if (o_.max_steps > 0 && state_.step >= o_.max_steps) break;
        step(order);
      }
      check_finite_parameters(*t_.model, state_, t_.last_path);
      if (state_.batch < batches_per_epoch_) {  // max_steps reached inside the epoch
        save_checkpoint();
        break;
      }
      EpochProgress progress;
      progress.epoch = state_.epoch + 1;
      progress.step = state_.step;
      progress.lr = lr_;
      progress.train_loss =
          state_.epoch_loss_count > 0 ? state_.epoch_loss_sum / state_.epoch_loss_count : 0.0;
      progress.epoch_seconds = seconds_since(epoch_start);
      progress.examples_per_second =
          static_cast<double>((batches_per_epoch_ - first_batch) * batch_size_) /
          progress.epoch_seconds;
      end_epoch(progress);
    }
    t_.model->eval();
  }

 private:
  void step(const torch::Tensor& order) {
    const auto step_start = Clock::now();
    auto generator = at::detail::createCPUGenerator(mix_seed(o_.seed, 2, state_.step));
    // Dropout and sampling draw from torch's global generator: seeded per step and rank.
    const uint64_t dropout_seed = mix_seed(o_.seed, 3, state_.step);
    torch::manual_seed(rank_ == 0 ? dropout_seed : mix_seed(dropout_seed, 4, rank_));
    const auto loss = steps_.loss(order, state_.batch, generator);
    check_finite_loss(loss.value, state_, t_.last_path);
    lr_ = warmup_cosine_lr(state_.step, warmup_steps_, total_steps_, o_.lr, o_.min_lr);
    for (auto& group : t_.optimizer->param_groups()) group.options().set_lr(lr_);
    t_.optimizer->zero_grad();
    loss.loss.backward();
    if (t_.parallel) t_.parallel->finish_gradients();
    if (o_.grad_clip > 0) clip_gradients(*t_.model, o_.grad_clip);
    t_.optimizer->step();
    ++state_.step;
    state_.epoch_loss_sum += loss.value;
    ++state_.epoch_loss_count;
    state_.elapsed_seconds += seconds_since(step_start);
    if (steps_.on_step) {
      steps_.on_step((state_.batch + 1) * batch_size_, batches_per_epoch_ * batch_size_, loss.value,
                     lr_);
    }
    if (o_.save_every > 0 && state_.step % o_.save_every == 0) {
      check_finite_parameters(*t_.model, state_, t_.last_path);
      state_.batch += 1;  // the checkpoint resumes after this batch
      save_checkpoint();
      state_.batch -= 1;
    }
  }

  void end_epoch(EpochProgress& progress) {
    const auto validation_start = Clock::now();
    const auto validation = steps_.validate(progress);
    state_.elapsed_seconds += seconds_since(validation_start);
    progress.elapsed_seconds = state_.elapsed_seconds;
    state_.end_epoch(validation.improved, validation.metric, o_.patience);
    auto line = validation.log_fields;
    line["epoch"] = progress.epoch;
    line["step"] = progress.step;
    line["lr"] = progress.lr;
    line["train_loss"] = progress.train_loss;
    line["epoch_seconds"] = progress.epoch_seconds;
    line["elapsed_seconds"] = progress.elapsed_seconds;
    line["improved"] = validation.improved;
    line["precision"] = o_.bf16 ? "bf16" : "fp32";
    line["world_size"] = t_.parallel ? t_.parallel->world_size() : 1;
    if (t_.parallel) {
      // Gradient all-reduce time that backward did not hide, per step of this epoch.
      const auto [wait, steps] = t_.parallel->take_gradient_wait();
      line["allreduce_wait_ms_per_step"] = steps > 0 ? 1000 * wait / steps : 0.0;
    }
    // Log, best, then last: a run killed between them redoes this epoch from the previous
    // checkpoint, and the resume drops the log line it wrote (trim_training_log).
    if (rank_ == 0) {
      append_training_log(t_.log_path, line.dump());
      if (validation.improved) save_model(t_.best_path, *t_.model, *t_.info);
    }
    save_checkpoint();
    if (steps_.on_epoch) steps_.on_epoch(progress, validation);
  }

  void save_checkpoint() {
    if (rank_ != 0) return;  // the weights are the same on every rank
    save_training_checkpoint(t_.last_path, *t_.model, *t_.info, *t_.optimizer, state_.to_json());
  }

  const TrainingLoopTarget& t_;
  const TrainingLoopOptions& o_;
  int64_t examples_;
  int64_t batch_size_;
  int64_t batches_per_epoch_;
  int64_t total_steps_;
  int64_t warmup_steps_;
  int rank_;
  TrainState& state_;
  const TrainingLoopSteps& steps_;
  double lr_ = 0;
};

}  // namespace

void run_training_loop(const TrainingLoopTarget& target, const TrainingLoopOptions& options,
                       int64_t examples, int64_t batch_size, TrainState& state,
                       const TrainingLoopSteps& steps) {
  TORCH_CHECK(target.model && target.optimizer && target.info,
              "run_training_loop: model, optimizer and info are required");
  TORCH_CHECK(batch_size >= 1, "run_training_loop: batch_size must be >= 1, got ", batch_size);
  Loop(target, options, examples, batch_size, state, steps).run();
}

}  // namespace attnkit::vision
