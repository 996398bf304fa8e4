// vision/train/train_state.cpp: the training state as JSON.
#include "vision/train/train_state.h"

#include <nlohmann/json.hpp>

#include "vision/errors.h"
#include "vision/json_error.h"

namespace attnkit::vision {

void TrainState::end_epoch(bool improved, double metric, int64_t patience) {
  if (improved) {
    best_metric = metric;
    best_epoch = epoch + 1;
    epochs_without_improvement = 0;
  } else {
    ++epochs_without_improvement;
  }
  epoch += 1;
  batch = 0;
  epoch_loss_sum = 0;
  epoch_loss_count = 0;
  if (patience > 0 && epochs_without_improvement >= patience) stopped_early = true;
}

std::string TrainState::to_json() const {
  return nlohmann::json{{"epoch", epoch},
                        {"batch", batch},
                        {"step", step},
                        {"epoch_loss_sum", epoch_loss_sum},
                        {"epoch_loss_count", epoch_loss_count},
                        {"best_metric", best_metric},
                        {"best_epoch", best_epoch},
                        {"epochs_without_improvement", epochs_without_improvement},
                        {"elapsed_seconds", elapsed_seconds},
                        {"stopped_early", stopped_early},
                        {"baseline", baseline},
                        {"baseline_set", baseline_set}}
      .dump();
}

TrainState TrainState::from_json(const std::string& text) {
  TrainState s;
  try {
    auto j = nlohmann::json::parse(text);
    s.epoch = j.at("epoch").get<int64_t>();
    s.batch = j.at("batch").get<int64_t>();
    s.step = j.at("step").get<int64_t>();
    s.epoch_loss_sum = j.at("epoch_loss_sum").get<double>();
    s.epoch_loss_count = j.at("epoch_loss_count").get<int64_t>();
    s.best_metric = j.at("best_metric").get<double>();
    s.best_epoch = j.at("best_epoch").get<int64_t>();
    s.epochs_without_improvement = j.at("epochs_without_improvement").get<int64_t>();
    s.elapsed_seconds = j.at("elapsed_seconds").get<double>();
    s.stopped_early = j.at("stopped_early").get<bool>();
    s.baseline = j.value("baseline", 0.0);
    s.baseline_set = j.value("baseline_set", false);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(std::string("training state is not valid: ") + json_error_text(e));
  }
  return s;
}

uint64_t mix_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  // splitmix64's finaliser over a combination of the three.
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + stream * 0xBF58476D1CE4E5B9ull + index;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return x;
}

}  // namespace attnkit::vision
