// attention/packed_attention.cpp: q k^T and p v as two batched oneDNN matmuls on dense per-head
// copies (oneDNN's brgemm kernels want dense operands: on strided views of the qkv output it
// falls back to a generic GEMM about 3x slower), with the 1/sqrt(hd) scale folded into the first.
#include "attention/packed_attention.h"

#include <map>
#include <mutex>
#include <tuple>

#include <torch/torch.h>

#ifdef ATTNKIT_HAVE_ONEDNN
#include "attention/onednn_context.h"
#include "attention/packed_linear.h"
#endif

namespace attnkit::attention {

#ifdef ATTNKIT_HAVE_ONEDNN
namespace {

struct AttentionKernels {
  dnnl::matmul scores;  ///< (B, H, N, hd) x (B, H, hd, N) -> (B, H, N, N) f32, scaled
  dnnl::matmul mix;     ///< (B, H, N, N) x (B, H, N, hd) -> (B, N, H, hd) in memory
  /// softmax over the last axis, f32 scores -> probabilities of the products' type in one pass
  dnnl::softmax_v2_forward softmax;
  dnnl::memory::desc q, k_transposed, s, p, v, out;
};

const AttentionKernels& kernels_for(int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim,
                                    torch::ScalarType type, float scale) {
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, torch::ScalarType, float>;
  static std::mutex mutex;
  static std::map<Key, AttentionKernels> cache;
  std::lock_guard<std::mutex> lock(mutex);
  const Key key{batch, heads, tokens, head_dim, type, scale};
  auto found = cache.find(key);
  if (found != cache.end()) return found->second;

  using tag = dnnl::memory::format_tag;
  const auto dt = onednn::data_type(type);
  const dnnl::memory::dims bhnd{batch, heads, tokens, head_dim};
  AttentionKernels k;
  k.q = dnnl::memory::desc(bhnd, dt, tag::abcd);
  // k^T (B, H, hd, N) is k (B, H, N, hd) read column-major in its last two dimensions.
  k.k_transposed = dnnl::memory::desc({batch, heads, head_dim, tokens}, dt, tag::abdc);
  k.s = dnnl::memory::desc({batch, heads, tokens, tokens}, dnnl::memory::data_type::f32, tag::abcd);
  k.p = dnnl::memory::desc({batch, heads, tokens, tokens}, dt, tag::abcd);
  k.v = k.q;
  // The output is written as (B, N, H, hd), which is the (B, N, D) the projection reads.
  k.out = dnnl::memory::desc(bhnd, dt, tag::acbd);
  dnnl::primitive_attr scaled;
  scaled.set_output_scales(0, {scale});
  k.scores = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(k.q, k.k_transposed, k.s),
                                                       scaled, onednn::engine()));
  k.mix = dnnl::matmul(
      dnnl::matmul::primitive_desc(dnnl::matmul::desc(k.p, k.v, k.out), onednn::engine()));
  k.softmax = dnnl::softmax_v2_forward(dnnl::softmax_v2_forward::primitive_desc(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                     dnnl::algorithm::softmax_accurate, k.s, k.p, 3),
      onednn::engine()));
  return cache.emplace(key, std::move(k)).first->second;
}

}  // namespace

bool packed_attention_available() { return onednn_native_matmul(torch::kFloat); }

PackedAttentionOutput packed_attention(const torch::Tensor& qkv, int64_t heads, double scale,
                                       bool keep_weights) {
  TORCH_CHECK(qkv.dim() == 3 && heads > 0 && qkv.size(2) % (3 * heads) == 0,
              "packed_attention: expected qkv (B, N, 3 * ", heads, " * hd), got ", qkv.sizes());
  const auto type = qkv.scalar_type();
  if (type == torch::kBFloat16 && !onednn_native_matmul(torch::kBFloat16)) {
    auto emulated = packed_attention(qkv.to(torch::kFloat), heads, scale, keep_weights);
    return {emulated.output.to(torch::kBFloat16), emulated.weights};
  }
  const int64_t batch = qkv.size(0), tokens = qkv.size(1);
  const int64_t head_dim = qkv.size(2) / (3 * heads);
  // One copy makes q, k and v dense per head: (3, B, H, N, hd).
  auto qkv_heads =
      qkv.view({batch, tokens, 3, heads, head_dim}).permute({2, 0, 3, 1, 4}).contiguous();
  auto q = qkv_heads[0], k = qkv_heads[1], v = qkv_heads[2];
  const auto& kernels =
      kernels_for(batch, heads, tokens, head_dim, type, static_cast<float>(scale));

  auto scores = torch::empty({batch, heads, tokens, tokens}, qkv.options().dtype(torch::kFloat));
  auto& stream = onednn::stream();
  kernels.scores.execute(stream, {{DNNL_ARG_SRC, onednn::wrap(kernels.q, q)},
                                  {DNNL_ARG_WEIGHTS, onednn::wrap(kernels.k_transposed, k)},
                                  {DNNL_ARG_DST, onednn::wrap(kernels.s, scores)}});
  stream.wait();
  // The weights callers keep are float32; otherwise one pass turns scores into the
  // probabilities the second product reads (in place for fp32).
  torch::Tensor weights, probabilities;
  if (keep_weights) {
    weights = torch::softmax(scores, -1);
    probabilities = weights.to(type);
  } else {
    probabilities = type == torch::kFloat ? scores : torch::empty_like(scores, qkv.options());
    kernels.softmax.execute(stream, {{DNNL_ARG_SRC, onednn::wrap(kernels.s, scores)},
                                     {DNNL_ARG_DST, onednn::wrap(kernels.p, probabilities)}});
    stream.wait();
  }
  auto out = torch::empty({batch, tokens, heads * head_dim}, qkv.options());
  kernels.mix.execute(stream, {{DNNL_ARG_SRC, onednn::wrap(kernels.p, probabilities)},
                               {DNNL_ARG_WEIGHTS, onednn::wrap(kernels.v, v)},
                               {DNNL_ARG_DST, onednn::wrap(kernels.out, out)}});
  stream.wait();
  return {out, weights};
}

#else  // no oneDNN in this build

bool packed_attention_available() { return false; }

PackedAttentionOutput packed_attention(const torch::Tensor&, int64_t, double, bool) {
  TORCH_CHECK(false, "packed_attention: this build of attnkit has no oneDNN (libdnnl-dev)");
}

#endif

}  // namespace attnkit::attention
