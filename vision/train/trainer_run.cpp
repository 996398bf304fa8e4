// vision/train/trainer_run.cpp: a trainer's run directory.
#include "vision/train/trainer_run.h"

#include <filesystem>

#include "vision/train/train_checkpoint.h"

namespace attnkit::vision {

std::string TrainerRun::last_path() const { return run_file(out_dir_, "last.safetensors"); }

std::string TrainerRun::best_path() const { return run_file(out_dir_, "best.safetensors"); }

std::string TrainerRun::log_path() const { return run_file(out_dir_, "log.jsonl"); }

void TrainerRun::prepare_run_directory() const {
  std::filesystem::create_directories(out_dir_);
  remove_stale_run_temporaries(out_dir_);
}

}  // namespace attnkit::vision
