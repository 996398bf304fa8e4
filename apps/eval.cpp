// apps/eval.cpp: `attn eval classifier`: top-1 / top-5 and the confusion matrix of a model on a
// dataset, as a table, JSON and a PNG plot.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include <torch/torch.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/caption_options.h"
#include "apps/classifier_data.h"
#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/inference_precision_option.h"
#include "apps/json_output.h"
#include "vision/api/attnkit.h"
#include "vision/checkpoint/captioner_file.h"
#include "vision/checkpoint/model_file.h"
#include "vision/data/fashion_mnist.h"
#include "vision/data/karpathy.h"
#include "vision/errors.h"
#include "vision/explain/caption_faithfulness.h"
#include "vision/image/confusion_plot.h"
#include "vision/image/image_io.h"
#include "vision/models/caption_decoder.h"
#include "vision/models/eval_mode_guard.h"
#include "vision/models/test_time_augmentation.h"
#include "vision/train/captioner_trainer.h"
#include "vision/train/classification_metrics.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

// Files the metrics leave out, for --json: [{"path", "error"}].
json skipped_json(const std::vector<vision::SkippedFile>& skipped) {
  json out = json::array();
  for (const auto& s : skipped) out.push_back({{"path", s.path}, {"error", s.error}});
  return out;
}

std::string skipped_note(const std::vector<vision::SkippedFile>& skipped) {
  if (skipped.empty()) return "";
  return "skipped:  " + std::to_string(skipped.size()) +
         " unreadable file(s), not counted in these figures (listed above)\n";
}

void print_confusion(const vision::ClassificationMetrics& m,
                     const std::vector<std::string>& classes) {
  const auto k = static_cast<int64_t>(classes.size());
  auto confusion = m.confusion.accessor<int64_t, 2>();
  std::cout << "confusion matrix (rows: true class, columns: predicted)\n";
  std::cout << pad_right("", 14);
  for (int64_t j = 0; j < k; ++j) std::cout << std::setw(6) << j;
  std::cout << "  recall\n";
  for (int64_t i = 0; i < k; ++i) {
    int64_t row = 0;
    for (int64_t j = 0; j < k; ++j) row += confusion[i][j];
    std::cout << std::setw(2) << i << " " << pad_right(classes[i], 11);
    for (int64_t j = 0; j < k; ++j) std::cout << std::setw(6) << confusion[i][j];
    std::ostringstream recall;
    recall << std::fixed << std::setprecision(1) << (row ? 100.0 * confusion[i][i] / row : 0.0)
           << "%";
    std::cout << std::setw(8) << recall.str() << "\n";
  }
}

/// Everything `attn eval classifier` is told, with its defaults.
struct EvalClassifierParams {
  std::string model_path;
  std::string data = "fashion-mnist";
  std::string split = "test";
  std::string fashion_dir = vision::kFashionMnistDir;
  std::string plot;  ///< a PNG / JPEG for the confusion matrix; empty = none
  std::string tta = "none";
  std::string precision = "fp32";
  int threads = 0;
  int64_t batch_size = 256;
  bool json = false;
};

po::options_description eval_classifier_options(EvalClassifierParams& p) {
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "model,m", po::value(&p.model_path)->default_value(default_model_path("classifier")),
      "model file")("data", po::value(&p.data)->default_value(p.data),
                    "fashion-mnist, or an image-folder root (root/<class>/*.jpg)")(
      "split", po::value(&p.split)->default_value(p.split), "Fashion-MNIST split: test | train")(
      "fashion-dir", po::value(&p.fashion_dir)->default_value(p.fashion_dir),
      "where the Fashion-MNIST idx files are")(
      "batch-size,b", po::value(&p.batch_size)->default_value(p.batch_size), "images per pass")(
      "tta", po::value(&p.tta)->default_value(p.tta), kTtaHelp)(
      "precision,p", po::value(&p.precision)->default_value(p.precision), kInferencePrecisionHelp)(
      "threads,t", po::value(&p.threads)->default_value(p.threads), kThreadsHelp)(
      "json", po::bool_switch(&p.json), "print the metrics as JSON")(
      "plot", po::value(&p.plot), "also draw the confusion matrix into this PNG / JPEG file");
  add_max_pixels_option(options);
  return options;
}

const char* const kEvalClassifierSummary =
    "Measures a classifier: top-1, top-5, mean cross-entropy and the confusion matrix.\n"
    "Image folders are labelled by sub-directory; their class names must match the\n"
    "model's labels.\n\n"
    "Examples:\n"
    "  attn eval classifier                      (shipped model, Fashion-MNIST test)\n"
    "  attn eval classifier --model runs/fashion/best.safetensors --json --plot cm.png\n"
    "  attn eval classifier --tta flip          (with horizontal-flip averaging)";

/// The labelled images, with the model's class names; nullopt after saying what is wrong, with
/// the exit status in `status`.
std::optional<vision::LabeledImages> load_eval_data(const EvalClassifierParams& p,
                                                    const vision::LoadedViT& loaded, int& status) {
  vision::LabeledImages dataset;
  try {
    dataset = load_classifier_data(p.data, p.split, p.fashion_dir, loaded.info.preprocess, "eval");
    if (p.data != "fashion-mnist") relabel_with_model_labels(dataset, loaded.info.labels, p.data);
  } catch (const vision::Error& e) {
    print_error("eval", e.what());
    status = kExitNoInput;
    return std::nullopt;
  }
  dataset.classes = loaded.info.labels;
  if (dataset.classes.empty()) {
    for (int64_t i = 0; i < loaded.config.num_classes; ++i) {
      dataset.classes.push_back(vision::class_label(loaded.info, i));
    }
  }
  if (static_cast<int64_t>(dataset.classes.size()) != loaded.config.num_classes) {
    print_error("eval", p.model_path + ": the model has " +
                            std::to_string(loaded.config.num_classes) + " classes, the data " +
                            std::to_string(dataset.classes.size()));
    status = kExitBadModel;
    return std::nullopt;
  }
  return dataset;
}

void print_classification_json(const EvalClassifierParams& p,
                               const vision::ClassificationMetrics& metrics,
                               const vision::LabeledImages& dataset, const std::string& precision) {
  const auto confusion = matrix_json<int64_t>(metrics.confusion);
  std::cout << json_text(json{{"model", p.model_path},
                              {"data", p.data},
                              {"split", p.data == "fashion-mnist" ? p.split : ""},
                              {"tta", p.tta},
                              {"precision", precision},
                              {"count", metrics.count},
                              {"top1", metrics.top1},
                              {"top5", metrics.top5},
                              {"loss", metrics.loss},
                              {"classes", dataset.classes},
                              {"confusion", confusion},
                              {"skipped", skipped_json(dataset.skipped)}},
                         2)
            << std::endl;
}

void print_classification_text(const EvalClassifierParams& p,
                               const vision::ClassificationMetrics& metrics,
                               const vision::LabeledImages& dataset) {
  std::cout << std::fixed << std::setprecision(2) << "model: " << p.model_path
            << "\ndata:  " << p.data << (p.data == "fashion-mnist" ? " (" + p.split + ")" : "")
            << ", " << metrics.count << " images" << (p.tta == "none" ? "" : ", tta " + p.tta)
            << "\ntop-1: " << 100 * metrics.top1 << "%\ntop-5: " << 100 * metrics.top5
            << "%\nloss:  " << std::setprecision(4) << metrics.loss << "\n\n";
  print_confusion(metrics, dataset.classes);
  std::cout << skipped_note(dataset.skipped);
}

int run_eval_classifier(int argc, char** argv) {
  EvalClassifierParams p;
  const auto options = eval_classifier_options(p);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "", "attn eval classifier [options]",
                          kEvalClassifierSummary, vm)) {
    return kExitOk;
  }
  const vision::TestTimeAugmentation tta = parse_tta_option(p.tta);
  p.tta = vision::to_string(tta);
  if (p.batch_size < 1) throw UsageError("--batch-size must be at least 1");
  const auto precision = choose_precision_option("eval", p.precision);
  set_threads(p.threads);
  vision::LoadedViT loaded;
  try {
    loaded = vision::load_vit(p.model_path);
    vision::apply_inference_precision(*loaded.model, precision);
  } catch (const vision::Error& e) {
    print_error("eval", e.what());
    return kExitBadModel;
  }
  int status = kExitOk;
  const auto dataset = load_eval_data(p, loaded, status);
  if (!dataset) return status;

  ProgressBar progress("eval", dataset->size());
  int64_t reported = 0;
  const auto metrics = vision::evaluate_classifier(
      loaded.model, *dataset, loaded.info.preprocess, p.batch_size,
      [&](int64_t done) {
        progress.advance(done - reported);
        reported = done;
      },
      tta);
  progress.finish();
  if (!p.plot.empty()) {
    try {
      vision::save_image_rgb(p.plot,
                             vision::draw_confusion_matrix(metrics.confusion, dataset->classes));
    } catch (const vision::Error& e) {
      print_error("eval", e.what());
      return kExitSomeFailed;
    }
  }
  if (p.json) {
    print_classification_json(p, metrics, *dataset, precision.name());
  } else {
    print_classification_text(p, metrics, *dataset);
  }
  return dataset->skipped.empty() ? kExitOk : kExitSomeFailed;
}

/// The faithfulness figures over every word, and over the words that name an object of their
/// image (where the data has object boxes).
struct FaithfulnessFigures {
  vision::CaptionFaithfulnessSummary all, objects;
};

/// Captions `dataset` again and masks each word's picked cells against random ones.
FaithfulnessFigures measure_faithfulness(vision::Captioner& model,
                                         const vision::CaptionData& dataset, int64_t beam,
                                         int64_t max_len, int64_t batch_size,
                                         const vision::CaptionFaithfulnessOptions& options,
                                         const vision::Vocabulary& vocabulary) {
  ProgressBar progress("faithfulness", dataset.size());
  std::vector<std::vector<vision::WordFaithfulness>> words, object_words;
  for (int64_t start = 0; start < dataset.size(); start += batch_size) {
    const int64_t n = std::min(batch_size, dataset.size() - start);
    vision::EncodedImages encoded;
    {
      torch::NoGradGuard no_grad;
      vision::EvalModeGuard eval_mode(*model);
      encoded = model->encode(dataset.images.narrow(0, start, n));
    }
    const auto captions = vision::beam_search(model, encoded, vocabulary, beam, max_len);
    auto batch_options = options;
    batch_options.seed += static_cast<uint64_t>(start);
    auto figures = vision::caption_faithfulness(model, encoded, captions, batch_options);
    for (int64_t b = 0; b < n; ++b) {
      const auto& objects = dataset.records[start + b].objects;
      std::vector<vision::WordFaithfulness> named;
      for (const auto& w : figures[b]) {
        const bool names_object = std::any_of(objects.begin(), objects.end(),
                                              [&](const auto& o) { return o.word == w.word; });
        if (names_object) named.push_back(w);
      }
      object_words.push_back(std::move(named));
      words.push_back(std::move(figures[b]));
    }
    progress.advance(n);
  }
  progress.finish();
  return {vision::summarize_faithfulness(words), vision::summarize_faithfulness(object_words)};
}

json summary_json(const vision::CaptionFaithfulnessSummary& s) {
  return {{"words", s.words},
          {"mean_cells", s.mean_cells},
          {"attended_drop", metric_summary_json(s.attended_drop)},
          {"random_drop", metric_summary_json(s.random_drop)},
          {"difference", metric_summary_json(s.difference)},
          {"attended_wins", s.attended_wins}};
}

json faithfulness_json(const FaithfulnessFigures& f,
                       const vision::CaptionFaithfulnessOptions& options) {
  auto out = summary_json(f.all);
  out["mass"] = options.mass;
  out["random_draws"] = options.random_draws;
  out["object_words"] = summary_json(f.objects);
  return out;
}

void print_summary(const std::string& title, const vision::CaptionFaithfulnessSummary& s) {
  auto interval = [](const vision::MetricSummary& m) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(4) << m.mean << " [" << m.low << ", " << m.high << "]";
    return out.str();
  };
  std::cout << std::fixed << std::setprecision(1) << "  " << title << ": " << s.words << " words, "
            << s.mean_cells << " cells picked on average\n"
            << "    p(word) drop, attended cells masked: " << interval(s.attended_drop)
            << "\n    p(word) drop, as many random cells:  " << interval(s.random_drop)
            << "\n    difference:                          " << interval(s.difference)
            << "\n    words where the attended cells matter more: " << std::setprecision(1)
            << 100 * s.attended_wins << "%\n";
}

void print_faithfulness(const FaithfulnessFigures& f,
                        const vision::CaptionFaithfulnessOptions& options) {
  std::cout << std::fixed << std::setprecision(1) << "faithfulness: masking the cells holding "
            << 100 * options.mass << "% of each word's attention (features -> the image's mean)\n";
  print_summary("every word", f.all);
  if (f.objects.words > 0) print_summary("words naming an object of the image", f.objects);
}

}  // namespace

namespace {

/// Everything `attn eval captioner` is told, with its defaults.
struct EvalCaptionerParams {
  std::string model_path;
  std::string data;    ///< a Karpathy split JSON (required)
  std::string images;  ///< the image root; empty = the JSON's folder
  std::string split = "test";
  std::string precision = "fp32";
  DecodingParams decoding;
  int64_t batch_size = 64;
  int threads = 0;
  bool json = false;
  bool faithfulness = false;
  vision::CaptionFaithfulnessOptions faithfulness_options;
};

po::options_description eval_captioner_options(EvalCaptionerParams& p) {
  auto& f = p.faithfulness_options;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "model,m", po::value(&p.model_path)->default_value(default_model_path("captioner")),
      "captioner model file")("data", po::value(&p.data),
                              "Karpathy split JSON (scenes.json, dataset_coco.json, ...)")(
      "images", po::value(&p.images), "image root (default: the JSON's directory)")(
      "split", po::value(&p.split)->default_value(p.split), "test | val | train")(
      "batch-size,b", po::value(&p.batch_size)->default_value(p.batch_size), "images per pass")(
      "precision,p", po::value(&p.precision)->default_value(p.precision), kInferencePrecisionHelp)(
      "threads,t", po::value(&p.threads)->default_value(p.threads), kThreadsHelp)(
      "json", po::bool_switch(&p.json), "print the metrics as JSON")(
      "faithfulness", po::bool_switch(&p.faithfulness),
      "also measure the word maps: per word, the drop in its probability when the cells its "
      "attention picked are masked (their features replaced by the image's mean), against "
      "masking as many random cells")("faithfulness-mass", po::value(&f.mass)->default_value(0.5),
                                      "the picked cells: the fewest top cells holding this share "
                                      "of the word's attention")(
      "faithfulness-draws", po::value(&f.random_draws)->default_value(4),
      "random cell sets per word, averaged");
  add_decoding_options(options, p.decoding);
  add_max_pixels_option(options);
  return options;
}

const char* const kEvalCaptionerSummary =
    "Captions a split and scores it against all its references: corpus BLEU-1..4 (as\n"
    "NLTK's corpus_bleu), CIDEr-D, and where the data has object boxes the pointing\n"
    "game (is each object word's attention peak inside that object?). --faithfulness asks\n"
    "whether the word maps show where the words came from: masking the cells a word's\n"
    "attention picked should lower its probability more than masking random cells.\n\n"
    "Examples:\n"
    "  attn eval captioner --data data/scenes-test/scenes.json --beam 3 --json\n"
    "  attn eval captioner --data data/scenes-test/scenes.json --faithfulness";

/// The checks that need no file. Throws UsageError.
void check_params(EvalCaptionerParams& p) {
  const auto& f = p.faithfulness_options;
  check_split_json(p.data, p.images);
  if (p.batch_size < 1) throw UsageError("--batch-size must be at least 1");
  check_decoding(p.decoding);
  if (!(f.mass > 0 && f.mass <= 1)) throw UsageError("--faithfulness-mass must be in (0, 1]");
  if (f.random_draws < 1) throw UsageError("--faithfulness-draws must be at least 1");
}

void print_captioning_json(const EvalCaptionerParams& p, const vision::CaptionerEvaluation& result,
                           const vision::CaptionData& dataset, const std::string& precision,
                           double seconds, const std::optional<FaithfulnessFigures>& faithful) {
  json out{{"model", p.model_path},
           {"data", p.data},
           {"split", p.split},
           {"count", dataset.size()},
           {"beam", p.decoding.beam},
           {"precision", precision},
           {"bleu", result.bleu.bleu},
           {"brevity_penalty", result.bleu.brevity_penalty},
           {"cider_d", result.cider},
           {"pointing",
            {{"hits", result.pointing.hits},
             {"total", result.pointing.total},
             {"accuracy", result.pointing.accuracy()}}},
           {"loss", result.loss},
           {"seconds", seconds},
           {"skipped", skipped_json(dataset.skipped)}};
  if (faithful) out["faithfulness"] = faithfulness_json(*faithful, p.faithfulness_options);
  std::cout << json_text(out, 2) << std::endl;
}

void print_captioning_text(const EvalCaptionerParams& p, const vision::CaptionerEvaluation& result,
                           const vision::CaptionData& dataset, double seconds,
                           const std::optional<FaithfulnessFigures>& faithful) {
  std::cout << std::fixed << std::setprecision(4) << "model:    " << p.model_path
            << "\ndata:     " << p.data << " (" << p.split << "), " << dataset.size()
            << " images, beam " << p.decoding.beam << "\nBLEU-1..4: " << result.bleu.bleu[0] << " "
            << result.bleu.bleu[1] << " " << result.bleu.bleu[2] << " " << result.bleu.bleu[3]
            << "\nCIDEr-D:  " << result.cider << "\npointing: " << std::setprecision(1)
            << 100 * result.pointing.accuracy() << "% (" << result.pointing.hits << "/"
            << result.pointing.total << ")\nspeed:    " << dataset.size() / seconds
            << " images/s (decoding and teacher-forced loss)\n";
  if (faithful) print_faithfulness(*faithful, p.faithfulness_options);
  std::cout << skipped_note(dataset.skipped);
}

}  // namespace

int run_eval_captioner(int argc, char** argv) {
  EvalCaptionerParams p;
  const auto options = eval_captioner_options(p);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "",
                          "attn eval captioner --data SPLIT.json [options]", kEvalCaptionerSummary,
                          vm)) {
    return kExitOk;
  }
  check_params(p);
  const auto precision = choose_precision_option("eval", p.precision);
  set_threads(p.threads);
  vision::LoadedCaptioner loaded;
  try {
    loaded = vision::load_captioner(p.model_path);
    vision::apply_inference_precision(*loaded.model, precision);
  } catch (const vision::Error& e) {
    print_error("eval", e.what());
    return kExitBadModel;
  }
  if (const auto error = beam_width_error(p.decoding.beam, loaded.vocabulary.size());
      !error.empty()) {
    throw UsageError(error);
  }
  vision::CaptionData dataset;
  try {
    dataset = vision::load_caption_data(vision::load_karpathy_json(p.data, p.images), {p.split},
                                        loaded.info.preprocess, loaded.vocabulary, p.data);
  } catch (const vision::Error& e) {
    print_error("eval", e.what());
    return kExitNoInput;
  }
  for (const auto& s : dataset.skipped) print_error("eval", s.error + " (skipped)");
  ProgressBar progress("eval", dataset.size());
  int64_t reported = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto result =
      vision::evaluate_captioner(loaded.model, dataset, loaded.vocabulary, p.decoding.beam,
                                 p.decoding.max_len, p.batch_size, [&](int64_t done) {
                                   progress.advance(done - reported);
                                   reported = done;
                                 });
  progress.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::optional<FaithfulnessFigures> faithful;
  if (p.faithfulness) {
    faithful = measure_faithfulness(loaded.model, dataset, p.decoding.beam, p.decoding.max_len,
                                    p.batch_size, p.faithfulness_options, loaded.vocabulary);
  }
  if (p.json) {
    print_captioning_json(p, result, dataset, precision.name(), seconds, faithful);
  } else {
    print_captioning_text(p, result, dataset, seconds, faithful);
  }
  // The metrics cover a subset: exit 1 says so to scripts as well.
  return dataset.skipped.empty() ? kExitOk : kExitSomeFailed;
}

int run_eval(int argc, char** argv) {
  return dispatch_subtask(
      argc, argv, "eval",
      {{"classifier", run_eval_classifier,
        "top-1 / top-5 / confusion matrix on Fashion-MNIST or an image folder"},
       {"captioner", run_eval_captioner,
        "BLEU-1..4, CIDEr-D and the pointing game on a Karpathy split JSON"},
       {"maps", run_eval_maps,
        "how faithful each explanation method is: deletion / insertion, ROAD, sanity checks"}});
}

}  // namespace attnkit::apps
