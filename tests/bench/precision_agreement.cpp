// tests/bench/precision_agreement.cpp: measures how closely bf16 and int8 inference follow fp32
// for one model over Fashion-MNIST test images, a folder of photos and generated images: top-1
// agreement, logit differences and rollout-map correlation (the README's precision table).
//
//   precision_agreement MODEL [--fashion N] [--images DIR] [--generated N] [--batch 16]
//                       [--rollout yes|no]
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "vision/checkpoint/model_file.h"
#include "vision/data/fashion_mnist.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"
#include "vision/models/inference_precision.h"
#include "vision/models/precision_agreement.h"

namespace {

using namespace attnkit;

/// Smooth random pictures: 7x7 random colours, bicubically enlarged, as 8-bit pixels; then the
/// model's normalisation. (N, C, H, W).
torch::Tensor generated_images(int64_t count, const vision::ViTConfig& config,
                               const vision::PreprocessConfig& preprocess) {
  torch::manual_seed(7);
  auto coarse = torch::rand({count, config.in_channels, 7, 7});
  auto pixels = torch::nn::functional::interpolate(
                    coarse, torch::nn::functional::InterpolateFuncOptions()
                                .size(std::vector<int64_t>{config.image_height, config.image_width})
                                .mode(torch::kBicubic)
                                .align_corners(false))
                    .mul(255)
                    .clamp(0, 255)
                    .to(torch::kUInt8);
  return vision::normalize_pixels(pixels, preprocess);
}

void report(const std::string& set, vision::LoadedViT& loaded, const torch::Tensor& images,
            int64_t batch, bool rollout) {
  for (const std::string name : {"bf16", "int8"}) {
    const auto precision = vision::choose_inference_precision(name, vision::cpu_features());
    const auto a =
        vision::measure_precision_agreement(loaded.model, images, precision, batch, rollout);
    std::cout << std::left << std::setw(22) << set << std::setw(6) << name << std::right
              << std::setw(7) << a.count << std::fixed << std::setprecision(2) << std::setw(10)
              << 100 * a.top1_agreement << "%" << std::setprecision(4) << std::setw(14)
              << a.max_logit_difference << std::setw(12) << a.mean_logit_difference
              << std::setprecision(2) << std::setw(12) << a.logit_range << std::setprecision(5)
              << std::setw(11) << a.mean_rollout_correlation << std::setw(10)
              << a.min_rollout_correlation << std::setprecision(4) << std::setw(12)
              << a.median_top1_margin << std::setw(12) << a.max_flipped_margin << std::endl;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: precision_agreement MODEL [--fashion N] [--images DIR] [--generated N] "
                 "[--batch B] [--rollout yes|no]\n";
    return 2;
  }
  const std::string model_path = argv[1];
  int64_t fashion = 0, generated = 0, batch = 16;
  bool rollout = true;
  std::string folder;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--fashion")
      fashion = std::stoll(value);
    else if (flag == "--generated")
      generated = std::stoll(value);
    else if (flag == "--images")
      folder = value;
    else if (flag == "--batch")
      batch = std::stoll(value);
    else if (flag == "--rollout")
      rollout = value != "no";
    else {
      std::cerr << "precision_agreement: unknown option " << flag << "\n";
      return 2;
    }
  }
  at::set_num_threads(2);
  auto loaded = attnkit::vision::load_vit(model_path);
  std::cout << "model " << model_path << "; CPU " << attnkit::vision::cpu_features().model << "\n"
            << std::left << std::setw(22) << "images" << std::setw(6) << "prec" << std::right
            << std::setw(7) << "count" << std::setw(11) << "top-1 agr" << std::setw(14)
            << "max |dlogit|" << std::setw(12) << "mean" << std::setw(12) << "logit span"
            << std::setw(11) << "rollout r" << std::setw(10) << "min r" << std::setw(12)
            << "med margin" << std::setw(12) << "max flipped"
            << "\n";
  if (fashion > 0) {
    auto data = attnkit::vision::load_fashion_mnist(attnkit::vision::kFashionMnistDir, "test");
    auto images = attnkit::vision::normalize_pixels(
        data.images.narrow(0, 0, std::min(fashion, data.size())), loaded.info.preprocess);
    report("fashion-mnist test", loaded, images, batch, rollout);
  }
  if (!folder.empty()) {
    std::vector<torch::Tensor> images;
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
      const auto ext = entry.path().extension().string();
      if (ext != ".jpg" && ext != ".png") continue;
      images.push_back(attnkit::vision::preprocess_image(
          attnkit::vision::load_image_rgb(entry.path().string()), loaded.info.preprocess));
    }
    report(folder, loaded, torch::stack(images), batch, rollout);
  }
  if (generated > 0) {
    report("generated", loaded, generated_images(generated, loaded.config, loaded.info.preprocess),
           batch, rollout);
  }
  return 0;
}
