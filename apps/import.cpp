// apps/import.cpp: `attn import`: a timm, Hugging Face or torchvision ViT checkpoint -> one
// attnkit .safetensors model file.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

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

/// Everything `attn import` is told, with its defaults.
struct ImportParams {
  std::vector<std::string> inputs;  ///< exactly one checkpoint
  std::string output;
  std::string format = "auto";
  std::string labels_file;    ///< class names, one per line; empty = the checkpoint's
  std::string interpolation;  ///< overrides the resize filter; empty = the checkpoint's
  std::string source;         ///< overrides the stored source text
  int64_t heads = 0;          ///< 0 = infer
  double crop_pct = 0.0;
  bool crop_pct_given = false;
};

const char* const kImportSummary =
    "Converts a public ViT checkpoint into an attnkit model file, checking every\n"
    "tensor's name and shape. Formats:\n"
    "  timm         a timm Hub repository: model.safetensors + config.json\n"
    "  hf           transformers ViT/DeiT: model.safetensors + config.json +\n"
    "               preprocessor_config.json\n"
    "  torchvision  a vit_* state dict saved as .safetensors\n"
    "The model's preprocessing and class names travel in the file.\n\n"
    "Example:\n"
    "  attn import vit_base_patch16_224.augreg2_in21k_ft_in1k/ -o vit-b16.safetensors";

/// The command line, checked; nullopt after --help. Throws UsageError.
std::optional<ImportParams> parse_import(int argc, char** argv) {
  ImportParams p;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")("inputs", po::value(&p.inputs)->multitoken(),
                                                    "checkpoint directory or .safetensors file")(
      "output,o", po::value(&p.output), "the attnkit model file to write (.safetensors)")(
      "format,f", po::value(&p.format)->default_value(p.format), "auto | timm | hf | torchvision")(
      "heads", po::value(&p.heads)->default_value(p.heads),
      "attention heads per block when the checkpoint cannot tell (0 = infer)")(
      "labels", po::value(&p.labels_file), "text file with one class name per line")(
      "interpolation", po::value(&p.interpolation),
      "override the resize filter: nearest|box|bilinear|hamming|bicubic|lanczos")(
      "crop-pct", po::value(&p.crop_pct),
      "override crop_pct (resize to size / crop_pct, then crop)")(
      "source", po::value(&p.source), "override the source text stored in the file");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "inputs",
                          "attn import [options] CHECKPOINT -o MODEL.safetensors", kImportSummary,
                          vm)) {
    return std::nullopt;
  }
  if (p.inputs.size() != 1) throw UsageError("give exactly one checkpoint to import");
  if (p.output.empty()) throw UsageError("--output is required");
  p.crop_pct_given = vm.count("crop-pct") > 0;
  return p;
}

/// The output must not replace a file it is made from (the checkpoint is memory-mapped while
/// importing). Throws UsageError.
void check_output_is_new(const ImportParams& p) {
  const std::string& input = p.inputs.front();
  std::vector<std::string> sources = {input, p.labels_file};
  std::error_code ec;
  if (std::filesystem::is_directory(input, ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(input, ec)) {
      sources.push_back(entry.path().string());
    }
  }
  for (const auto& source_file : sources) {
    if (same_file(p.output, source_file)) {
      throw UsageError("--output " + p.output + " is the same file as " + source_file +
                       ", which it is made from; choose another name");
    }
  }
}

/// --labels, --interpolation, --crop-pct and --source applied to the imported description.
/// Throws vision::CheckpointError for a labels file that does not fit, UsageError otherwise.
void apply_overrides(const ImportParams& p, vision::ImportedModel& imported) {
  if (!p.labels_file.empty()) {
    std::ifstream in(p.labels_file);
    if (!in) throw vision::CheckpointError(p.labels_file + ": cannot open for reading");
    imported.info.labels.clear();
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) imported.info.labels.push_back(line);
    }
    if (static_cast<int64_t>(imported.info.labels.size()) != imported.config.num_classes) {
      throw vision::CheckpointError(p.labels_file + ": " +
                                    std::to_string(imported.info.labels.size()) + " labels for " +
                                    std::to_string(imported.config.num_classes) + " classes");
    }
  }
  if (!p.interpolation.empty()) {
    imported.info.preprocess.interpolation = vision::interpolation_from_string(p.interpolation);
  }
  if (p.crop_pct_given) {
    if (!(p.crop_pct > 0.0 && p.crop_pct <= 1.0)) {
      throw UsageError("--crop-pct must be in (0, 1], got " + std::to_string(p.crop_pct));
    }
    imported.info.preprocess.crop_pct = p.crop_pct;
  }
  if (!p.source.empty()) imported.info.source = p.source;
}

/// Imports, checks every tensor against the model and writes the model file.
void import_to_file(const ImportParams& p) {
  const std::string& input = p.inputs.front();
  const auto chosen = p.format == "auto" ? vision::detect_checkpoint_format(input)
                                         : vision::checkpoint_format_from_string(p.format);
  vision::ImportOptions import_options;
  import_options.num_heads = p.heads;
  auto imported = vision::import_checkpoint(input, chosen, import_options);
  apply_overrides(p, imported);
  vision::VisionTransformer model(imported.config);
  vision::load_tensors_strict(*model, imported.tensors, input);
  vision::save_model(p.output, *model, imported.info);
  int64_t parameters = 0;
  for (const auto& parameter : model->parameters()) parameters += parameter.numel();
  const auto& c = imported.config;
  std::cerr << "attn import: " << input << " (" << vision::to_string(chosen) << ") -> " << p.output
            << ": ViT dim " << c.dim << ", depth " << c.depth << ", heads " << c.num_heads
            << ", patch " << c.patch_size << ", " << c.image_height << "x" << c.image_width << ", "
            << parameters << " parameters, " << imported.info.labels.size() << " labels"
            << std::endl;
}

}  // namespace

int run_import(int argc, char** argv) {
  const auto parsed = parse_import(argc, argv);
  if (!parsed) return kExitOk;
  check_output_is_new(*parsed);
  try {
    import_to_file(*parsed);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  } catch (const vision::ImportNeedsOption& e) {
    // The library names what is missing; the command line says how to give it.
    const std::string hint =
        e.missing() == "num_heads" ? "; pass --heads" : "; pass --format to say what it is";
    print_error("import", e.what() + hint);
    return kExitBadModel;
  } catch (const vision::Error& e) {
    print_error("import", e.what());
    return kExitBadModel;
  }
  return kExitOk;
}

}  // namespace attnkit::apps
