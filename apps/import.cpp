// apps/import.cpp: `attn import`: a timm, Hugging Face or torchvision ViT checkpoint -> one
// attnkit .safetensors model file.
#include <filesystem>
#include <fstream>
#include <iostream>

#include <torch/torch.h>
#include <boost/program_options.hpp>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "vision/checkpoint/import.h"
#include "vision/checkpoint/model_file.h"
#include "vision/errors.h"
#include "vision/models/vit.h"

namespace attnkit::apps {
namespace {
namespace po = boost::program_options;
}

int run_import(int argc, char** argv) {
  std::vector<std::string> inputs;
  std::string output, format = "auto", labels_file, interpolation, source;
  int64_t heads = 0;
  double crop_pct = 0.0;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")("inputs", po::value(&inputs)->multitoken(),
                                                    "checkpoint directory or .safetensors file")(
      "output,o", po::value(&output), "the attnkit model file to write (.safetensors)")(
      "format,f", po::value(&format)->default_value("auto"), "auto | timm | hf | torchvision")(
      "heads", po::value(&heads)->default_value(0),
      "attention heads per block when the checkpoint cannot tell (0 = infer)")(
      "labels", po::value(&labels_file), "text file with one class name per line")(
      "interpolation", po::value(&interpolation),
      "override the resize filter: nearest|box|bilinear|hamming|bicubic|lanczos")(
      "crop-pct", po::value(&crop_pct), "override crop_pct (resize to size / crop_pct, then crop)")(
      "source", po::value(&source), "override the source text stored in the file");
  po::variables_map vm;
  if (!parse_command_line(
          argc, argv, options, "inputs", "attn import [options] CHECKPOINT -o MODEL.safetensors",
          "Converts a public ViT checkpoint into an attnkit model file, checking every\n"
          "tensor's name and shape. Formats:\n"
          "  timm         a timm Hub repository: model.safetensors + config.json\n"
          "  hf           transformers ViT/DeiT: model.safetensors + config.json +\n"
          "               preprocessor_config.json\n"
          "  torchvision  a vit_* state dict saved as .safetensors\n"
          "The model's preprocessing and class names travel in the file.\n\n"
          "Example:\n"
          "  attn import vit_base_patch16_224.augreg2_in21k_ft_in1k/ -o vit-b16.safetensors",
          vm)) {
    return kExitOk;
  }
  if (inputs.size() != 1) throw UsageError("give exactly one checkpoint to import");
  if (output.empty()) throw UsageError("--output is required");
  const std::string& input = inputs.front();
  // The output must not replace the checkpoint it is read from (memory-mapped while importing).
  std::vector<std::string> sources = {input, labels_file};
  std::error_code ec;
  if (std::filesystem::is_directory(input, ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(input, ec)) {
      sources.push_back(entry.path().string());
    }
  }
  for (const auto& source_file : sources) {
    if (same_file(output, source_file)) {
      throw UsageError("--output " + output + " is the same file as " + source_file +
                       ", which it is made from; choose another name");
    }
  }
  try {
    const auto chosen = format == "auto" ? vision::detect_checkpoint_format(input)
                                         : vision::checkpoint_format_from_string(format);
    vision::ImportOptions import_options;
    import_options.num_heads = heads;
    auto imported = vision::import_checkpoint(input, chosen, import_options);
    if (!labels_file.empty()) {
      std::ifstream in(labels_file);
      if (!in) throw vision::CheckpointError(labels_file + ": cannot open for reading");
      imported.info.labels.clear();
      for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) imported.info.labels.push_back(line);
      }
      if (static_cast<int64_t>(imported.info.labels.size()) != imported.config.num_classes) {
        throw vision::CheckpointError(labels_file + ": " +
                                      std::to_string(imported.info.labels.size()) + " labels for " +
                                      std::to_string(imported.config.num_classes) + " classes");
      }
    }
    if (!interpolation.empty()) {
      imported.info.preprocess.interpolation = vision::interpolation_from_string(interpolation);
    }
    if (vm.count("crop-pct")) {
      if (!(crop_pct > 0.0 && crop_pct <= 1.0)) {
        throw UsageError("--crop-pct must be in (0, 1], got " + std::to_string(crop_pct));
      }
      imported.info.preprocess.crop_pct = crop_pct;
    }
    if (!source.empty()) imported.info.source = source;

    vision::VisionTransformer model(imported.config);
    vision::load_tensors_strict(*model, imported.tensors, input);
    vision::save_model(output, *model, imported.info);
    int64_t parameters = 0;
    for (const auto& p : model->parameters()) parameters += p.numel();
    std::cerr << "attn import: " << input << " (" << vision::to_string(chosen) << ") -> " << output
              << ": ViT dim " << imported.config.dim << ", depth " << imported.config.depth
              << ", heads " << imported.config.num_heads << ", patch " << imported.config.patch_size
              << ", " << imported.config.image_height << "x" << imported.config.image_width << ", "
              << parameters << " parameters, " << imported.info.labels.size() << " labels"
              << std::endl;
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  } catch (const vision::Error& e) {
    print_error("import", e.what());
    return kExitBadModel;
  }
  return kExitOk;
}

}  // namespace attnkit::apps
