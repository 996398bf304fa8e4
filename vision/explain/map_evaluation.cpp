// vision/explain/map_evaluation.cpp: the methods x metrics evaluation and the sanity check.
#include "vision/explain/map_evaluation.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <stdexcept>

#include "vision/explain/cascading_randomization.h"
#include "vision/explain/confidence_change.h"
#include "vision/explain/rank_correlation.h"

namespace attnkit::vision {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void append(std::vector<double>& out, const torch::Tensor& values) {
  const auto v = values.to(torch::kDouble).contiguous();
  out.insert(out.end(), v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
}

}  // namespace

EvaluatedMethod evaluated_method_from_string(const std::string& name) {
  EvaluatedMethod method;
  method.name = name;
  if (name == "random") {
    method.random = true;
    return method;
  }
  try {
    method.explain.method = map_method_from_string(name);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("unknown map method '" + name +
                                "' (cls, rollout, grad-rollout, relevance, gradcam, pool or "
                                "random)");
  }
  return method;
}

torch::Tensor method_maps(VisionTransformer& model, const EvaluatedMethod& method,
                          const torch::Tensor& images, const torch::Tensor& targets,
                          uint64_t generator_seed) {
  const int64_t patch = model->config().patch_size;
  if (method.random) {
    auto generator = at::detail::createCPUGenerator(generator_seed);
    return torch::rand({images.size(0), images.size(2) / patch, images.size(3) / patch}, generator,
                       torch::kFloat);
  }
  auto options = method.explain;
  options.target_classes = targets;
  const auto explained = explain_vit(model, images, options);
  TORCH_CHECK(explained.maps.size(1) == 1, "method_maps: ", method.name, " gave ",
              explained.maps.size(1), " maps per image; evaluate one map per image");
  return explained.maps.select(1, 0);
}

MapEvaluator::MapEvaluator(VisionTransformer model, std::vector<EvaluatedMethod> methods,
                           MapEvaluationOptions options)
    : model_(std::move(model)),
      methods_(std::move(methods)),
      options_(std::move(options)),
      results_(methods_.size()) {}

ProbabilityFn MapEvaluator::probability_fn() {
  auto model = model_;
  return [model](const torch::Tensor& images) mutable {
    torch::NoGradGuard no_grad;
    model->eval();
    return torch::softmax(model->forward(images).to(torch::kFloat), 1);
  };
}

void MapEvaluator::add(const torch::Tensor& images, const torch::Tensor& targets) {
  const auto probabilities = probability_fn();
  const auto input = images.to(torch::kFloat);
  // The unperturbed probabilities are the same for every method and metric: scored once.
  const auto before =
      target_probabilities(probabilities, input, targets, options_.curves.batch_size);
  for (size_t m = 0; m < methods_.size(); ++m) {
    auto& r = results_[m];
    auto start = std::chrono::steady_clock::now();
    const auto maps = method_maps(model_, methods_[m], input, targets,
                                  options_.seed + static_cast<uint64_t>(count_));
    r.map_seconds += seconds_since(start);
    start = std::chrono::steady_clock::now();
    const auto curves = deletion_insertion(probabilities, input, maps, targets, options_.curves);
    fractions_ = curves.fractions;
    append(r.per_image["deletion_auc"], curve_area(curves.deletion, curves.fractions));
    append(r.per_image["insertion_auc"], curve_area(curves.insertion, curves.fractions));
    const auto deletion_sum = curves.deletion.sum(0), insertion_sum = curves.insertion.sum(0);
    r.deletion_curve_sum =
        r.deletion_curve_sum.defined() ? r.deletion_curve_sum + deletion_sum : deletion_sum;
    r.insertion_curve_sum =
        r.insertion_curve_sum.defined() ? r.insertion_curve_sum + insertion_sum : insertion_sum;
    if (options_.confidence) {
      const auto change = confidence_change(probabilities, input, maps, targets,
                                            options_.curves.batch_size, before);
      append(r.per_image["confidence_change"], change.change());
      append(r.per_image["drop_in_confidence"], change.drop());
      append(r.per_image["increase_in_confidence"], change.increase());
    }
    if (options_.road) {
      auto road_options = options_.road_options;
      road_options.seed += static_cast<uint64_t>(count_);
      const auto scores = road(probabilities, input, maps, targets, road_options, before);
      append(r.per_image["road_morf"], scores.most_relevant_first.mean(1));
      append(r.per_image["road_lerf"], scores.least_relevant_first.mean(1));
      append(r.per_image["road_combined"], scores.combined());
    }
    r.metric_seconds += seconds_since(start);
  }
  count_ += images.size(0);
}

SanityResults sanity_check(VisionTransformer& model, const std::vector<EvaluatedMethod>& methods,
                           const torch::Tensor& images, const torch::Tensor& targets, uint64_t seed,
                           int64_t batch_size,
                           const std::function<void(int64_t, int64_t)>& progress) {
  TORCH_CHECK(batch_size > 0, "sanity_check: batch size must be positive, got ", batch_size);
  SanityResults out;
  out.stages = randomization_stages(model->config());
  std::vector<EvaluatedMethod> checked;
  for (const auto& m : methods) {
    if (m.random) continue;
    checked.push_back(m);
    out.methods.push_back(m.name);
  }
  auto maps_of = [&](VisionTransformer& net, const EvaluatedMethod& method) {
    std::vector<torch::Tensor> parts;
    for (int64_t start = 0; start < images.size(0); start += batch_size) {
      const int64_t n = std::min(batch_size, images.size(0) - start);
      parts.push_back(method_maps(net, method, images.narrow(0, start, n).to(torch::kFloat),
                                  targets.narrow(0, start, n), seed));
    }
    return torch::cat(parts);
  };
  std::vector<torch::Tensor> trained;
  for (const auto& m : checked) trained.push_back(maps_of(model, m));
  auto randomized = copy_model(model);
  randomized->eval();
  const auto total = static_cast<int64_t>(out.stages.size());
  for (int64_t stage = 0; stage < total; ++stage) {
    randomize_stage(randomized, stage, seed + static_cast<uint64_t>(stage));
    std::vector<double> means, spreads;
    for (size_t m = 0; m < checked.size(); ++m) {
      const auto rho = spearman_correlation(trained[m], maps_of(randomized, checked[m]));
      means.push_back(rho.mean().item<double>());
      spreads.push_back(rho.numel() > 1 ? rho.std().item<double>() : 0.0);
    }
    out.correlation.push_back(means);
    out.spread.push_back(spreads);
    if (progress) progress(stage + 1, total);
  }
  return out;
}

}  // namespace attnkit::vision
