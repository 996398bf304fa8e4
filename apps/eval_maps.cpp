// apps/eval_maps.cpp: `attn eval maps`: how faithful each explanation method is for a ViT
// classifier: deletion / insertion areas, image-times-map confidence, ROAD, against random maps,
// and the cascading-randomisation sanity check.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/classifier_data.h"
#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/json_output.h"
#include "vision/api/attnkit.h"
#include "vision/checkpoint/model_file.h"
#include "vision/data/fashion_mnist.h"
#include "vision/errors.h"
#include "vision/explain/cascading_randomization.h"
#include "vision/explain/map_evaluation.h"
#include "vision/image/curve_plot.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"

namespace attnkit::apps {
namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;
using nlohmann::json;

/// Everything `attn eval maps` is told, with its defaults.
struct EvalMapsParams {
  std::string model_path, data = "fashion-mnist", split = "test", fashion_dir, plot;
  std::string methods = "cls,rollout,grad-rollout,relevance,gradcam,random";
  std::string target = "auto", baseline = "zero", percentiles = "10,20,30,40,50,60,70,80,90";
  int64_t count = 500, steps = 16, batch_size = 32, sanity_count = 100;
  double blur_sigma = 0;
  uint64_t seed = 0;
  bool sanity = false, as_json = false;
  int threads = 0;
};

/// The metrics in the order printed, with the direction a faithful map moves them.
const std::vector<std::pair<std::string, std::string>> kMetrics = {
    {"deletion_auc", "lower"},
    {"insertion_auc", "higher"},
    {"confidence_change", "higher"},
    {"drop_in_confidence", "lower"},
    {"increase_in_confidence", "higher"},
    {"road_morf", "lower"},
    {"road_lerf", "higher"},
    {"road_combined", "higher"}};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool parse_eval_maps(int argc, char** argv, EvalMapsParams& p) {
  p.model_path = default_model_path("classifier");
  p.fashion_dir = vision::kFashionMnistDir;
  po::options_description options("Options");
  // One option a line, as in the other commands.
  // clang-format off
  options.add_options()
      ("help,h", "show this help")
      ("model,m", po::value(&p.model_path)->default_value(p.model_path), "ViT model file")
      ("data", po::value(&p.data)->default_value(p.data),
       "fashion-mnist; an image-folder root (root/<class>/*.jpg: the labels are the targets); "
       "or a folder of photos (images directly inside: the model's top-1 is the target)")
      ("split", po::value(&p.split)->default_value(p.split), "Fashion-MNIST split: test | train")
      ("fashion-dir", po::value(&p.fashion_dir)->default_value(p.fashion_dir),
       "where the Fashion-MNIST idx files are")
      ("count,n", po::value(&p.count)->default_value(p.count),
       "images to evaluate, a seeded random subset (0 = all)")
      ("methods", po::value(&p.methods)->default_value(p.methods),
       "comma-separated: cls, rollout, grad-rollout, relevance, gradcam, pool, random (uniform "
       "random cells: the baseline every method must beat, added when not named)")
      ("target", po::value(&p.target)->default_value(p.target),
       "the class explained: label | top1 | auto (the label where the data has one)")
      ("steps", po::value(&p.steps)->default_value(p.steps),
       "points on the deletion and insertion curves (0 = one per patch)")
      ("baseline", po::value(&p.baseline)->default_value(p.baseline),
       "what removed patches become: blur (RISE's substrate) | mean (the image's) | zero (the "
       "normalisation mean's colour)")
      ("blur-sigma", po::value(&p.blur_sigma)->default_value(p.blur_sigma),
       "blur's sigma in input pixels (0 = 5 px per 224 px, RISE's)")
      ("road-percentiles", po::value(&p.percentiles)->default_value(p.percentiles),
       "ROAD's percentiles (pytorch-grad-cam's); 'none' skips ROAD, the slowest metric")
      ("sanity", po::bool_switch(&p.sanity),
       "also run the cascading-randomisation sanity check (Adebayo et al. 2018)")
      ("sanity-count", po::value(&p.sanity_count)->default_value(p.sanity_count),
       "images the sanity check uses (the first of the subset)")
      ("seed", po::value(&p.seed)->default_value(p.seed), "subset, random maps, ROAD noise")
      ("batch-size,b", po::value(&p.batch_size)->default_value(p.batch_size),
       "images per step; a curve's steps run as one batch")
      ("threads,t", po::value(&p.threads)->default_value(0), kThreadsHelp)
      ("json", po::bool_switch(&p.as_json), "print the results as JSON")
      ("plot", po::value(&p.plot), "draw the mean deletion and insertion curves into this PNG");
  // clang-format on
  add_max_pixels_option(options);
  po::variables_map vm;
  return parse_command_line(
      argc, argv, options, "", "attn eval maps [options]",
      "Measures how faithful each explanation method is to the model, with perturbation\n"
      "metrics over a set of images, against random maps:\n"
      "  deletion / insertion area  remove (reveal) patches in the map's order and follow the\n"
      "                             target's probability (Petsiuk et al. 2018, RISE)\n"
      "  confidence change, drop, increase  the image multiplied by the map, as pytorch-grad-cam\n"
      "  ROAD MoRF / LeRF / combined  remove the most (least) relevant pixels, filled by noisy\n"
      "                             linear imputation (Rong et al. 2022), as pytorch-grad-cam\n"
      "Each figure is a mean over the images with its 95% interval. --sanity re-randomises the\n"
      "model from the head down and reports how much each method's maps change (Spearman's rho\n"
      "with the trained model's maps): a map that survives is not explaining the model.\n\n"
      "Examples:\n"
      "  attn eval maps --count 200 --plot curves.png\n"
      "  attn eval maps --methods relevance,grad-rollout,random --sanity --json\n"
      "  attn eval maps --model vit-b16.safetensors --data photos/ --count 50 --steps 14",
      vm);
}

/// The images, with their labels where the data has them (undefined for a photo folder).
struct EvalImages {
  torch::Tensor pixels;  ///< (N, C, H, W) uint8, resized and cropped
  torch::Tensor labels;  ///< (N) or undefined
  std::vector<vision::SkippedFile> skipped;
};

bool is_photo_folder(const std::string& data) {
  std::error_code ec;
  if (data == "fashion-mnist" || !fs::is_directory(data, ec)) return false;
  for (const auto& entry : fs::directory_iterator(data, ec)) {
    if (entry.is_directory() && entry.path().filename().string()[0] != '.') return false;
  }
  return true;
}

/// The seeded random `count` of `total` indices, in order (all of them for count 0).
torch::Tensor choose_subset(int64_t total, int64_t count, uint64_t seed) {
  if (count <= 0 || count >= total) return torch::arange(total, torch::kLong);
  auto generator = at::detail::createCPUGenerator(seed);
  return std::get<0>(torch::randperm(total, generator, torch::kLong).narrow(0, 0, count).sort());
}

/// A folder of photos: the subset is chosen from the paths, so only it is read.
EvalImages load_photos(const EvalMapsParams& p, const vision::LoadedViT& loaded) {
  EvalImages out;
  const auto items = expand_inputs({p.data});
  const auto chosen = choose_subset(static_cast<int64_t>(items.size()), p.count, p.seed);
  std::vector<torch::Tensor> pixels;
  for (int64_t i = 0; i < chosen.size(0); ++i) {
    const auto& item = items[static_cast<size_t>(chosen[i].item<int64_t>())];
    try {
      if (!item.error.empty()) throw vision::ImageError(item.error);
      pixels.push_back(
          vision::resize_crop_image(vision::load_image_rgb(item.path), loaded.info.preprocess));
    } catch (const vision::Error& e) {
      print_error("eval", std::string(e.what()) + " (skipped)");
      out.skipped.push_back({item.path, e.what()});
    }
  }
  if (pixels.empty()) throw vision::DataError(p.data + ": no readable images");
  out.pixels = torch::stack(pixels);
  return out;
}

EvalImages load_eval_images(const EvalMapsParams& p, const vision::LoadedViT& loaded) {
  if (is_photo_folder(p.data)) return load_photos(p, loaded);
  auto dataset =
      load_classifier_data(p.data, p.split, p.fashion_dir, loaded.info.preprocess, "eval");
  if (p.data != "fashion-mnist") relabel_with_model_labels(dataset, loaded.info.labels, p.data);
  const auto chosen = dataset.subset(choose_subset(dataset.size(), p.count, p.seed));
  return {chosen.images, chosen.labels, dataset.skipped};
}

/// "10,20,..." -> numbers in [0, 100]; "none" -> empty.
std::vector<double> parse_percentiles(const std::string& text) {
  if (text == "none") return {};
  std::vector<double> out;
  for (const auto& item : split_list(text)) {
    size_t used = 0;
    double value = 0;
    try {
      value = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || !(value >= 0 && value <= 100)) {
      throw UsageError("--road-percentiles: '" + item + "' is not a number in [0, 100]");
    }
    out.push_back(value);
  }
  if (out.empty()) throw UsageError("--road-percentiles: give numbers, or none");
  return out;
}

std::vector<vision::EvaluatedMethod> parse_methods(const std::string& text,
                                                   const vision::ViTConfig& config) {
  std::vector<vision::EvaluatedMethod> methods;
  for (const auto& name : split_list(text)) {
    try {
      methods.push_back(vision::evaluated_method_from_string(name));
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--methods: ") + e.what());
    }
    if (name == "pool" && config.pooling != vision::Pooling::kMap) {
      throw UsageError("--methods: pool needs a model with an attention-pool (map) head");
    }
  }
  if (methods.empty()) throw UsageError("--methods: name at least one method");
  // Every figure is read against random maps, so the baseline is always there.
  const bool has_random =
      std::any_of(methods.begin(), methods.end(), [](const auto& m) { return m.random; });
  if (!has_random) methods.push_back(vision::evaluated_method_from_string("random"));
  return methods;
}

/// The classes explained for a batch: the labels, or the model's top-1.
torch::Tensor batch_targets(const EvalMapsParams& p, const EvalImages& data, int64_t start,
                            const torch::Tensor& input, vision::MapEvaluator& evaluator) {
  const bool use_labels = p.target == "label" || (p.target == "auto" && data.labels.defined());
  if (use_labels) return data.labels.narrow(0, start, input.size(0));
  return evaluator.probability_fn()(input).argmax(1);
}

std::string cell_text(const vision::MetricSummary& s) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3) << s.mean << " ±" << (s.high - s.mean);
  return out.str();
}

void print_table(const vision::MapEvaluator& evaluator, const EvalMapsParams& p) {
  const auto& methods = evaluator.methods();
  std::cout << "model: " << p.model_path << "\ndata:  " << p.data
            << (p.data == "fashion-mnist" ? " (" + p.split + ")" : "") << ", " << evaluator.count()
            << " images, baseline " << p.baseline << ", " << evaluator.fractions().size(0) - 1
            << " steps\n"
            << "mean ±95% interval over the images; the arrow says which way is more faithful\n\n"
            << pad_right("metric", 28);
  for (const auto& m : methods) std::cout << pad_right(m.name, 16);
  std::cout << "\n";
  for (const auto& [metric, direction] : kMetrics) {
    if (evaluator.results().front().per_image.count(metric) == 0) continue;
    std::cout << pad_right(metric + (direction == "lower" ? " (v)" : " (^)"), 28);
    for (const auto& r : evaluator.results()) {
      std::cout << pad_right(cell_text(vision::summarize(r.per_image.at(metric))), 16);
    }
    std::cout << "\n";
  }
  std::cout << pad_right("ms / image (map, metrics)", 28);
  for (const auto& r : evaluator.results()) {
    std::ostringstream t;
    t << std::fixed << std::setprecision(1) << 1e3 * r.map_seconds / evaluator.count() << ", "
      << 1e3 * r.metric_seconds / evaluator.count();
    std::cout << pad_right(t.str(), 16);
  }
  std::cout << "\n";
}

void print_sanity(const vision::SanityResults& s) {
  std::cout << "\nsanity check: Spearman's rho between the trained model's maps and the maps\n"
               "after re-randomising from the head down to each stage (1 = unchanged)\n"
            << pad_right("randomised down to", 28);
  for (const auto& m : s.methods) std::cout << pad_right(m, 16);
  std::cout << "\n";
  for (size_t stage = 0; stage < s.stages.size(); ++stage) {
    std::cout << pad_right(s.stages[stage], 28);
    for (size_t m = 0; m < s.methods.size(); ++m) {
      std::ostringstream t;
      t << std::fixed << std::setprecision(3) << s.correlation[stage][m];
      std::cout << pad_right(t.str(), 16);
    }
    std::cout << "\n";
  }
}

std::vector<double> to_vector(const torch::Tensor& t) {
  const auto v = t.to(torch::kDouble).contiguous();
  return {v.data_ptr<double>(), v.data_ptr<double>() + v.numel()};
}

json results_json(const vision::MapEvaluator& evaluator, const EvalMapsParams& p,
                  const EvalImages& data, const vision::SanityResults* sanity) {
  json methods = json::array();
  for (size_t m = 0; m < evaluator.methods().size(); ++m) {
    const auto& r = evaluator.results()[m];
    json metrics = json::object();
    for (const auto& [metric, values] : r.per_image) {
      metrics[metric] = metric_summary_json(vision::summarize(values));
    }
    const double n = static_cast<double>(evaluator.count());
    methods.push_back({{"name", evaluator.methods()[m].name},
                       {"metrics", metrics},
                       {"deletion_curve", to_vector(r.deletion_curve_sum / n)},
                       {"insertion_curve", to_vector(r.insertion_curve_sum / n)},
                       {"map_ms_per_image", 1e3 * r.map_seconds / n},
                       {"metric_ms_per_image", 1e3 * r.metric_seconds / n}});
  }
  json skipped = json::array();
  for (const auto& s : data.skipped) skipped.push_back({{"path", s.path}, {"error", s.error}});
  json out = {{"model", p.model_path},
              {"data", p.data},
              {"split", p.data == "fashion-mnist" ? p.split : ""},
              {"count", evaluator.count()},
              {"baseline", p.baseline},
              {"road_percentiles", parse_percentiles(p.percentiles)},
              {"fractions", to_vector(evaluator.fractions())},
              {"methods", methods},
              {"skipped", skipped}};
  if (sanity) {
    out["sanity"] = {{"stages", sanity->stages},
                     {"methods", sanity->methods},
                     {"correlation", sanity->correlation},
                     {"spread", sanity->spread}};
  }
  return out;
}

void save_plot(const vision::MapEvaluator& evaluator, const std::string& path) {
  vision::PlotPanel deletion{
      "Deletion (lower area: more faithful)", "share of patches removed", "p(target)", {}};
  vision::PlotPanel insertion{
      "Insertion (higher area: more faithful)", "share of patches revealed", "p(target)", {}};
  const auto x = to_vector(evaluator.fractions());
  const double n = static_cast<double>(evaluator.count());
  for (size_t m = 0; m < evaluator.methods().size(); ++m) {
    const auto& r = evaluator.results()[m];
    const auto& name = evaluator.methods()[m].name;
    deletion.curves.push_back({name, x, to_vector(r.deletion_curve_sum / n)});
    insertion.curves.push_back({name, x, to_vector(r.insertion_curve_sum / n)});
  }
  vision::save_image_rgb(path, vision::draw_curve_panels({deletion, insertion}));
}

/// Checks the numbers and names parse_eval_maps left as text; the metrics' options.
vision::MapEvaluationOptions evaluation_options(const EvalMapsParams& p) {
  if (p.count < 0 || p.steps < 0) throw UsageError("--count and --steps must be >= 0");
  if (p.batch_size < 1 || p.sanity_count < 1) {
    throw UsageError("--batch-size and --sanity-count must be at least 1");
  }
  if (p.target != "auto" && p.target != "label" && p.target != "top1") {
    throw UsageError("--target must be label, top1 or auto, got '" + p.target + "'");
  }
  if (!(p.blur_sigma >= 0 && p.blur_sigma < 1e4)) throw UsageError("--blur-sigma must be >= 0");
  // Said now, not after the run.
  if (!p.plot.empty() && !vision::has_writable_image_extension(p.plot)) {
    throw UsageError("--plot " + p.plot + ": name a .png, .jpg, .webp or .bmp file");
  }
  vision::MapEvaluationOptions options;
  try {
    options.curves.baseline = vision::removal_baseline_from_string(p.baseline);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--baseline: ") + e.what());
  }
  options.road_options.percentiles = parse_percentiles(p.percentiles);
  options.road = !options.road_options.percentiles.empty();
  options.curves.steps = p.steps;
  options.curves.blur_sigma = p.blur_sigma;
  // Perturbed copies are scored in larger batches than the maps are computed in.
  options.curves.batch_size = options.road_options.batch_size = 4 * p.batch_size;
  options.seed = options.road_options.seed = p.seed;
  return options;
}

/// The cascade on the first --sanity-count images, with its own progress bar.
vision::SanityResults run_sanity(const EvalMapsParams& p, vision::LoadedViT& loaded,
                                 const std::vector<vision::EvaluatedMethod>& methods,
                                 const EvalImages& data, vision::MapEvaluator& evaluator) {
  const int64_t n = std::min(p.sanity_count, data.pixels.size(0));
  const auto input = vision::normalize_pixels(data.pixels.narrow(0, 0, n), loaded.info.preprocess);
  const auto targets = batch_targets(p, data, 0, input, evaluator);
  ProgressBar bar("sanity",
                  static_cast<int64_t>(vision::randomization_stages(loaded.config).size()));
  auto result = vision::sanity_check(loaded.model, methods, input, targets, p.seed, p.batch_size,
                                     [&](int64_t, int64_t) { bar.advance(1); });
  bar.finish();
  return result;
}

/// The table or JSON, then the plot (a plot that cannot be written loses no figures);
/// kExitSomeFailed when files were skipped or the plot failed.
int report(const EvalMapsParams& p, const vision::MapEvaluator& evaluator, const EvalImages& data,
           const vision::SanityResults* sanity) {
  if (p.as_json) {
    std::cout << json_text(results_json(evaluator, p, data, sanity), 2) << std::endl;
  } else {
    print_table(evaluator, p);
    if (sanity) print_sanity(*sanity);
  }
  if (!p.plot.empty()) {
    try {
      save_plot(evaluator, p.plot);
    } catch (const vision::Error& e) {
      print_error("eval", e.what());
      return kExitSomeFailed;
    }
  }
  return data.skipped.empty() ? kExitOk : kExitSomeFailed;
}

}  // namespace

int run_eval_maps(int argc, char** argv) {
  EvalMapsParams p;
  if (!parse_eval_maps(argc, argv, p)) return kExitOk;
  const auto options = evaluation_options(p);
  set_threads(p.threads);
  vision::LoadedViT loaded;
  try {
    loaded = vision::load_vit(p.model_path);
  } catch (const vision::Error& e) {
    print_error("eval", e.what());
    return kExitBadModel;
  }
  if (loaded.config.num_classes == 0) {
    print_error("eval", p.model_path + " has no classifier head: there is nothing to explain");
    return kExitBadModel;
  }
  const auto methods = parse_methods(p.methods, loaded.config);
  EvalImages data;
  try {
    data = load_eval_images(p, loaded);
  } catch (const vision::Error& e) {
    print_error("eval", e.what());
    return kExitNoInput;
  }
  if (p.target == "label" && !data.labels.defined()) {
    throw UsageError("--target label: " + p.data + " is a folder of photos without labels");
  }
  loaded.model->eval();
  vision::MapEvaluator evaluator(loaded.model, methods, options);
  const int64_t total = data.pixels.size(0);
  ProgressBar progress("eval maps", total);
  for (int64_t start = 0; start < total; start += p.batch_size) {
    const int64_t n = std::min(p.batch_size, total - start);
    const auto input =
        vision::normalize_pixels(data.pixels.narrow(0, start, n), loaded.info.preprocess);
    evaluator.add(input, batch_targets(p, data, start, input, evaluator));
    progress.advance(n);
  }
  progress.finish();
  std::unique_ptr<vision::SanityResults> sanity;
  if (p.sanity) {
    sanity =
        std::make_unique<vision::SanityResults>(run_sanity(p, loaded, methods, data, evaluator));
  }
  return report(p, evaluator, data, sanity.get());
}

}  // namespace attnkit::apps
