// tests/vision/planted_task.h: the planted-cell task the explanation tests share: class 1 images
// hold one bright 4x4 patch at a random cell of a 4x4 grid, class 0 images are noise only, and a
// small ViT learns it, so the evidence for class 1 sits in exactly one known cell.
#pragma once

#include <torch/torch.h>

#include <utility>

#include "tests/vision/test_support.h"
#include "vision/models/vit.h"

namespace attnkit::testing {

/// n images (n, 3, 16, 16), their labels (n) and each image's planted cell (n, in 0..15; only
/// class 1 images carry it).
struct PlantedBatch {
  torch::Tensor images, labels, cells;
};

inline PlantedBatch planted_batch(int64_t n) {
  PlantedBatch b;
  b.images = 0.1 * torch::randn({n, 3, 16, 16});
  b.labels = torch::randint(0, 2, {n}, torch::kLong);
  b.cells = torch::randint(0, 16, {n}, torch::kLong);
  for (int64_t i = 0; i < n; ++i) {
    if (b.labels[i].item<int64_t>() == 0) continue;
    const int64_t cell = b.cells[i].item<int64_t>();
    b.images[i].narrow(1, cell / 4 * 4, 4).narrow(2, cell % 4 * 4, 4).add_(2.0);
  }
  return b;
}

/// The ViT (4x4 patches on 16x16 images, 2 classes), trained for 300 Adam steps from seed 0 the
/// first time it is asked for, then shared by the tests of this process. Evaluation mode.
inline vision::VisionTransformer& planted_model() {
  static vision::VisionTransformer model = [] {
    torch::manual_seed(0);
    auto config = tiny_vit_config(16, 16, 2);
    config.patch_size = 4;
    config.dim = 32;
    config.num_heads = 2;
    config.mlp_hidden_dim = 64;
    vision::VisionTransformer m(config);
    torch::optim::Adam optimizer(m->parameters(), torch::optim::AdamOptions(3e-3));
    m->train();
    for (int step = 0; step < 300; ++step) {
      const auto batch = planted_batch(64);
      auto loss = torch::nn::functional::cross_entropy(m->forward(batch.images), batch.labels);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    }
    m->eval();
    return m;
  }();
  return model;
}

}  // namespace attnkit::testing
