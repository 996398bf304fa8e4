// attention/onednn_context.h: the oneDNN engine and stream that attnkit's packed kernels share,
// and the bridge from LibTorch tensors to oneDNN memory. Internal: include from .cpp files only,
// so dnnl.hpp stays out of every public header.
#pragma once

#include <torch/types.h>
#include <oneapi/dnnl/dnnl.hpp>

namespace attnkit::attention::onednn {

/// The process's CPU engine.
dnnl::engine& engine();
/// A stream of this thread (CPU streams run in order; one per thread keeps callers apart).
dnnl::stream& stream();
/// f32 or bf16 for kFloat or kBFloat16; throws c10::Error for any other type.
dnnl::memory::data_type data_type(torch::ScalarType type);
/// A plain row-major (rows, cols) descriptor.
dnnl::memory::desc matrix(int64_t rows, int64_t cols, torch::ScalarType type);
/// oneDNN memory over a contiguous tensor's storage (no copy; the tensor must outlive it).
dnnl::memory wrap(const dnnl::memory::desc& desc, const torch::Tensor& tensor);

}  // namespace attnkit::attention::onednn
