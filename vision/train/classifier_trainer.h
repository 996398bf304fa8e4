// vision/train/classifier_trainer.h: trains a ViT classifier: AdamW, warm-up + cosine, label
// smoothing, augmentation, bf16 autocast, early stopping, resumable atomic checkpoints.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "vision/checkpoint/model_file.h"
#include "vision/cpu_features.h"
#include "vision/data/labeled_images.h"
#include "vision/models/vit.h"
#include "vision/train/augment.h"
#include "vision/train/train_state.h"
#include "vision/train/trainer_run.h"

namespace attnkit::vision {

class DataParallel;

struct ClassifierTrainOptions {
  int64_t epochs = 30;
  int64_t batch_size = 128;
  double lr = 1e-3;      ///< peak learning rate after warm-up
  double min_lr = 1e-5;  ///< learning rate at the end of the cosine
  double warmup_epochs = 2;
  double weight_decay = 0.05;  ///< AdamW; not applied to biases, norms, tokens, position embeddings
  double label_smoothing = 0.1;
  double grad_clip = 1.0;  ///< max global gradient norm (0 = off)
  AugmentOptions augment;
  int64_t patience = 0;  ///< stop after this many epochs without a better val top-1 (0 = off)
  uint64_t seed = 0;
  /// bf16 autocast for the matmuls (oneDNN); weights stay fp32. On by default only where the
  /// CPU computes bf16 natively: emulated bf16 is many times slower than fp32.
  bool bf16 = cpu_features().native_bf16();
  int64_t eval_batch_size = 256;
  int64_t max_steps = 0;   ///< stop after this many optimizer steps in all (0 = no limit)
  int64_t save_every = 0;  ///< also checkpoint every N steps inside an epoch (0 = epoch ends)
};

/// One epoch's figures, as logged.
struct ClassifierEpochReport : EpochProgress {
  double val_loss = 0;
  double val_top1 = 0;
  double val_top5 = 0;
  double images_per_second = 0;  ///< examples_per_second: training images
  bool improved = false;
};

struct ClassifierTrainCallbacks {
  /// After each step: images done in this epoch, of `total`; the step's loss; the learning rate.
  std::function<void(int64_t done, int64_t total, double loss, double lr)> on_step;
  std::function<void(const ClassifierEpochReport&)> on_epoch;
};

/// The training loop. Writes into `out_dir`: last.safetensors (model + optimizer + state, written
/// at every epoch end and every save_every steps), best.safetensors (the model with the best
/// validation top-1; the last one without validation data) and log.jsonl (one line per epoch).
/// Every batch's randomness derives from (seed, step), so a resumed run repeats the same batches.
class ClassifierTrainer : public TrainerRun {
 public:
  ClassifierTrainer(VisionTransformer model, ModelInfo info, LabeledImages train,
                    LabeledImages validation, ClassifierTrainOptions options, std::string out_dir);
  ~ClassifierTrainer();

  /// Continues from a last.safetensors checkpoint (model, optimizer, state). In a data-parallel
  /// run every rank resumes from the same file, whatever the world size that wrote it.
  void resume(const std::string& checkpoint);
  /// Trains as one rank of `parallel` (not owned; it must outlive run()): this rank takes its
  /// contiguous 1/N of every global batch of options.batch_size (which N must divide), the
  /// gradients are averaged over the ranks, validation is split over them and summed, and only
  /// rank 0 writes checkpoints and the log. The same seed gives the weights one process would
  /// reach with the same global batch, to float rounding (without dropout, which draws per rank).
  void set_data_parallel(DataParallel* parallel);
  /// Trains until the epochs are done, early stopping triggers or max_steps is reached.
  TrainState run(const ClassifierTrainCallbacks& callbacks = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnkit::vision
