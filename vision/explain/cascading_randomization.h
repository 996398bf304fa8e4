// vision/explain/cascading_randomization.h: the model-randomisation sanity check of Adebayo et
// al. ("Sanity Checks for Saliency Maps", NeurIPS 2018): re-initialise a ViT's weights from the
// classifier head down, one block at a time, so that a map's dependence on the learned weights
// can be measured.
#pragma once

#include <string>
#include <vector>

#include "vision/models/vit.h"

namespace attnkit::vision {

/// The stages in cascading order: "head" (head, pooling and final norms), then "block D-1" down
/// to "block 0", then "embedding" (patch and position embeddings, prefix tokens).
std::vector<std::string> randomization_stages(const ViTConfig& config);

/// Re-initialises the parameters of stage `stage` (an index into randomization_stages): matrices
/// and embeddings N(0, 0.02^2) (timm's initialisation), biases 0, norm scales 1, LayerScale
/// gammas their initial value. Applying stages 0..k in turn is the cascade.
void randomize_stage(VisionTransformer& model, int64_t stage, uint64_t seed);

/// A deep copy of a model (same config, parameters and buffers copied).
VisionTransformer copy_model(VisionTransformer& model);

}  // namespace attnkit::vision
