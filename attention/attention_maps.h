// attention/attention_maps.h: explanation maps from a transformer's attention weights: the
// class-token attention of one layer, one patch's attention (a layer's or rolled out), attention
// rollout (Abnar and Zuidema 2020), gradient-weighted rollout, relevance propagation (Chefer, Gur
// and Wolf 2021) and Grad-CAM on the token grid, each as a (gh, gw) grid for any grid shape.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

namespace attnkit::attention {

/// How the heads of one layer become one matrix.
enum class HeadFusion { kMean, kMax, kMin };

/// "mean" | "max" | "min"; throws std::invalid_argument naming the choices.
HeadFusion head_fusion_from_string(const std::string& name);

/// Where things sit in the token sequence of length N: an optional class token, other prefix
/// tokens (distillation, registers) that the maps leave out, and the gh x gw patch tokens.
struct TokenLayout {
  int64_t class_index = -1;  ///< the class token's position, -1 when the model has none
  int64_t grid_start = 0;    ///< position of the first patch token
  int64_t grid_height = 0;
  int64_t grid_width = 0;
  /// Read the maps out at the mean of the patch rows even though there is a class token: for
  /// models that average-pool the patches (MAE fine-tunes) and never read the class token.
  bool mean_readout = false;
};

/// Keeps the class token (if any) and the patch tokens, dropping the rows and columns of
/// registers and distillation tokens, and renormalises each row to sum to 1.
/// (B, H, N, N) -> (B, H, N', N') with N' = [1 +] gh * gw; the class token, if any, first.
torch::Tensor keep_explained_tokens(const torch::Tensor& attention, const TokenLayout& layout);

/// Fuses heads: (B, H, N, N) -> (B, N, N).
torch::Tensor fuse_heads(const torch::Tensor& attention, HeadFusion fusion);

/// What one layer's class token attends to among the patches. Without a class token (mean
/// pooling) it is the attention each patch receives, averaged over the patch queries: what the
/// pooled feature reads. `head` >= 0 picks one head instead of fusing.
/// attention (B, H, N, N) -> (B, gh, gw).
torch::Tensor class_token_map(const torch::Tensor& attention, const TokenLayout& layout,
                              HeadFusion fusion, int64_t head = -1);

/// Attention rollout: per layer A = 0.5 W + 0.5 I with rows renormalised, multiplied over the
/// layers, read out at the class token (or averaged over the patch rows without one). With
/// `discard_ratio` r > 0 the lowest r of each fused matrix's entries are zeroed first, except the
/// class token's attention to itself (as in Gildenblat's vit-explain). attentions: one
/// (B, H, N, N) per layer -> (B, gh, gw).
torch::Tensor attention_rollout(const std::vector<torch::Tensor>& attentions,
                                const TokenLayout& layout, HeadFusion fusion,
                                double discard_ratio = 0.0);

/// The rolled-out matrix attention_rollout reads its map from: per layer the fused (and
/// discarded) attention on the explained tokens, 0.5 W + 0.5 I with rows renormalised,
/// multiplied over the layers. attentions: one (B, H, N, N) per layer -> (B, N', N'), the class
/// token (if any) first.
torch::Tensor rollout_matrix(const std::vector<torch::Tensor>& attentions,
                             const TokenLayout& layout, HeadFusion fusion,
                             double discard_ratio = 0.0);

/// A patch of the grid: row and column, from the top left.
struct GridCell {
  int64_t row = 0;
  int64_t col = 0;
};

/// The row (and column) of cell (row, col) in the explained tokens' matrix
/// (keep_explained_tokens, rollout_matrix). Throws std::out_of_range for a cell off the grid.
int64_t explained_cell_index(const TokenLayout& layout, int64_t row, int64_t col);

/// A patch token's row of an explained-token matrix (B, N', N') over the patches: what that
/// patch attends to. `cells`: one for every image, or one per image (B). -> (B, gh, gw).
torch::Tensor patch_row(const torch::Tensor& matrix, const TokenLayout& layout,
                        const std::vector<GridCell>& cells);

/// Patch attention: what the token of `cells` attends to in one layer, among the patches; one
/// head (`head` >= 0) or the heads fused. attention (B, H, N, N) -> (B, gh, gw).
torch::Tensor patch_attention_map(const torch::Tensor& attention, const TokenLayout& layout,
                                  const std::vector<GridCell>& cells, HeadFusion fusion,
                                  int64_t head = -1);

/// Rolled-out patch attention: the cell's row of rollout_matrix, over the patches: where the
/// information that reaches that token at the last layer came from. -> (B, gh, gw).
torch::Tensor patch_rollout_map(const std::vector<torch::Tensor>& attentions,
                                const TokenLayout& layout, const std::vector<GridCell>& cells,
                                HeadFusion fusion, double discard_ratio = 0.0);

/// Gradient-weighted rollout: per layer W = mean over heads of max(0, A * dy/dA), then rolled
/// out as attention_rollout does; y is the score of the class being explained. attentions and
/// gradients: one (B, H, N, N) per layer -> (B, gh, gw).
torch::Tensor gradient_rollout(const std::vector<torch::Tensor>& attentions,
                               const std::vector<torch::Tensor>& gradients,
                               const TokenLayout& layout, double discard_ratio = 0.0);

/// Relevance propagation for self-attention (Chefer, Gur and Wolf, "Generic Attention-model
/// Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV 2021): R
/// starts as the identity and each layer adds  mean over heads of max(0, dy/dA * A) . R ; read
/// out like the other maps. Prefix tokens other than the class token are left out as
/// gradient_rollout leaves them out. attentions and gradients: one (B, H, N, N) per layer ->
/// (B, gh, gw).
torch::Tensor relevance(const std::vector<torch::Tensor>& attentions,
                        const std::vector<torch::Tensor>& gradients, const TokenLayout& layout);

/// Grad-CAM (Selvaraju et al. 2017) on a transformer's token grid, as pytorch-grad-cam applies it
/// to ViTs: the patch tokens are the channels-by-cells activation, each channel is weighted by
/// its gradient averaged over the cells, and the map is max(0, sum over channels). tokens and
/// gradients (B, N, D) -> (B, gh, gw). Unscaled: pytorch-grad-cam's min-max scaling is a display
/// step, which the overlay does.
torch::Tensor grad_cam(const torch::Tensor& tokens, const torch::Tensor& gradients,
                       const TokenLayout& layout);

/// Attention-pool (map head) weights over the token sequence (B, N) -> (B, gh, gw).
torch::Tensor pool_map(const torch::Tensor& pool_weights, const TokenLayout& layout);

}  // namespace attnkit::attention
