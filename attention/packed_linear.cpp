// attention/packed_linear.cpp: oneDNN matmul primitives with pre-packed weights and fused
// epilogues, cached per (rows, epilogue, output type).
#include "attention/packed_linear.h"

#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include <torch/torch.h>

#ifdef ATTNKIT_HAVE_ONEDNN
#include "attention/onednn_context.h"
#endif

namespace attnkit::attention {

#ifdef ATTNKIT_HAVE_ONEDNN

bool packed_linear_available() { return onednn_native_matmul(torch::kFloat); }

bool onednn_native_matmul(torch::ScalarType type) {
  static const auto probe = [](torch::ScalarType t) {
    try {
      const auto src = onednn::matrix(16, 64, t);
      const dnnl::memory::desc weights({64, 64}, onednn::data_type(t),
                                       dnnl::memory::format_tag::any);
      dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, onednn::matrix(16, 64, t)),
                                   onednn::engine());
      return true;
    } catch (const dnnl::error&) {
      return false;  // no implementation for this type on this CPU
    }
  };
  static const bool fp32 = probe(torch::kFloat);
  // The ISA oneDNN runs (ONEDNN_MAX_CPU_ISA caps it) has AVX512-BF16's bits (AMX's include them).
  static const bool bf16_instructions =
      (static_cast<unsigned>(dnnl::get_effective_cpu_isa()) & dnnl_cpu_isa_avx512_core_bf16) ==
      dnnl_cpu_isa_avx512_core_bf16;
  static const bool bf16 = bf16_instructions && probe(torch::kBFloat16);
  if (type == torch::kFloat) return fp32;
  if (type == torch::kBFloat16) return bf16;
  return false;
}

struct PackedLinear::Impl {
  using Key = std::tuple<int64_t, LinearEpilogue, torch::ScalarType>;
  struct Kernel {
    dnnl::matmul matmul;
    dnnl::memory weights;  ///< packed for this primitive's layout (shared when layouts agree)
    std::string name;
  };

  int64_t in_features = 0, out_features = 0;
  /// The kernels' operand type: the compute type, or kFloat where bf16 is emulated.
  torch::ScalarType compute = torch::kFloat;
  bool emulated_bf16 = false;
  /// (N, K) float32 contiguous: the source of every packed layout (rounded to bf16 values where
  /// bf16 is emulated)
  torch::Tensor weight;
  torch::Tensor bias;  ///< (1, N) float32, or undefined
  std::mutex mutex;
  std::map<Key, Kernel> kernels;
  std::vector<dnnl::memory> packed;  ///< one per distinct weight layout asked for

  const Kernel& kernel(int64_t rows, LinearEpilogue epilogue, torch::ScalarType out_dtype) {
    std::lock_guard<std::mutex> lock(mutex);
    const Key key{rows, epilogue, out_dtype};
    auto found = kernels.find(key);
    if (found != kernels.end()) return found->second;

    using tag = dnnl::memory::format_tag;
    const auto src = onednn::matrix(rows, in_features, compute);
    const dnnl::memory::desc weights_any({in_features, out_features}, onednn::data_type(compute),
                                         tag::any);
    const auto dst = onednn::matrix(rows, out_features, out_dtype);
    dnnl::post_ops ops;
    if (epilogue == LinearEpilogue::kGelu) {
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
    } else if (epilogue == LinearEpilogue::kAddResidual) {
      ops.append_binary(dnnl::algorithm::binary_add, dst);
    }
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    const auto desc = bias.defined()
                          ? dnnl::matmul::desc(src, weights_any,
                                               onednn::matrix(1, out_features, torch::kFloat), dst)
                          : dnnl::matmul::desc(src, weights_any, dst);
    dnnl::matmul::primitive_desc pd(desc, attr, onednn::engine());

    // Reorder the weights once per layout: row counts usually share one.
    dnnl::memory weights;
    for (const auto& m : packed) {
      if (m.get_desc() == pd.weights_desc()) weights = m;
    }
    if (!weights) {
      // torch's (N, K) row-major weight is the (K, N) matrix in column-major order.
      dnnl::memory plain({{in_features, out_features}, dnnl::memory::data_type::f32, tag::ba},
                         onednn::engine(), weight.data_ptr());
      weights = dnnl::memory(pd.weights_desc(), onednn::engine());
      dnnl::reorder(plain, weights).execute(onednn::stream(), plain, weights);
      onednn::stream().wait();
      packed.push_back(weights);
    }
    return kernels.emplace(key, Kernel{dnnl::matmul(pd), weights, pd.impl_info_str()})
        .first->second;
  }
};

PackedLinear::PackedLinear(const torch::Tensor& weight, const torch::Tensor& bias,
                           torch::ScalarType compute)
    : impl_(std::make_unique<Impl>()), compute_(compute) {
  TORCH_CHECK(weight.dim() == 2, "PackedLinear: expected a (N, K) weight, got ", weight.sizes());
  TORCH_CHECK(compute == torch::kFloat || compute == torch::kBFloat16,
              "PackedLinear: compute dtype must be float32 or bfloat16, got ", compute);
  TORCH_CHECK(packed_linear_available(), "PackedLinear: oneDNN has no float32 matmul for this CPU");
  torch::NoGradGuard no_grad;
  impl_->out_features = weight.size(0);
  impl_->in_features = weight.size(1);
  impl_->emulated_bf16 = compute == torch::kBFloat16 && !onednn_native_matmul(compute);
  impl_->compute = impl_->emulated_bf16 ? torch::kFloat : compute;
  impl_->weight = impl_->emulated_bf16
                      ? weight.detach().to(torch::kBFloat16).to(torch::kFloat).contiguous()
                      : weight.detach().to(torch::kFloat).contiguous().clone();
  if (bias.defined()) {
    TORCH_CHECK(bias.numel() == weight.size(0), "PackedLinear: expected a bias of ", weight.size(0),
                " values, got ", bias.sizes());
    impl_->bias = bias.detach().to(torch::kFloat).reshape({1, -1}).contiguous().clone();
  }
}

PackedLinear::~PackedLinear() = default;

std::string PackedLinear::kernel_name(int64_t rows) const {
  const auto& name = impl_->kernel(rows, LinearEpilogue::kNone, impl_->compute).name;
  return impl_->emulated_bf16 ? name + " (bf16 emulated)" : name;
}

bool PackedLinear::emulates_bf16() const { return impl_->emulated_bf16; }

torch::Tensor PackedLinear::run(const torch::Tensor& x, LinearEpilogue epilogue,
                                torch::ScalarType out_dtype, const torch::Tensor& residual) const {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == impl_->in_features, "PackedLinear: expected (..., ",
              impl_->in_features, ") input, got ", x.sizes());
  if (!impl_->emulated_bf16) return run_kernels(x, epilogue, out_dtype, residual);
  // bf16's rounding of the input, then the fp32 kernels (the weights are rounded already);
  // the output is rounded once, after the epilogue, as the native kernel writes it.
  const auto rounded = x.to(torch::kBFloat16).to(torch::kFloat);
  const auto residual_fp32 = residual.defined() ? residual.to(torch::kFloat) : residual;
  return run_kernels(rounded, epilogue, torch::kFloat, residual_fp32).to(out_dtype);
}

torch::Tensor PackedLinear::run_kernels(const torch::Tensor& x, LinearEpilogue epilogue,
                                        torch::ScalarType out_dtype,
                                        const torch::Tensor& residual) const {
  const int64_t in_features = impl_->in_features, out_features = impl_->out_features;
  const auto compute = impl_->compute;
  const int64_t rows = x.numel() / in_features;
  auto sizes = x.sizes().vec();
  sizes.back() = out_features;
  auto src = x.to(compute).reshape({rows, in_features}).contiguous();
  auto dst = torch::empty({rows, out_features}, x.options().dtype(out_dtype));
  if (rows == 0) return dst.view(sizes);

  const auto& k = impl_->kernel(rows, epilogue, out_dtype);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, onednn::wrap(onednn::matrix(rows, in_features, compute), src)},
      {DNNL_ARG_WEIGHTS, k.weights},
      {DNNL_ARG_DST, onednn::wrap(onednn::matrix(rows, out_features, out_dtype), dst)}};
  if (impl_->bias.defined()) {
    args.emplace(DNNL_ARG_BIAS,
                 onednn::wrap(onednn::matrix(1, out_features, torch::kFloat), impl_->bias));
  }
  torch::Tensor residual_rows;
  if (epilogue == LinearEpilogue::kAddResidual) {
    TORCH_CHECK(residual.defined() && residual.numel() == rows * out_features,
                "PackedLinear: expected a residual of shape ", c10::IntArrayRef(sizes), ", got ",
                residual.defined() ? residual.sizes() : c10::IntArrayRef{});
    residual_rows = residual.to(out_dtype).reshape({rows, out_features}).contiguous();
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                 onednn::wrap(onednn::matrix(rows, out_features, out_dtype), residual_rows));
  }
  k.matmul.execute(onednn::stream(), args);
  onednn::stream().wait();
  return dst.view(sizes);
}

#else  // no oneDNN in this build

bool packed_linear_available() { return false; }

bool onednn_native_matmul(torch::ScalarType) { return false; }

struct PackedLinear::Impl {};

PackedLinear::PackedLinear(const torch::Tensor&, const torch::Tensor&, torch::ScalarType compute)
    : compute_(compute) {
  TORCH_CHECK(false, "PackedLinear: this build of attnkit has no oneDNN (libdnnl-dev)");
}

PackedLinear::~PackedLinear() = default;

std::string PackedLinear::kernel_name(int64_t) const { return "none"; }

bool PackedLinear::emulates_bf16() const { return false; }

torch::Tensor PackedLinear::run_kernels(const torch::Tensor&, LinearEpilogue, torch::ScalarType,
                                        const torch::Tensor&) const {
  TORCH_CHECK(false, "PackedLinear: this build of attnkit has no oneDNN (libdnnl-dev)");
}

torch::Tensor PackedLinear::run(const torch::Tensor&, LinearEpilogue, torch::ScalarType,
                                const torch::Tensor&) const {
  TORCH_CHECK(false, "PackedLinear: this build of attnkit has no oneDNN (libdnnl-dev)");
}

#endif

}  // namespace attnkit::attention
