// vision/train/train_checkpoint.cpp: optimizer state through LibTorch's own archive format,
// stored as one uint8 tensor so a checkpoint stays a single safetensors file.
#include "vision/train/train_checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "vision/atomic_file.h"
#include "vision/checkpoint/safetensors.h"
#include "vision/errors.h"

namespace attnkit::vision {
namespace {

const std::string kOptimizerTensor = std::string(kTrainerTensorPrefix) + "optimizer";

[[noreturn]] void diverged(const TrainState& state, int64_t step, const std::string& problem,
                           const std::string& last_path) {
  const std::string kept = std::filesystem::exists(last_path)
                               ? last_path + " is kept as the last good checkpoint"
                               : "no checkpoint was written";
  throw TrainingDiverged("training diverged at epoch " + std::to_string(state.epoch + 1) +
                         ", step " + std::to_string(step) + ": " + problem + "; " + kept);
}

}  // namespace

void save_training_checkpoint(const std::string& path, const torch::nn::Module& module,
                              ModelInfo info, torch::optim::Optimizer& optimizer,
                              const std::string& state_json) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string blob = bytes.str();
  auto optimizer_tensor = torch::empty({static_cast<int64_t>(blob.size())}, torch::kUInt8);
  std::memcpy(optimizer_tensor.data_ptr<uint8_t>(), blob.data(), blob.size());

  info.extra[kTrainStateKey] = state_json;
  save_model(path, module, info, {{kOptimizerTensor, optimizer_tensor}});
}

std::string load_training_checkpoint(const std::string& path, torch::nn::Module& module,
                                     torch::optim::Optimizer& optimizer) {
  auto file = SafetensorsFile::open(path);
  const auto state = file.metadata().find(kTrainStateKey);
  if (state == file.metadata().end() || !file.contains(kOptimizerTensor)) {
    throw CheckpointError(path +
                          ": not a training checkpoint (no optimizer state; resume from "
                          "the last.safetensors that 'attn train' writes)");
  }
  load_tensors_strict(module, model_tensors_from_file(path), path);
  auto blob = file.tensor(kOptimizerTensor).contiguous();
  std::string bytes(reinterpret_cast<const char*>(blob.data_ptr<uint8_t>()),
                    static_cast<size_t>(blob.numel()));
  try {
    std::istringstream in(bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": optimizer state does not fit this model (" +
                          e.what_without_backtrace() + ")");
  }
  return state->second;
}

TrainState resume_training_checkpoint(const std::string& path, torch::nn::Module& module,
                                      torch::optim::Optimizer& optimizer) {
  const auto state_json = load_training_checkpoint(path, module, optimizer);
  try {
    return TrainState::from_json(state_json);
  } catch (const CheckpointError& e) {
    throw CheckpointError(path + ": " + e.what());
  }
}

std::string run_file(const std::string& out_dir, const std::string& name) {
  return (std::filesystem::path(out_dir) / name).string();
}

void append_training_log(const std::string& path, const std::string& json_line) {
  append_to_file(path, json_line + "\n");
}

void trim_training_log(const std::string& path, int64_t completed_epochs) {
  std::ifstream in(path);
  if (!in) return;  // no log yet
  std::string kept, line;
  bool dropped = false;
  while (std::getline(in, line)) {
    // A line that does not parse is the tail of an append cut short: drop it as well.
    const auto entry = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const bool keep = entry.is_object() && entry.contains("epoch") &&
                      entry["epoch"].is_number_integer() &&
                      entry["epoch"].get<int64_t>() <= completed_epochs;
    if (keep) {
      kept += line + "\n";
    } else {
      dropped = true;
    }
  }
  if (dropped) write_atomically(path, kept.data(), kept.size());
}

void check_finite_loss(double loss, const TrainState& state, const std::string& last_path) {
  if (std::isfinite(loss)) return;
  std::ostringstream problem;
  problem << "the loss is " << loss;
  diverged(state, state.step + 1, problem.str(), last_path);
}

void check_finite_parameters(const torch::nn::Module& module, const TrainState& state,
                             const std::string& last_path) {
  torch::NoGradGuard no_grad;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (!torch::isfinite(p.value()).all().item<bool>()) {
      diverged(state, state.step, "parameter '" + p.key() + "' holds NaN or Inf", last_path);
    }
  }
}

void remove_stale_run_temporaries(const std::string& out_dir) {
  for (const char* name : {"last.safetensors", "best.safetensors", "log.jsonl"}) {
    remove_stale_temporaries(run_file(out_dir, name));
  }
}

}  // namespace attnkit::vision
