// vision/train/train_checkpoint.cpp: optimizer state through LibTorch's own archive format,
// stored as one uint8 tensor so a checkpoint stays a single safetensors file.
#include "vision/train/train_checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <torch/torch.h>

#include "vision/checkpoint/safetensors.h"
#include "vision/errors.h"

namespace attnkit::vision {
namespace {

const std::string kOptimizerTensor = std::string(kTrainerTensorPrefix) + "optimizer";

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
    throw CheckpointError(path + ": not a training checkpoint (no optimizer state; resume from "
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
  std::ofstream log(path, std::ios::app);
  log << json_line << "\n";
  if (!log) throw Error(path + ": cannot append to the training log");
}

}  // namespace attnkit::vision
