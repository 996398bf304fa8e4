// vision/models/captioner_config.cpp: CaptionerConfig validation and JSON.
#include "vision/models/captioner_config.h"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "vision/json_error.h"
#include "vision/json_number.h"

namespace attnkit::vision {

void CaptionerConfig::validate() const {
  encoder.validate();
  if (vocab_size < 5) throw std::invalid_argument("captioner: vocab_size must be at least 5");
  if (embed_dim <= 0 || hidden_dim <= 0 || attention_dim <= 0) {
    throw std::invalid_argument("captioner: embed_dim, hidden_dim and attention_dim must be > 0");
  }
  if (dropout < 0 || dropout >= 1) throw std::invalid_argument("captioner: dropout in [0, 1)");
}

std::string CaptionerConfig::to_json() const {
  return nlohmann::json{{"encoder", nlohmann::json::parse(encoder.to_json())},
                        {"vocab_size", vocab_size},
                        {"embed_dim", embed_dim},
                        {"hidden_dim", hidden_dim},
                        {"attention_dim", attention_dim},
                        {"mode", mode == attention::AttentionMode::kHard ? "hard" : "soft"},
                        {"dropout", dropout}}
      .dump();
}

CaptionerConfig CaptionerConfig::from_json(const std::string& text) {
  CaptionerConfig c;
  try {
    const auto j = nlohmann::json::parse(text);
    c.encoder = ViTConfig::from_json_value(j.at("encoder"));
    // json_int64 / json_double: nlohmann's own get<int64_t>() of 1e300 is undefined behaviour.
    c.vocab_size = json_int64(j.at("vocab_size"), "captioner: vocab_size");
    const auto read_int = [&](const char* key, int64_t& field) {
      if (j.contains(key)) field = json_int64(j.at(key), std::string("captioner: ") + key);
    };
    read_int("embed_dim", c.embed_dim);
    read_int("hidden_dim", c.hidden_dim);
    read_int("attention_dim", c.attention_dim);
    if (j.contains("dropout")) c.dropout = json_double(j.at("dropout"), "captioner: dropout");
    const auto mode = j.value("mode", std::string("soft"));
    if (mode != "soft" && mode != "hard") {
      throw std::invalid_argument("captioner: mode must be soft or hard, got '" + mode + "'");
    }
    c.mode = mode == "hard" ? attention::AttentionMode::kHard : attention::AttentionMode::kSoft;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("captioner config: ") + json_error_text(e));
  }
  c.encoder.num_classes = 0;
  c.validate();
  return c;
}

}  // namespace attnkit::vision
