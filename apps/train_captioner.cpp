// apps/train_captioner.cpp: `attn train captioner`: a Show-Attend-Tell captioner on a Karpathy
// split JSON (COCO, Flickr, or `attn data scenes`), its encoder from a ViT model file.
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <utility>

#include <torch/torch.h>
#include <boost/program_options.hpp>

#include "apps/caption_options.h"
#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/data_parallel_options.h"
#include "apps/train_precision.h"
#include "apps/train_progress.h"
#include "vision/checkpoint/captioner_file.h"
#include "vision/checkpoint/model_file.h"
#include "vision/data/karpathy.h"
#include "vision/errors.h"
#include "vision/train/captioner_trainer.h"
#include "vision/train/data_parallel.h"
#include "vision/train/feature_cache.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;

/// Karpathy splits train on "train" and "restval" (COCO's extra training images).
bool is_training_record(const vision::CaptionRecord& r) {
  return r.split == "train" || r.split == "restval";
}

/// The frozen encoder's features of `train`'s images in a FeatureCache under `folder` (computed
/// where missing, with a progress bar on rank 0).
std::shared_ptr<vision::FeatureCache> open_feature_cache(
    vision::Captioner& model, const vision::CaptionData& train,
    const vision::PreprocessConfig& preprocess, const std::string& folder, const std::string& dtype,
    vision::DataParallel* parallel, bool main_rank) {
  const auto encoder = vision::frozen_feature_encoder(model, preprocess);
  std::vector<std::string> paths;
  for (const auto& record : train.records) paths.push_back(record.image_path);
  vision::FeatureCacheOptions options;
  options.directory = folder;
  options.dtype = dtype == "bf16" ? torch::kBFloat16 : torch::kHalf;
  std::unique_ptr<ProgressBar> bar;
  int64_t bar_done = 0;
  auto cache = vision::FeatureCache::open(
      encoder, paths, preprocess, options, parallel, [&](int64_t done, int64_t total) {
        if (!main_rank) return;
        if (!bar) bar = std::make_unique<ProgressBar>("features", total);
        bar->advance(done - std::exchange(bar_done, done));
      });
  if (bar) bar->finish();
  if (main_rank) {
    std::cerr << "attn train: feature cache " << cache->folder() << ": " << cache->size()
              << " images of " << cache->tokens() << "x" << cache->dim() << " " << dtype
              << " features; " << cache->reused_shards() << " shards reused, "
              << cache->computed_shards() << " computed\n";
  }
  return cache;
}

/// Everything `attn train captioner` is told, with its defaults.
struct TrainCaptionerParams {
  std::string data;    ///< a Karpathy split JSON (required)
  std::string images;  ///< the image root; empty = the JSON's folder
  std::string out_dir = "runs/captioner";
  std::string encoder_path;  ///< a ViT model file; empty = a fresh vit_tiny
  std::string mode = "soft";
  std::string resume;
  std::string feature_cache;  ///< a folder for the frozen encoder's features; empty = none
  std::string feature_dtype = "fp16";
  int64_t image_size = 64;
  int64_t min_count = 1;
  int64_t limit = 0;
  int64_t encoder_depth = -1;
  int64_t captions_per_image = 0;
  int threads = 0;
  bool fine_tune = false;
  bool no_bf16 = false;
  std::string precision = "auto";
  DataParallelSettings parallel;
  vision::CaptionerConfig config;
  vision::CaptionerTrainOptions train;
};

po::options_description train_captioner_options(TrainCaptionerParams& p) {
  auto& o = p.train;
  auto& config = p.config;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "data", po::value(&p.data), "Karpathy split JSON (dataset_coco.json, scenes.json, ...)")(
      "images", po::value(&p.images), "image root (default: the JSON's directory)")(
      "out,o", po::value(&p.out_dir)->default_value(p.out_dir), "output directory")(
      "encoder", po::value(&p.encoder_path),
      "ViT model file for the encoder (its head is dropped, position embeddings resampled)")(
      "encoder-depth", po::value(&p.encoder_depth)->default_value(p.encoder_depth),
      "use the encoder's first N blocks (-1 = all, 0 = the patch embedding alone): earlier "
      "blocks keep features local, as SAT took a conv layer rather than the last one")(
      "image-size", po::value(&p.image_size)->default_value(p.image_size), "square input size")(
      "mode", po::value(&p.mode)->default_value(p.mode), "soft | hard attention")(
      "embed-dim", po::value(&config.embed_dim)->default_value(config.embed_dim), "word embedding")(
      "hidden-dim", po::value(&config.hidden_dim)->default_value(config.hidden_dim), "LSTM state")(
      "attention-dim", po::value(&config.attention_dim)->default_value(config.attention_dim),
      "additive attention width")(
      "dropout", po::value(&config.dropout)->default_value(config.dropout), "before the output")(
      "min-count", po::value(&p.min_count)->default_value(p.min_count),
      "words seen fewer times in training become <unk>")(
      "epochs", po::value(&o.epochs)->default_value(o.epochs), "passes over the captions")(
      "batch-size,b", po::value(&o.batch_size)->default_value(o.batch_size), "captions per step")(
      "lr", po::value(&o.lr)->default_value(o.lr), "peak learning rate (Adam)")(
      "min-lr", po::value(&o.min_lr)->default_value(o.min_lr), "learning rate at the end")(
      "warmup-epochs", po::value(&o.warmup_epochs)->default_value(o.warmup_epochs), "warm-up")(
      "grad-clip", po::value(&o.grad_clip)->default_value(o.grad_clip), "max gradient norm")(
      "doubly-stochastic", po::value(&o.doubly_stochastic)->default_value(o.doubly_stochastic),
      "lambda of sum_i (1 - sum_t alpha_ti)^2")(
      "attention-supervision",
      po::value(&o.attention_supervision)->default_value(o.attention_supervision),
      "weight of -log(attention mass inside the object's boxes) for words naming an object\n"
      "(Liu et al. 2017, attention correctness); needs data with boxes, 0 = SAT as published")(
      "entropy", po::value(&o.entropy)->default_value(o.entropy), "hard: entropy bonus weight")(
      "max-len", po::value(&o.max_len)->default_value(o.max_len), "longest caption")(
      "fine-tune-encoder", po::bool_switch(&p.fine_tune), "train the encoder too (default frozen)")(
      "patience", po::value(&o.patience)->default_value(o.patience),
      "early stopping on validation BLEU-4 (0 = off)")(
      "seed", po::value(&o.seed)->default_value(o.seed), "seed")(
      "captions-per-image", po::value(&p.captions_per_image)->default_value(p.captions_per_image),
      "train on only the first N reference captions of each image (0 = all). With N = 1 the\n"
      "order in which objects are named is a function of the image, so the attention can\n"
      "commit to the next object instead of spreading over every object a reference might\n"
      "name next; validation still scores against all references")(
      "limit", po::value(&p.limit)->default_value(p.limit), "use only the first N training images")(
      "max-steps", po::value(&o.max_steps)->default_value(o.max_steps),
      "stop after N steps (0 = all)")(
      "precision", po::value(&p.precision)->default_value(p.precision), kPrecisionHelp)(
      "no-bf16", po::bool_switch(&p.no_bf16), "the same as --precision fp32")(
      "threads,t", po::value(&p.threads)->default_value(p.threads), kThreadsHelp)(
      "resume", po::value(&p.resume),
      "continue from a last.safetensors checkpoint (any number of processes may resume it)")(
      "feature-cache", po::value(&p.feature_cache),
      "keep the frozen encoder's features of the training images in this folder, on disk, and "
      "read them back a batch at a time, so memory stays bounded whatever the dataset (COCO "
      "through ViT-B/16: 600 KB of features an image). Computed once, resumable, reused by "
      "every later run with the same encoder, preprocessing and images, and by every rank")(
      "feature-dtype", po::value(&p.feature_dtype)->default_value(p.feature_dtype),
      "the feature cache's values: fp16 | bf16");
  add_data_parallel_options(options, &p.parallel);
  add_max_pixels_option(options);
  return options;
}

const char* const kTrainCaptionerSummary =
    "Trains Show, Attend and Tell: teacher forcing, cross-entropy plus the doubly\n"
    "stochastic attention penalty; hard attention by REINFORCE with a moving-average\n"
    "baseline and an entropy bonus (the expected context for half the images). Each\n"
    "epoch decodes the val split greedily and reports BLEU-1..4, CIDEr-D and the\n"
    "pointing game; best.safetensors keeps the best BLEU-4. A NaN or Inf loss stops\n"
    "training with exit 1 and keeps the last checkpoint; so does a checkpoint that cannot\n"
    "be written (the previous one stays intact).\n\n"
    "Example:\n"
    "  attn data scenes --out data/scenes --count 20000\n"
    "  attn train captioner --data data/scenes/scenes.json \\\n"
    "      --encoder weights/fashion-vit.safetensors --out runs/scenes\n"
    "  attn train captioner --nproc 2 --data data/scenes/scenes.json ...   (2 processes)";

/// The checks that need no file. Throws UsageError.
void check_params(TrainCaptionerParams& p) {
  const auto& o = p.train;
  check_split_json(p.data, p.images);
  if (p.mode != "soft" && p.mode != "hard") throw UsageError("--mode must be soft or hard");
  if (p.image_size < 1 || p.min_count < 1) {
    throw UsageError("--image-size and --min-count must be >= 1");
  }
  if (p.encoder_depth < -1) throw UsageError("--encoder-depth must be >= 0 (-1 = all blocks)");
  if (!(o.attention_supervision >= 0)) throw UsageError("--attention-supervision must be >= 0");
  if (p.captions_per_image < 0) {
    throw UsageError("--captions-per-image must be >= 0 (0 = all)");
  }
  p.train.freeze_encoder = !p.fine_tune;
  if (!p.feature_cache.empty() && p.fine_tune) {
    throw UsageError(
        "--feature-cache keeps a frozen encoder's features: it cannot be used with "
        "--fine-tune-encoder");
  }
  if (p.feature_dtype != "fp16" && p.feature_dtype != "bf16") {
    throw UsageError("--feature-dtype must be fp16 or bf16, got '" + p.feature_dtype + "'");
  }
}

/// The encoder's config and the preprocessing in `p.config` and `info` (from --encoder, or a
/// fresh vit_tiny), cut to --encoder-depth and sized to --image-size. Throws vision::Error for
/// an unusable encoder file and UsageError for a depth it does not have.
vision::LoadedViT configure_encoder(TrainCaptionerParams& p, vision::ModelInfo& info) {
  auto& config = p.config;
  vision::LoadedViT source;
  if (!p.encoder_path.empty()) {
    source = vision::load_vit(p.encoder_path);
    config.encoder = source.config;
    info.preprocess = source.info.preprocess;
  } else {
    config.encoder = vision::ViTConfig::from_name("vit_tiny_patch16_224");
  }
  if (p.encoder_depth > config.encoder.depth) {
    throw UsageError("--encoder-depth " + std::to_string(p.encoder_depth) +
                     ": the encoder has only " + std::to_string(config.encoder.depth) + " blocks");
  }
  if (p.encoder_depth >= 0) config.encoder.depth = p.encoder_depth;
  config.encoder.image_height = config.encoder.image_width = p.image_size;
  config.encoder.num_classes = 0;
  info.preprocess.height = info.preprocess.width = p.image_size;
  info.preprocess.crop_pct = 1.0;
  info.preprocess.crop_mode = vision::CropMode::kSquash;
  config.mode =
      p.mode == "hard" ? attention::AttentionMode::kHard : attention::AttentionMode::kSoft;
  return source;
}

/// --limit (training images) and --captions-per-image applied to the records.
void limit_records(const TrainCaptionerParams& p, std::vector<vision::CaptionRecord>& records) {
  if (p.limit > 0) {
    std::vector<vision::CaptionRecord> kept;
    int64_t train_count = 0;
    for (const auto& r : records) {
      if (is_training_record(r) && train_count++ >= p.limit) continue;
      kept.push_back(r);
    }
    records = kept;
  }
  if (p.captions_per_image > 0) {
    for (auto& r : records) {
      if (is_training_record(r) && static_cast<int64_t>(r.captions.size()) > p.captions_per_image) {
        r.captions.resize(p.captions_per_image);
      }
    }
  }
}

void warn_skipped(const vision::CaptionData& data) {
  for (const auto& s : data.skipped) print_warning("train", "skipped " + s.error);
}

struct CaptionSets {
  vision::CaptionData train;
  vision::CaptionData validation;  ///< empty when the data has no val split
  vision::Vocabulary vocabulary;
};

/// The training and validation captions and the vocabulary of the training ones; skipped
/// images are warned about. Throws vision::Error.
CaptionSets load_caption_sets(const TrainCaptionerParams& p,
                              const vision::PreprocessConfig& preprocess) {
  auto records = vision::load_karpathy_json(p.data, p.images);
  limit_records(p, records);
  std::vector<std::vector<std::string>> sentences;
  for (const auto& r : records) {
    if (!is_training_record(r)) continue;
    sentences.insert(sentences.end(), r.captions.begin(), r.captions.end());
  }
  CaptionSets sets;
  sets.vocabulary = vision::Vocabulary::build(sentences, p.min_count);
  // With a feature cache the training images are read once, by the cache, a batch at a time.
  sets.train = vision::load_caption_data(records, {"train"}, preprocess, sets.vocabulary, p.data,
                                         /*load_images=*/p.feature_cache.empty());
  warn_skipped(sets.train);
  try {
    sets.validation =
        vision::load_caption_data(records, {"val"}, preprocess, sets.vocabulary, p.data);
    warn_skipped(sets.validation);
  } catch (const vision::DataError&) {
    print_warning("train", p.data + ": no val split: no validation, best = last");
  }
  return sets;
}

/// The line that closes an epoch.
void print_epoch(const vision::CaptionerEpochReport& r, int64_t epochs, bool validation) {
  std::cerr << "epoch " << r.epoch << "/" << epochs << "  step " << r.step << "  loss "
            << fixed_point(r.train_loss, 4);
  if (validation) {
    std::cerr << "  val_loss " << fixed_point(r.val_loss, 4) << "  BLEU-4 "
              << fixed_point(r.val_bleu.bleu[3], 4) << "  CIDEr-D " << fixed_point(r.val_cider, 3)
              << "  pointing " << fixed_point(100 * r.val_pointing.accuracy(), 1) << "%";
  }
  std::cerr << "  " << fixed_point(r.elapsed_seconds / 60, 1) << " min" << (r.improved ? "  *" : "")
            << std::endl;
}

void announce(const TrainCaptionerParams& p, const CaptionSets& sets,
              const vision::DataParallel* parallel) {
  std::cerr << "attn train: " << sets.train.size() << " training and " << sets.validation.size()
            << " validation images, vocabulary " << sets.vocabulary.size() << ", " << p.mode
            << " attention, encoder " << (p.train.freeze_encoder ? "frozen" : "fine-tuned");
  if (parallel) {
    std::cerr << "; data parallel over " << parallel->world_size() << " processes, "
              << p.train.batch_size / parallel->world_size() << " captions each per step";
  }
  std::cerr << "\n";
}

/// --attention-supervision needs boxes; the captioner's config takes the vocabulary's size.
/// Throws UsageError.
void check_model_fits_data(TrainCaptionerParams& p, const CaptionSets& sets) {
  const auto& records = sets.train.records;
  if (p.train.attention_supervision > 0 &&
      std::none_of(records.begin(), records.end(),
                   [](const vision::CaptionRecord& r) { return !r.objects.empty(); })) {
    throw UsageError(p.data +
                     ": --attention-supervision needs object boxes (objects[] in the JSON, "
                     "as 'attn data scenes' writes), and no training image has any");
  }
  p.config.vocab_size = sets.vocabulary.size();
  try {
    p.config.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

}  // namespace

int run_train_captioner(int argc, char** argv) {
  TrainCaptionerParams p;
  auto options = train_captioner_options(p);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "",
                          "attn train captioner --data SPLIT.json [options]",
                          kTrainCaptionerSummary, vm)) {
    return kExitOk;
  }
  check_params(p);
  auto& o = p.train;
  auto start = start_data_parallel(p.parallel, o.batch_size, vm, argc, argv);
  if (start.launched_exit) return *start.launched_exit;
  // Rank 0 speaks for the run; the other ranks print only their errors.
  const bool main_rank = start.main_rank();
  o.bf16 = announce_training_precision(p.precision, p.no_bf16, main_rank).bf16;
  set_threads(p.threads);
  torch::manual_seed(o.seed);

  vision::ModelInfo info;
  vision::LoadedViT source;
  CaptionSets sets;
  try {
    source = configure_encoder(p, info);
  } catch (const vision::Error& e) {
    print_error("train", e.what());
    return kExitBadModel;
  }
  try {
    sets = load_caption_sets(p, info.preprocess);
  } catch (const vision::Error& e) {
    print_error("train", e.what());
    return kExitNoInput;
  }
  auto& train = sets.train;
  check_model_fits_data(p, sets);
  vision::Captioner model(p.config);
  if (source.model) {
    const auto copied = vision::load_vit_trunk(model->encoder, source, p.encoder_path);
    if (main_rank) {
      std::cerr << "attn train: encoder initialised from " << p.encoder_path << " (" << copied
                << " tensors)\n";
    }
  }
  std::shared_ptr<vision::FeatureCache> cache;
  if (!p.feature_cache.empty()) {
    try {
      cache = open_feature_cache(model, train, info.preprocess, p.feature_cache, p.feature_dtype,
                                 start.group.get(), main_rank);
      train = vision::with_feature_cache(std::move(train), *cache, p.data);
    } catch (const vision::Error& e) {
      print_error("train", e.what());
      return kExitNoInput;
    }
    if (main_rank) warn_skipped(train);
  }
  info.source = command_line_text("attn train captioner", argc, argv);
  if (main_rank) announce(p, sets, start.group.get());

  vision::CaptionerTrainer trainer(model, info, sets.vocabulary, train, sets.validation, o,
                                   p.out_dir);
  trainer.set_data_parallel(start.group.get());
  if (cache) trainer.set_feature_cache(cache);
  if (!resume_if_asked(trainer, p.resume, main_rank)) return kExitBadModel;
  const bool validation = sets.validation.size() > 0;
  TrainingProgress progress([&trainer] { return trainer.state().epoch; }, o.epochs, o.batch_size,
                            main_rank);
  vision::CaptionerTrainCallbacks callbacks;
  callbacks.on_step = [&](int64_t done, int64_t total, double loss, double lr) {
    progress.step(done, total, loss, lr);
  };
  callbacks.on_epoch = [&](const vision::CaptionerEpochReport& r) {
    if (progress.end_epoch()) print_epoch(r, o.epochs, validation);
  };
  vision::TrainState state;
  const int trained = run_training_loop([&] { state = trainer.run(callbacks); }, progress.bar());
  if (trained != kExitOk) return trained;
  if (!main_rank) return kExitOk;
  std::cout << "best: " << trainer.best_path() << "\nlast: " << trainer.last_path()
            << "\nlog:  " << trainer.log_path()
            << "\ntraining time: " << fixed_point(state.elapsed_seconds / 60, 1) << " min\n";
  return kExitOk;
}

}  // namespace attnkit::apps
