// attention/packed_attention.h: the scaled dot-product core of self-attention through oneDNN's
// matmul kernels, for inference.
#pragma once

#include <torch/types.h>

namespace attnkit::attention {

/// True when this build has oneDNN and oneDNN has an fp32 matmul for this CPU, so
/// packed_attention() can run.
bool packed_attention_available();

struct PackedAttentionOutput {
  torch::Tensor output;   ///< (B, N, H * hd), of qkv's dtype
  torch::Tensor weights;  ///< (B, H, N, N) float32, rows sum to 1; undefined unless asked for
};

/// softmax(q k^T * scale) v per head, for q, k and v as a fused qkv projection writes them:
/// qkv (B, N, 3 * H * hd), float32 or bfloat16, q then k then v, each heads-major (timm's
/// layout). The scores and their softmax are float32 whatever the input type; in bf16 the
/// probabilities are rounded to bf16 for the second product. Where oneDNN has no bf16 kernels
/// (below AVX-512) a bf16 qkv runs on the fp32 kernels, its output rounded to bf16 (the
/// probabilities are not). No autograd: inference only.
PackedAttentionOutput packed_attention(const torch::Tensor& qkv, int64_t heads, double scale,
                                       bool keep_weights);

}  // namespace attnkit::attention
