// vision/models/captioner.h: Show, Attend and Tell (Xu et al. 2015): a ViT trunk encodes the
// image into a grid of features; an LSTM decoder attends over the grid with the shared
// SpatialAttention (additive, soft or hard) at every word.
#pragma once

#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>
#include <torch/nn/pimpl.h>

#include "attention/spatial_attention.h"
#include "vision/models/captioner_config.h"
#include "vision/models/vit.h"

namespace attnkit::vision {

/// The encoder's grid for a batch of images.
struct EncodedImages {
  torch::Tensor features;  ///< (B, L, D): patch tokens after the final norm, prefix dropped
  int64_t grid_height = 0;
  int64_t grid_width = 0;
};

/// The decoder's recurrent state.
struct DecoderState {
  torch::Tensor h;  ///< (B, n)
  torch::Tensor c;  ///< (B, n)
};

/// One decoding step's output.
struct DecoderStep {
  torch::Tensor logits;                  ///< (B, V)
  attention::AttentionOutput attention;  ///< weights (B, L) used for the context
  DecoderState state;                    ///< after the step
};

/// Teacher-forced decoding of whole captions.
struct CaptionerOutput {
  torch::Tensor logits;         ///< (B, T, V): predictions of words 1..T of the input
  torch::Tensor weights;        ///< (B, T, L): attention used at each step
  torch::Tensor probabilities;  ///< (B, T, L): the attention distributions (for the entropy term)
  torch::Tensor log_probs;      ///< (B, T): log p of sampled cells (hard mode, training)
};

/// Show, Attend and Tell. Parameter names: encoder.* (a VisionTransformer), embed, init_h,
/// init_c, attention.* (SpatialAttention), f_beta, lstm, out_h, out_z, out_word.
class CaptionerImpl : public torch::nn::Module {
 public:
  explicit CaptionerImpl(CaptionerConfig config);

  /// images (B, C, H, W) -> the feature grid.
  EncodedImages encode(const torch::Tensor& images);
  /// The initial state from the mean feature (SAT's f_init).
  DecoderState initial_state(const torch::Tensor& features);
  /// Projects the features once for all steps (the attention's keys).
  attention::AttentionMemory prepare(const torch::Tensor& features);
  /// One word: previous words (B) -> logits over the next word. In hard mode, the images whose
  /// `expected_context` (B, bool; may be undefined) is true use the expected context instead of
  /// the sampled cell (SAT section 4.1: with probability 0.5 per image while training).
  DecoderStep step(const attention::AttentionMemory& memory, const torch::Tensor& previous_words,
                   const DecoderState& state, const torch::Tensor& expected_context = {});
  /// Teacher forcing: captions (B, T + 1) starting with <start> -> predictions for the T words
  /// after it; `expected_context` as for step(), for every step.
  CaptionerOutput forward(const torch::Tensor& features, const torch::Tensor& captions,
                          const torch::Tensor& expected_context = {});

  const CaptionerConfig& config() const { return config_; }

  VisionTransformer encoder{nullptr};
  torch::nn::Embedding embed{nullptr};
  torch::nn::Linear init_h{nullptr}, init_c{nullptr};
  attention::SpatialAttention attention{nullptr};
  torch::nn::Linear f_beta{nullptr};
  torch::nn::LSTMCell lstm{nullptr};
  torch::nn::Linear out_h{nullptr}, out_z{nullptr}, out_word{nullptr};
  torch::nn::Dropout dropout{nullptr};

 private:
  CaptionerConfig config_;
};
TORCH_MODULE(Captioner);

}  // namespace attnkit::vision
