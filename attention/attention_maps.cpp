// attention/attention_maps.cpp: class-token maps, rollout, gradient rollout, relevance and
// Grad-CAM.
#include "attention/attention_maps.h"

#include <stdexcept>
#include <string>

#include <torch/torch.h>

namespace attnkit::attention {
namespace {

void check_layout(const torch::Tensor& attention, const TokenLayout& layout) {
  TORCH_CHECK(attention.dim() == 4 && attention.size(2) == attention.size(3),
              "attention maps: expected attention (B, H, N, N), got ", attention.sizes());
  TORCH_CHECK(layout.grid_height > 0 && layout.grid_width > 0 && layout.grid_start >= 0,
              "attention maps: bad grid ", layout.grid_height, "x", layout.grid_width, " at ",
              layout.grid_start);
  const int64_t n = attention.size(3);
  TORCH_CHECK(layout.grid_start + layout.grid_height * layout.grid_width == n,
              "attention maps: ", n, " tokens, expected ", layout.grid_start, " prefix + ",
              layout.grid_height, "x", layout.grid_width, " patches");
  TORCH_CHECK(layout.class_index < layout.grid_start,
              "attention maps: the class token must come before the patches");
}

/// The explained token indices: class token first (if any), then the patches.
torch::Tensor explained_indices(const TokenLayout& layout) {
  auto grid = torch::arange(
      layout.grid_start, layout.grid_start + layout.grid_height * layout.grid_width, torch::kLong);
  if (layout.class_index < 0) return grid;
  return torch::cat({torch::tensor({layout.class_index}, torch::kLong), grid});
}

/// The readout row of a rolled-out or single-layer matrix M (B, N', N') over the patches:
/// the class token's row, or the mean of the patch rows. -> (B, gh, gw).
torch::Tensor read_out(const torch::Tensor& matrix, const TokenLayout& layout) {
  const int64_t offset = layout.class_index >= 0 ? 1 : 0;
  const int64_t cells = layout.grid_height * layout.grid_width;
  const auto columns = matrix.narrow(2, offset, cells);
  const auto row = offset == 1 && !layout.mean_readout ? columns.select(1, 0)
                                                       : columns.narrow(1, offset, cells).mean(1);
  return row.reshape({matrix.size(0), layout.grid_height, layout.grid_width});
}

/// Zeroes the smallest `ratio` of each matrix's entries (B, N, N), sparing entry (0, 0).
torch::Tensor discard_lowest(torch::Tensor fused, double ratio, bool has_class_token) {
  if (ratio <= 0.0) return fused;
  TORCH_CHECK(ratio < 1.0, "attention rollout: discard ratio must be in [0, 1), got ", ratio);
  auto flat = fused.reshape({fused.size(0), -1}).clone();
  const auto count = static_cast<int64_t>(static_cast<double>(flat.size(1)) * ratio);
  if (count == 0) return fused;
  const auto lowest = std::get<1>(flat.topk(count, 1, /*largest=*/false));
  auto keep = torch::ones_like(flat, torch::kBool);
  keep.scatter_(1, lowest, false);
  if (has_class_token) keep.select(1, 0).fill_(true);
  return torch::where(keep, flat, torch::zeros_like(flat)).view(fused.sizes());
}

/// Product over layers of (0.5 W + 0.5 I) with rows renormalised. fused: (B, N', N') each.
torch::Tensor roll_out(const std::vector<torch::Tensor>& fused) {
  TORCH_CHECK(!fused.empty(), "attention rollout: no layers");
  const int64_t n = fused.front().size(1);
  const auto identity = torch::eye(n, fused.front().options());
  torch::Tensor result;
  for (const auto& w : fused) {
    auto a = 0.5 * w + 0.5 * identity;
    a = a / a.sum(-1, true);
    result = result.defined() ? torch::matmul(a, result) : a;
  }
  return result;
}

/// Per layer, mean over heads of max(0, A * dy/dA) on the explained tokens' rows and columns,
/// not renormalised: the weights are not probabilities any more. -> one (B, N', N') per layer.
std::vector<torch::Tensor> positive_gradient_attention(const std::vector<torch::Tensor>& attentions,
                                                       const std::vector<torch::Tensor>& gradients,
                                                       const TokenLayout& layout) {
  TORCH_CHECK(attentions.size() == gradients.size(), "attention maps: ", attentions.size(),
              " attention layers but ", gradients.size(), " gradients");
  std::vector<torch::Tensor> weighted;
  for (size_t i = 0; i < attentions.size(); ++i) {
    TORCH_CHECK(gradients[i].sizes() == attentions[i].sizes(), "attention maps: layer ", i,
                " gradient ", gradients[i].sizes(), " for attention ", attentions[i].sizes());
    const auto positive =
        (attentions[i].detach().to(torch::kFloat) * gradients[i].detach().to(torch::kFloat))
            .clamp_min(0.0);
    check_layout(positive, layout);
    const auto keep = explained_indices(layout).to(positive.device());
    weighted.push_back(positive.index_select(2, keep).index_select(3, keep).mean(1));
  }
  return weighted;
}

/// One layer's attention among the explained tokens, one head's (`head` >= 0) or the heads
/// fused: (B, H, N, N) -> (B, N', N').
torch::Tensor layer_matrix(const torch::Tensor& attention, const TokenLayout& layout,
                           HeadFusion fusion, int64_t head) {
  const auto kept = keep_explained_tokens(attention.detach().to(torch::kFloat), layout);
  if (head < 0) return fuse_heads(kept, fusion);
  TORCH_CHECK(head < kept.size(1), "attention maps: head ", head, " of ", kept.size(1));
  return kept.select(1, head);
}

}  // namespace

HeadFusion head_fusion_from_string(const std::string& name) {
  if (name == "mean") return HeadFusion::kMean;
  if (name == "max") return HeadFusion::kMax;
  if (name == "min") return HeadFusion::kMin;
  throw std::invalid_argument("unknown head fusion '" + name + "' (mean, max or min)");
}

torch::Tensor keep_explained_tokens(const torch::Tensor& attention, const TokenLayout& layout) {
  check_layout(attention, layout);
  const auto keep = explained_indices(layout).to(attention.device());
  auto kept = attention.index_select(2, keep).index_select(3, keep);
  if (kept.size(3) == attention.size(3)) return kept;
  return kept / kept.sum(-1, true).clamp_min(1e-12);
}

torch::Tensor fuse_heads(const torch::Tensor& attention, HeadFusion fusion) {
  TORCH_CHECK(attention.dim() == 4, "fuse_heads: expected (B, H, N, N), got ", attention.sizes());
  switch (fusion) {
    case HeadFusion::kMax:
      return std::get<0>(attention.max(1));
    case HeadFusion::kMin:
      return std::get<0>(attention.min(1));
    case HeadFusion::kMean:
      break;
  }
  return attention.mean(1);
}

torch::Tensor class_token_map(const torch::Tensor& attention, const TokenLayout& layout,
                              HeadFusion fusion, int64_t head) {
  return read_out(layer_matrix(attention, layout, fusion, head), layout);
}

torch::Tensor attention_rollout(const std::vector<torch::Tensor>& attentions,
                                const TokenLayout& layout, HeadFusion fusion,
                                double discard_ratio) {
  return read_out(rollout_matrix(attentions, layout, fusion, discard_ratio), layout);
}

torch::Tensor rollout_matrix(const std::vector<torch::Tensor>& attentions,
                             const TokenLayout& layout, HeadFusion fusion, double discard_ratio) {
  std::vector<torch::Tensor> fused;
  for (const auto& a : attentions) {
    auto kept = keep_explained_tokens(a.detach().to(torch::kFloat), layout);
    fused.push_back(
        discard_lowest(fuse_heads(kept, fusion), discard_ratio, layout.class_index >= 0));
  }
  return roll_out(fused);
}

int64_t explained_cell_index(const TokenLayout& layout, int64_t row, int64_t col) {
  if (row < 0 || row >= layout.grid_height || col < 0 || col >= layout.grid_width) {
    throw std::out_of_range("cell " + std::to_string(row) + "," + std::to_string(col) +
                            " is outside the " + std::to_string(layout.grid_height) + "x" +
                            std::to_string(layout.grid_width) + " patch grid (rows 0.." +
                            std::to_string(layout.grid_height - 1) + ", columns 0.." +
                            std::to_string(layout.grid_width - 1) + ")");
  }
  return (layout.class_index >= 0 ? 1 : 0) + row * layout.grid_width + col;
}

torch::Tensor patch_row(const torch::Tensor& matrix, const TokenLayout& layout,
                        const std::vector<GridCell>& cells) {
  TORCH_CHECK(matrix.dim() == 3 && matrix.size(1) == matrix.size(2),
              "patch_row: expected a matrix (B, N', N'), got ", matrix.sizes());
  const int64_t batch = matrix.size(0);
  TORCH_CHECK(cells.size() == 1 || static_cast<int64_t>(cells.size()) == batch,
              "patch_row: expected 1 or ", batch, " cells, got ", cells.size());
  const int64_t offset = layout.class_index >= 0 ? 1 : 0;
  const int64_t grid_cells = layout.grid_height * layout.grid_width;
  TORCH_CHECK(matrix.size(1) == offset + grid_cells, "patch_row: ", matrix.size(1),
              " tokens, expected ", offset, " + ", layout.grid_height, "x", layout.grid_width);
  std::vector<torch::Tensor> rows;
  for (int64_t b = 0; b < batch; ++b) {
    const auto& cell = cells.size() == 1 ? cells.front() : cells[b];
    const int64_t query = explained_cell_index(layout, cell.row, cell.col);
    rows.push_back(matrix[b][query].narrow(0, offset, grid_cells));
  }
  return torch::stack(rows).reshape({batch, layout.grid_height, layout.grid_width});
}

torch::Tensor patch_attention_map(const torch::Tensor& attention, const TokenLayout& layout,
                                  const std::vector<GridCell>& cells, HeadFusion fusion,
                                  int64_t head) {
  return patch_row(layer_matrix(attention, layout, fusion, head), layout, cells);
}

torch::Tensor patch_rollout_map(const std::vector<torch::Tensor>& attentions,
                                const TokenLayout& layout, const std::vector<GridCell>& cells,
                                HeadFusion fusion, double discard_ratio) {
  return patch_row(rollout_matrix(attentions, layout, fusion, discard_ratio), layout, cells);
}

torch::Tensor gradient_rollout(const std::vector<torch::Tensor>& attentions,
                               const std::vector<torch::Tensor>& gradients,
                               const TokenLayout& layout, double discard_ratio) {
  std::vector<torch::Tensor> fused;
  for (auto& weighted : positive_gradient_attention(attentions, gradients, layout)) {
    fused.push_back(discard_lowest(weighted, discard_ratio, layout.class_index >= 0));
  }
  return read_out(roll_out(fused), layout);
}

torch::Tensor relevance(const std::vector<torch::Tensor>& attentions,
                        const std::vector<torch::Tensor>& gradients, const TokenLayout& layout) {
  const auto weighted = positive_gradient_attention(attentions, gradients, layout);
  TORCH_CHECK(!weighted.empty(), "relevance: no layers");
  const auto& first = weighted.front();
  auto r = torch::eye(first.size(1), first.options()).expand_as(first).clone();
  for (const auto& a : weighted) r = r + torch::matmul(a, r);
  return read_out(r, layout);
}

torch::Tensor grad_cam(const torch::Tensor& tokens, const torch::Tensor& gradients,
                       const TokenLayout& layout) {
  TORCH_CHECK(tokens.dim() == 3 && gradients.sizes() == tokens.sizes(),
              "grad_cam: expected tokens and gradients (B, N, D) of one shape, got ",
              tokens.sizes(), " and ", gradients.sizes());
  const int64_t cells = layout.grid_height * layout.grid_width;
  TORCH_CHECK(layout.grid_start + cells == tokens.size(1), "grad_cam: ", tokens.size(1),
              " tokens, expected ", layout.grid_start, " prefix + ", layout.grid_height, "x",
              layout.grid_width, " patches");
  const auto activation = tokens.detach().to(torch::kFloat).narrow(1, layout.grid_start, cells);
  const auto gradient = gradients.detach().to(torch::kFloat).narrow(1, layout.grid_start, cells);
  const auto channel_weights = gradient.mean(1, /*keepdim=*/true);  // (B, 1, D)
  return (activation * channel_weights)
      .sum(-1)
      .clamp_min(0.0)
      .reshape({tokens.size(0), layout.grid_height, layout.grid_width});
}

torch::Tensor pool_map(const torch::Tensor& pool_weights, const TokenLayout& layout) {
  TORCH_CHECK(pool_weights.dim() == 2, "pool_map: expected weights (B, N), got ",
              pool_weights.sizes());
  const int64_t cells = layout.grid_height * layout.grid_width;
  TORCH_CHECK(pool_weights.size(1) == layout.grid_start + cells, "pool_map: ", pool_weights.size(1),
              " weights for ", layout.grid_start, " prefix + ", cells, " patches");
  return pool_weights.narrow(1, layout.grid_start, cells)
      .to(torch::kFloat)
      .reshape({pool_weights.size(0), layout.grid_height, layout.grid_width});
}

}  // namespace attnkit::attention
