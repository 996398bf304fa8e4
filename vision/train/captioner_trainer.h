// vision/train/captioner_trainer.h: trains the Show-Attend-Tell captioner: teacher forcing,
// cross-entropy plus the doubly stochastic penalty; hard attention by REINFORCE with a moving
// baseline and an entropy bonus; Adam, clipping, warm-up + cosine, early stopping on validation
// BLEU-4, resumable atomic checkpoints, a JSONL log.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "vision/checkpoint/model_file.h"
#include "vision/models/captioner.h"
#include "vision/models/vocabulary.h"
#include "vision/train/caption_data.h"
#include "vision/train/caption_metrics.h"
#include "vision/train/feature_cache.h"
#include "vision/train/train_state.h"
#include "vision/train/trainer_run.h"

namespace attnkit::vision {

class DataParallel;
class FeatureCache;

struct CaptionerTrainOptions {
  int64_t epochs = 20;
  int64_t batch_size = 64;
  double lr = 4e-4;
  double min_lr = 1e-5;
  double warmup_epochs = 0.5;
  double grad_clip = 5.0;
  /// lambda of sum_i (1 - sum_t alpha_ti)^2 (SAT eq. 14). Summed over L cells the term is ~L
  /// (256 on a 16x16 grid), so 0.01 keeps it comparable to the per-word cross-entropy.
  double doubly_stochastic = 0.01;
  /// Weight of the attention-correctness loss (Liu et al. 2017, "Attention Correctness in Neural
  /// Image Captioning"): -log of the attention mass inside the named object's boxes, for every
  /// caption word that names an object of the image. Needs data with object boxes (scenes);
  /// 0 is SAT as published.
  double attention_supervision = 0.0;
  double entropy = 0.01;              ///< hard attention: weight of the attention entropy bonus
  double reinforce = 1.0;             ///< hard attention: weight of the REINFORCE term (lambda_r)
  double baseline_decay = 0.9;        ///< b <- 0.9 b + 0.1 log p(y) (SAT section 4.1)
  double expected_probability = 0.5;  ///< hard: chance per image to use the expected context
  bool freeze_encoder = true;         ///< encoder features computed without gradients
  int64_t max_len = 20;               ///< longest training caption and validation decode
  int64_t patience = 0;               ///< early stopping on validation BLEU-4 (0 = off)
  uint64_t seed = 0;
  int64_t max_steps = 0;  ///< stop after this many steps in all (0 = no limit)
  bool bf16 = false;      ///< bf16 autocast for the decoder's matmuls; weights stay fp32
};

/// train_loss is the cross-entropy per word plus the penalty terms.
struct CaptionerEpochReport : EpochProgress {
  double val_loss = 0;  ///< cross-entropy per word, teacher forced
  BleuScores val_bleu;  ///< greedy captions of the validation images
  double val_cider = 0;
  PointingScore val_pointing;
  bool improved = false;
};

struct CaptionerTrainCallbacks {
  std::function<void(int64_t done, int64_t total, double loss, double lr)> on_step;
  std::function<void(const CaptionerEpochReport&)> on_epoch;
};

/// Figures of a captioner on a split: greedy (beam 1) or beam search captions.
struct CaptionerEvaluation {
  BleuScores bleu;
  double cider = 0;
  PointingScore pointing;
  double loss = 0;  ///< teacher-forced cross-entropy per word over all references
  std::vector<std::vector<std::string>> captions;  ///< generated, per image
};

/// Decodes every image of `data` and scores the captions against all references. With
/// `parallel`, each rank decodes its contiguous 1/N of the images and the figures are summed
/// over the ranks (BLEU from its n-gram counts, CIDEr-D per image with the document frequencies
/// of all references): every rank gets the figures one process would, and `captions` holds its
/// own part only.
CaptionerEvaluation evaluate_captioner(Captioner& model, const CaptionData& data,
                                       const Vocabulary& vocabulary, int64_t beam, int64_t max_len,
                                       int64_t batch_size,
                                       const std::function<void(int64_t)>& on_batch = {},
                                       DataParallel* parallel = nullptr);

/// The captioner's encoder as a frozen feature encoder for a FeatureCache: eval mode (BatchNorm
/// with its running statistics), no gradients, fp32 features, keyed by its weights, buffers and
/// config. A probe of one blank image at `preprocess`'s size gives the feature shape and grid.
FeatureEncoder frozen_feature_encoder(Captioner& model, const PreprocessConfig& preprocess);

/// Writes last.safetensors, best.safetensors (best validation BLEU-4) and log.jsonl into
/// `out_dir`; see ClassifierTrainer for the checkpoint contract.
class CaptionerTrainer : public TrainerRun {
 public:
  CaptionerTrainer(Captioner model, ModelInfo info, Vocabulary vocabulary, CaptionData train,
                   CaptionData validation, CaptionerTrainOptions options, std::string out_dir);
  ~CaptionerTrainer();
  void resume(const std::string& checkpoint);
  /// Trains as one rank of `parallel`, as ClassifierTrainer::set_data_parallel says: each rank
  /// takes its contiguous 1/N of every global batch of captions, the loss terms are normalised
  /// by the whole batch's word, image and object-word counts, and REINFORCE's baseline follows
  /// the whole batch's mean; validation is split over the ranks (evaluate_captioner).
  void set_data_parallel(DataParallel* parallel);
  /// Reads the frozen encoder's training features from `cache` (rows: the training data's
  /// feature_rows) instead of computing them into memory: for datasets whose features do not fit
  /// in memory. The training data may then hold no images.
  void set_feature_cache(std::shared_ptr<FeatureCache> cache);
  TrainState run(const CaptionerTrainCallbacks& callbacks = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnkit::vision
