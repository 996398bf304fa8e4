// attention/spatial_attention.h: one query attending over L grid cells, soft or hard. The one
// module shared by the Show-Attend-Tell captioner (additive scoring, SAT eq. 4-6) and the ViT
// attention-pool head (multi-head scaled dot product, timm's AttentionPoolLatent).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

namespace attnkit::attention {

/// How a cell is scored against the query.
enum class AttentionScore {
  kAdditive,    ///< e_i = w^T tanh(W_f f_i + W_q q)            (Bahdanau; SAT eq. 4)
  kDotProduct,  ///< e_hi = (W_q q)_h . (W_k f_i)_h / sqrt(D/H)  per head h, values W_v f_i
};

/// How the weights select the context.
enum class AttentionMode {
  kSoft,  ///< context = sum_i alpha_i f_i (the expectation)
  kHard,  ///< one cell: sampled from alpha while training, argmax at inference (SAT §4.1)
};

struct SpatialAttentionOptions {
  SpatialAttentionOptions(int64_t feature_dim, int64_t query_dim)
      : feature_dim_(feature_dim), query_dim_(query_dim) {}
  TORCH_ARG(int64_t, feature_dim);  ///< D: channels per grid cell
  TORCH_ARG(int64_t, query_dim);    ///< Q: LSTM hidden size, or the pooling latent's width
  TORCH_ARG(AttentionScore, score) = AttentionScore::kAdditive;
  TORCH_ARG(AttentionMode, mode) = AttentionMode::kSoft;
  /// Additive: width of the scoring MLP (0 = feature_dim).
  TORCH_ARG(int64_t, hidden_dim) = 0;
  /// Dot product: number of heads H (D divisible by H).
  TORCH_ARG(int64_t, num_heads) = 1;
  /// Dot product: biases on the q and kv projections.
  TORCH_ARG(bool, qkv_bias) = true;
  /// Dot product: LayerNorm on each head's q and k (timm `qk_norm`).
  TORCH_ARG(bool, qk_norm) = false;
  TORCH_ARG(double, norm_eps) = 1e-6;
};

/// What one attention step returns.
struct AttentionOutput {
  torch::Tensor context;   ///< (B, D): additive: a mix of the features; dot product: of the values
  torch::Tensor weights;   ///< (B, L): rows sum to 1 (soft) or one-hot (hard, one head);
                           ///< with H > 1 heads the mean over heads
  torch::Tensor log_prob;  ///< (B): log p(sampled cells), hard mode while training; else undefined
  torch::Tensor head_weights;  ///< (B, H, L): per head (H = 1 for additive scoring)
  /// (B, L): the softmax distribution the weights come from (mean over heads); equals `weights`
  /// in soft mode. Hard attention needs it for the entropy term and the expected context.
  torch::Tensor probabilities;
};

/// The features projected once per image, reused at every query (every decoding step).
struct AttentionMemory {
  torch::Tensor features;  ///< (B, L, D) as given
  torch::Tensor keys;      ///< additive: W_f f (B, L, A); dot product: (B, H, L, D/H)
  torch::Tensor values;    ///< additive: the features (B, L, D); dot product: (B, H, L, D/H)
  torch::Tensor mask;      ///< (B, L) bool, true where a cell is real, or undefined
  /// g: how many consecutive query rows share each item's features. Beam search asks g = k
  /// hypotheses per image of one copy of its features, so queries are (B * g, Q) and every
  /// output of attend() has B * g rows.
  int64_t queries_per_item = 1;
};

/// Scores every grid cell against a query and returns the attended context.
/// Submodules: additive `feature_proj`, `query_proj`, `score`; dot product `q`, `kv` (fused,
/// keys then values, as timm's AttentionPoolLatent stores them), `q_norm`, `k_norm`.
class SpatialAttentionImpl : public torch::nn::Module {
 public:
  explicit SpatialAttentionImpl(SpatialAttentionOptions options);
  void reset();

  /// features (B, L, D), query (B, Q), optional mask (B, L) bool (true = real cell; every row
  /// needs one) -> context (B, D), weights (B, L), log_prob (B).
  AttentionOutput forward(const torch::Tensor& features, const torch::Tensor& query,
                          const torch::Tensor& mask = {});

  /// Projects the features once (B, L, D) for many attend() calls.
  AttentionMemory prepare(const torch::Tensor& features, const torch::Tensor& mask = {});
  /// One query per row (B * g, Q) against prepared features (g = memory.queries_per_item).
  AttentionOutput attend(const AttentionMemory& memory, const torch::Tensor& query);

  SpatialAttentionOptions options;
  // Additive scoring.
  torch::nn::Linear feature_proj{nullptr};
  torch::nn::Linear query_proj{nullptr};
  torch::nn::Linear score{nullptr};
  // Dot-product scoring.
  torch::nn::Linear q{nullptr};
  torch::nn::Linear kv{nullptr};
  torch::nn::LayerNorm q_norm{nullptr};
  torch::nn::LayerNorm k_norm{nullptr};

 private:
  /// Turns scores (B * g, H, L) into weights, context and log-probabilities per the mode.
  AttentionOutput select(torch::Tensor scores, const AttentionMemory& memory);
  /// Additive scores w^T tanh(keys + q) + b (B, g, L) for projected queries (B, g, A), one item
  /// at a time across the threads: the (g, L, A) hidden layer stays in cache instead of a
  /// (B * g, L, A) tensor going through memory three times. Inference only (no autograd).
  torch::Tensor additive_scores_by_item(const torch::Tensor& keys, const torch::Tensor& queries);
};
TORCH_MODULE(SpatialAttention);

}  // namespace attnkit::attention
