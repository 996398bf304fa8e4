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

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/data_parallel_options.h"
#include "apps/train_precision.h"
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

std::string fixed(double value, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

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

}  // namespace

int run_train_captioner(int argc, char** argv) {
  std::string data, images, out_dir, encoder_path, mode = "soft", resume, feature_cache,
                                                   feature_dtype = "fp16";
  int64_t image_size = 64, min_count = 1, limit = 0, encoder_depth = -1, captions_per_image = 0;
  int threads = 0;
  DataParallelSettings parallel_settings;
  bool fine_tune = false, no_bf16 = false;
  std::string precision = "auto";
  vision::CaptionerConfig config;
  vision::CaptionerTrainOptions o;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "data", po::value(&data), "Karpathy split JSON (dataset_coco.json, scenes.json, ...)")(
      "images", po::value(&images), "image root (default: the JSON's directory)")(
      "out,o", po::value(&out_dir)->default_value("runs/captioner"), "output directory")(
      "encoder", po::value(&encoder_path),
      "ViT model file for the encoder (its head is dropped, position embeddings resampled)")(
      "encoder-depth", po::value(&encoder_depth)->default_value(-1),
      "use the encoder's first N blocks (-1 = all, 0 = the patch embedding alone): earlier "
      "blocks keep features local, as SAT took a conv layer rather than the last one")(
      "image-size", po::value(&image_size)->default_value(image_size), "square input size")(
      "mode", po::value(&mode)->default_value(mode), "soft | hard attention")(
      "embed-dim", po::value(&config.embed_dim)->default_value(config.embed_dim), "word embedding")(
      "hidden-dim", po::value(&config.hidden_dim)->default_value(config.hidden_dim), "LSTM state")(
      "attention-dim", po::value(&config.attention_dim)->default_value(config.attention_dim),
      "additive attention width")(
      "dropout", po::value(&config.dropout)->default_value(config.dropout), "before the output")(
      "min-count", po::value(&min_count)->default_value(min_count),
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
      "fine-tune-encoder", po::bool_switch(&fine_tune), "train the encoder too (default frozen)")(
      "patience", po::value(&o.patience)->default_value(o.patience),
      "early stopping on validation BLEU-4 (0 = off)")(
      "seed", po::value(&o.seed)->default_value(o.seed), "seed")(
      "captions-per-image", po::value(&captions_per_image)->default_value(0),
      "train on only the first N reference captions of each image (0 = all). With N = 1 the\n"
      "order in which objects are named is a function of the image, so the attention can\n"
      "commit to the next object instead of spreading over every object a reference might\n"
      "name next; validation still scores against all references")(
      "limit", po::value(&limit)->default_value(0), "use only the first N training images")(
      "max-steps", po::value(&o.max_steps)->default_value(0), "stop after N steps (0 = all)")(
      "precision", po::value(&precision)->default_value(precision), kPrecisionHelp)(
      "no-bf16", po::bool_switch(&no_bf16), "the same as --precision fp32")(
      "threads,t", po::value(&threads)->default_value(0), kThreadsHelp)(
      "resume", po::value(&resume),
      "continue from a last.safetensors checkpoint (any number of processes may resume it)")(
      "feature-cache", po::value(&feature_cache),
      "keep the frozen encoder's features of the training images in this folder, on disk, and "
      "read them back a batch at a time, so memory stays bounded whatever the dataset (COCO "
      "through ViT-B/16: 600 KB of features an image). Computed once, resumable, reused by "
      "every later run with the same encoder, preprocessing and images, and by every rank")(
      "feature-dtype", po::value(&feature_dtype)->default_value(feature_dtype),
      "the feature cache's values: fp16 | bf16");
  add_data_parallel_options(options, &parallel_settings);
  add_max_pixels_option(options);
  po::variables_map vm;
  if (!parse_command_line(
          argc, argv, options, "", "attn train captioner --data SPLIT.json [options]",
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
          "  attn train captioner --nproc 2 --data data/scenes/scenes.json ...   (2 processes)",
          vm)) {
    return kExitOk;
  }
  if (data.empty()) throw UsageError("--data is required (a Karpathy split JSON)");
  if (mode != "soft" && mode != "hard") throw UsageError("--mode must be soft or hard");
  if (image_size < 1 || min_count < 1)
    throw UsageError("--image-size and --min-count must be >= 1");
  if (encoder_depth < -1) throw UsageError("--encoder-depth must be >= 0 (-1 = all blocks)");
  if (!(o.attention_supervision >= 0)) throw UsageError("--attention-supervision must be >= 0");
  if (captions_per_image < 0) throw UsageError("--captions-per-image must be >= 0 (0 = all)");
  o.freeze_encoder = !fine_tune;
  if (!feature_cache.empty() && fine_tune) {
    throw UsageError(
        "--feature-cache keeps a frozen encoder's features: it cannot be used with "
        "--fine-tune-encoder");
  }
  if (feature_dtype != "fp16" && feature_dtype != "bf16") {
    throw UsageError("--feature-dtype must be fp16 or bf16, got '" + feature_dtype + "'");
  }
  auto start = start_data_parallel(parallel_settings, o.batch_size, vm, argc, argv);
  if (start.launched_exit) return *start.launched_exit;
  // Rank 0 speaks for the run; the other ranks print only their errors.
  const bool main_rank = start.main_rank();
  o.bf16 = announce_training_precision(precision, no_bf16, main_rank).bf16;
  set_threads(threads);
  torch::manual_seed(o.seed);
  if (images.empty()) images = std::filesystem::path(data).parent_path().string();

  vision::ModelInfo info;
  vision::LoadedViT source;
  if (!encoder_path.empty()) {
    try {
      source = vision::load_vit(encoder_path);
    } catch (const vision::Error& e) {
      print_error("train", e.what());
      return kExitBadModel;
    }
    config.encoder = source.config;
    info.preprocess = source.info.preprocess;
  } else {
    config.encoder = vision::ViTConfig::from_name("vit_tiny_patch16_224");
  }
  if (encoder_depth > config.encoder.depth) {
    throw UsageError("--encoder-depth " + std::to_string(encoder_depth) +
                     ": the encoder has only " + std::to_string(config.encoder.depth) + " blocks");
  }
  if (encoder_depth >= 0) config.encoder.depth = encoder_depth;
  config.encoder.image_height = config.encoder.image_width = image_size;
  config.encoder.num_classes = 0;
  info.preprocess.height = info.preprocess.width = image_size;
  info.preprocess.crop_pct = 1.0;
  info.preprocess.crop_mode = vision::CropMode::kSquash;
  config.mode = mode == "hard" ? attention::AttentionMode::kHard : attention::AttentionMode::kSoft;

  std::vector<vision::CaptionRecord> records;
  vision::CaptionData train, validation;
  vision::Vocabulary vocabulary;
  try {
    records = vision::load_karpathy_json(data, images);
    if (limit > 0) {
      std::vector<vision::CaptionRecord> kept;
      int64_t train_count = 0;
      for (const auto& r : records) {
        if (is_training_record(r) && train_count++ >= limit) continue;
        kept.push_back(r);
      }
      records = kept;
    }
    if (captions_per_image > 0) {
      for (auto& r : records) {
        if (is_training_record(r) && static_cast<int64_t>(r.captions.size()) > captions_per_image) {
          r.captions.resize(captions_per_image);
        }
      }
    }
    std::vector<std::vector<std::string>> sentences;
    for (const auto& r : records) {
      if (!is_training_record(r)) continue;
      sentences.insert(sentences.end(), r.captions.begin(), r.captions.end());
    }
    vocabulary = vision::Vocabulary::build(sentences, min_count);
    // With a feature cache the training images are read once, by the cache, a batch at a time.
    train = vision::load_caption_data(records, {"train"}, info.preprocess, vocabulary, data,
                                      /*load_images=*/feature_cache.empty());
    for (const auto& s : train.skipped) print_warning("train", "skipped " + s.error);
    try {
      validation = vision::load_caption_data(records, {"val"}, info.preprocess, vocabulary, data);
      for (const auto& s : validation.skipped) print_warning("train", "skipped " + s.error);
    } catch (const vision::DataError&) {
      print_warning("train", data + ": no val split: no validation, best = last");
    }
  } catch (const vision::Error& e) {
    print_error("train", e.what());
    return kExitNoInput;
  }
  if (o.attention_supervision > 0 &&
      std::none_of(train.records.begin(), train.records.end(),
                   [](const vision::CaptionRecord& r) { return !r.objects.empty(); })) {
    throw UsageError(data +
                     ": --attention-supervision needs object boxes (objects[] in the JSON, "
                     "as 'attn data scenes' writes), and no training image has any");
  }
  config.vocab_size = vocabulary.size();
  try {
    config.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  vision::Captioner model(config);
  if (source.model) {
    const auto copied = vision::load_vit_trunk(model->encoder, source, encoder_path);
    if (main_rank) {
      std::cerr << "attn train: encoder initialised from " << encoder_path << " (" << copied
                << " tensors)\n";
    }
  }
  std::shared_ptr<vision::FeatureCache> cache;
  if (!feature_cache.empty()) {
    try {
      cache = open_feature_cache(model, train, info.preprocess, feature_cache, feature_dtype,
                                 start.group.get(), main_rank);
      train = vision::with_feature_cache(std::move(train), *cache, data);
    } catch (const vision::Error& e) {
      print_error("train", e.what());
      return kExitNoInput;
    }
    if (main_rank) {
      for (const auto& s : train.skipped) print_warning("train", "skipped " + s.error);
    }
  }
  std::ostringstream command;
  command << "attn train captioner";
  for (int i = 1; i < argc; ++i) command << " " << argv[i];
  info.source = command.str();
  if (main_rank) {
    std::cerr << "attn train: " << train.size() << " training and " << validation.size()
              << " validation images, vocabulary " << vocabulary.size() << ", " << mode
              << " attention, encoder " << (o.freeze_encoder ? "frozen" : "fine-tuned");
    if (start.group) {
      std::cerr << "; data parallel over " << start.group->world_size() << " processes, "
                << o.batch_size / start.group->world_size() << " captions each per step";
    }
    std::cerr << "\n";
  }

  vision::CaptionerTrainer trainer(model, info, vocabulary, train, validation, o, out_dir);
  trainer.set_data_parallel(start.group.get());
  if (cache) trainer.set_feature_cache(cache);
  if (!resume.empty()) {
    try {
      trainer.resume(resume);
    } catch (const vision::Error& e) {
      print_error("train", e.what());
      return kExitBadModel;
    }
    if (main_rank) {
      std::cerr << "attn train: resumed at epoch " << trainer.state().epoch + 1 << ", step "
                << trainer.state().step << "\n";
    }
  }
  std::unique_ptr<ProgressBar> bar;
  vision::CaptionerTrainCallbacks callbacks;
  callbacks.on_step = [&](int64_t done, int64_t total, double loss, double lr) {
    if (!main_rank) return;
    if (!bar) {
      bar = std::make_unique<ProgressBar>(
          "epoch " + std::to_string(trainer.state().epoch + 1) + "/" + std::to_string(o.epochs),
          total);
      bar->advance(done - o.batch_size);
    }
    std::ostringstream note;
    note << "loss " << fixed(loss, 4) << " lr " << std::scientific << std::setprecision(2) << lr;
    bar->advance(o.batch_size, note.str());
  };
  callbacks.on_epoch = [&](const vision::CaptionerEpochReport& r) {
    if (!main_rank) return;
    if (bar) bar->finish();
    bar.reset();
    std::cerr << "epoch " << r.epoch << "/" << o.epochs << "  step " << r.step << "  loss "
              << fixed(r.train_loss, 4);
    if (validation.size() > 0) {
      std::cerr << "  val_loss " << fixed(r.val_loss, 4) << "  BLEU-4 "
                << fixed(r.val_bleu.bleu[3], 4) << "  CIDEr-D " << fixed(r.val_cider, 3)
                << "  pointing " << fixed(100 * r.val_pointing.accuracy(), 1) << "%";
    }
    std::cerr << "  " << fixed(r.elapsed_seconds / 60, 1) << " min" << (r.improved ? "  *" : "")
              << std::endl;
  };
  vision::TrainState state;
  const int trained = run_training_loop([&] { state = trainer.run(callbacks); }, bar);
  if (trained != kExitOk) return trained;
  if (!main_rank) return kExitOk;
  std::cout << "best: " << trainer.best_path() << "\nlast: " << trainer.last_path()
            << "\nlog:  " << trainer.log_path()
            << "\ntraining time: " << fixed(state.elapsed_seconds / 60, 1) << " min\n";
  return kExitOk;
}

}  // namespace attnkit::apps
