// vision/models/captioner.cpp: the SAT decoder: attention with the previous state as query, the
// gated context (eq. 6 and section 4.2.1's beta), the LSTM, and the deep output layer (eq. 7).
#include "vision/models/captioner.h"

#include <torch/torch.h>

namespace attnkit::vision {

CaptionerImpl::CaptionerImpl(CaptionerConfig config) : config_(std::move(config)) {
  config_.encoder.num_classes = 0;
  config_.validate();
  const auto& c = config_;
  const int64_t d = c.encoder.dim;
  encoder = register_module("encoder", VisionTransformer(c.encoder));
  embed = register_module("embed", torch::nn::Embedding(c.vocab_size, c.embed_dim));
  init_h = register_module("init_h", torch::nn::Linear(d, c.hidden_dim));
  init_c = register_module("init_c", torch::nn::Linear(d, c.hidden_dim));
  attention = register_module(
      "attention", attention::SpatialAttention(attention::SpatialAttentionOptions(d, c.hidden_dim)
                                                   .score(attention::AttentionScore::kAdditive)
                                                   .mode(c.mode)
                                                   .hidden_dim(c.attention_dim)));
  f_beta = register_module("f_beta", torch::nn::Linear(c.hidden_dim, 1));
  lstm = register_module("lstm", torch::nn::LSTMCell(c.embed_dim + d, c.hidden_dim));
  out_h = register_module("out_h", torch::nn::Linear(c.hidden_dim, c.embed_dim));
  out_z = register_module("out_z", torch::nn::Linear(d, c.embed_dim));
  out_word = register_module("out_word", torch::nn::Linear(c.embed_dim, c.vocab_size));
  dropout = register_module("dropout", torch::nn::Dropout(c.dropout));
}

EncodedImages CaptionerImpl::encode(const torch::Tensor& images) {
  EncodedImages out;
  auto tokens = encoder->forward_features(images, &out.grid_height, &out.grid_width);
  const int64_t prefix = config_.encoder.num_prefix_tokens();
  out.features = tokens.narrow(1, prefix, tokens.size(1) - prefix);
  return out;
}

DecoderState CaptionerImpl::initial_state(const torch::Tensor& features) {
  auto mean = features.mean(1);
  return {torch::tanh(init_h(mean)), torch::tanh(init_c(mean))};
}

attention::AttentionMemory CaptionerImpl::prepare(const torch::Tensor& features) {
  return attention->prepare(features);
}

DecoderStep CaptionerImpl::step(const attention::AttentionMemory& memory,
                                const torch::Tensor& previous_words, const DecoderState& state,
                                const torch::Tensor& expected_context) {
  DecoderStep out;
  out.attention = attention->attend(memory, state.h);
  auto context = out.attention.context;  // (B, D)
  if (expected_context.defined() && config_.mode == attention::AttentionMode::kHard) {
    TORCH_CHECK(memory.queries_per_item == 1,
                "Captioner: the expected context is for training, one query per image");
    auto expected = torch::bmm(out.attention.probabilities.unsqueeze(1), memory.values).squeeze(1);
    context = torch::where(expected_context.view({-1, 1}), expected, context);
  }
  // The gate beta = sigmoid(f_beta(h_{t-1})) scales the context (SAT section 4.2.1).
  context = torch::sigmoid(f_beta(state.h)) * context;
  auto word = embed(previous_words);  // (B, E)
  auto [h, c] = lstm(torch::cat({word, context}, 1), std::make_tuple(state.h, state.c));
  out.state = {h, c};
  // Deep output (eq. 7): L_o(E y_{t-1} + L_h h_t + L_z z_t).
  out.logits = out_word(dropout(word + out_h(h) + out_z(context)));
  return out;
}

CaptionerOutput CaptionerImpl::forward(const torch::Tensor& features, const torch::Tensor& captions,
                                       const torch::Tensor& expected_context) {
  TORCH_CHECK(captions.dim() == 2 && captions.size(0) == features.size(0) && captions.size(1) >= 2,
              "Captioner: expected captions (", features.size(0), ", T + 1 >= 2), got ",
              captions.sizes());
  const int64_t steps = captions.size(1) - 1;
  auto memory = prepare(features);
  auto state = initial_state(features);
  std::vector<torch::Tensor> logits, weights, probabilities, log_probs;
  for (int64_t t = 0; t < steps; ++t) {
    auto s = step(memory, captions.select(1, t), state, expected_context);
    logits.push_back(s.logits);
    weights.push_back(s.attention.weights);
    probabilities.push_back(s.attention.probabilities);
    if (s.attention.log_prob.defined()) log_probs.push_back(s.attention.log_prob);
    state = s.state;
  }
  CaptionerOutput out;
  out.logits = torch::stack(logits, 1);
  out.weights = torch::stack(weights, 1);
  out.probabilities = torch::stack(probabilities, 1);
  if (!log_probs.empty()) out.log_probs = torch::stack(log_probs, 1);
  return out;
}

}  // namespace attnkit::vision
