// attention/feed_forward.cpp: the transformer MLP.
#include "attention/feed_forward.h"

#include <torch/torch.h>

namespace attnkit::attention {

FeedForwardImpl::FeedForwardImpl(FeedForwardOptions options_) : options(std::move(options_)) {
  reset();
}

void FeedForwardImpl::reset() {
  TORCH_CHECK(options.dim() > 0 && options.hidden_dim() > 0,
              "FeedForward: dim and hidden_dim must be positive, got ", options.dim(), " and ",
              options.hidden_dim());
  fc1 = register_module("fc1", Linear(options.dim(), options.hidden_dim()));
  fc2 = register_module("fc2", Linear(options.hidden_dim(), options.dim()));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  // A bf16 pass keeps the hidden layer in bf16: fc2 reads it as it is.
  auto h = fc1->forward_gelu(x);
  if (options.dropout() > 0.0) h = torch::dropout(h, options.dropout(), is_training());
  h = fc2(h);
  if (options.dropout() > 0.0) h = torch::dropout(h, options.dropout(), is_training());
  return h;
}

torch::Tensor FeedForwardImpl::forward_residual(const torch::Tensor& x,
                                                const torch::Tensor& residual) {
  if (is_training() && options.dropout() > 0.0) return residual + forward(x);
  return fc2->forward_add(fc1->forward_gelu(x), residual);
}

}  // namespace attnkit::attention
