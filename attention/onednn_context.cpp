// attention/onednn_context.cpp: the shared oneDNN engine, per-thread streams, tensor wrapping.
#include "attention/onednn_context.h"

#include <torch/torch.h>

namespace attnkit::attention::onednn {

dnnl::engine& engine() {
  static dnnl::engine cpu(dnnl::engine::kind::cpu, 0);
  return cpu;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

dnnl::memory::data_type data_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat:
      return dnnl::memory::data_type::f32;
    case torch::kBFloat16:
      return dnnl::memory::data_type::bf16;
    default:
      break;
  }
  TORCH_CHECK(false, "oneDNN kernels take float32 or bfloat16 tensors, got ", type);
}

dnnl::memory::desc matrix(int64_t rows, int64_t cols, torch::ScalarType type) {
  return dnnl::memory::desc({rows, cols}, data_type(type), dnnl::memory::format_tag::ab);
}

dnnl::memory wrap(const dnnl::memory::desc& desc, const torch::Tensor& tensor) {
  TORCH_CHECK(tensor.is_contiguous(), "oneDNN: expected a contiguous tensor, got strides ",
              tensor.strides());
  return dnnl::memory(desc, engine(), tensor.data_ptr());
}

}  // namespace attnkit::attention::onednn
