// apps/info.cpp: `attn info`: the CPU, its features, threads, BLAS, library versions and the
// precision defaults attnkit chooses from them, for bug reports and for timing comparisons.
#include <dlfcn.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include <ATen/Context.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/core/version.hpp>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "attention/linear.h"
#include "attention/packed_linear.h"
#include "vision/cpu_features.h"
#include "vision/models/inference_precision.h"
#include "vision/train/training_precision.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

/// The BLAS library file this process has mapped (LibTorch links libblas.so.3, which Debian's
/// alternatives point at OpenBLAS or the reference BLAS), else where the link resolves.
std::string loaded_blas() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const auto name = path.substr(path.rfind('/') + 1);
    if (name.rfind("libblas.so", 0) == 0 || name.rfind("libopenblas", 0) == 0) return path;
  }
  char resolved[PATH_MAX];
  if (realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3", resolved)) return resolved;
  return "";
}

/// The kernel set OpenBLAS chose at load ("SkylakeX", "Haswell", "Zen", or "Prescott" when it
/// did not recognise the CPU and fell back to generic SSE3 code), or "" without OpenBLAS.
std::string openblas_core() {
  using CoreName = char* (*)();
  auto core = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = core ? core() : nullptr;
  return name ? name : "";
}

std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

json collect_info() {
  const auto& cpu = vision::cpu_features();
  json features = json::object();
  for (const auto& [name, present] : cpu.list()) features[name] = present;
  json engines = json::array();
  for (const auto engine : at::globalContext().supportedQEngines()) {
    if (engine != at::QEngine::NoQEngine) engines.push_back(c10::toString(engine));
  }
  const auto training = vision::choose_training_precision("auto", cpu);
  const auto inference_auto = vision::choose_inference_precision("auto", cpu);
  const bool onednn_fp32 = attention::fp32_linear_kernel() == attention::Fp32LinearKernel::kOneDnn;
  const std::string blas = loaded_blas();
  // The oneDNN kernels a ViT-B-sized product (197 x 768 -> 768) runs on this CPU.
  json packed = nullptr;
  // bf16 below AVX-512: oneDNN's fp32 kernel, named "... (bf16 emulated)".
  if (attention::packed_linear_available()) {
    const auto weight = torch::zeros({768, 768});
    packed = {{"fp32", attention::PackedLinear(weight, {}, torch::kFloat).kernel_name(197)},
              {"bf16", attention::PackedLinear(weight, {}, torch::kBFloat16).kernel_name(197)}};
  }
  return {{"version", ATTNKIT_VERSION},
          {"cpu",
           {{"model", cpu.model},
            {"features", features},
            {"features_from", cpu.source},
            {"vector_units", vision::describe_vector_units(cpu)}}},
          {"cores", std::max(1u, std::thread::hardware_concurrency())},
          {"threads", default_threads()},
          {"blas",
           {{"library", blas},
            {"openblas", blas.find("openblas") != std::string::npos},
            {"openblas_core", openblas_core()}}},
          {"libtorch", torch_version()},
          {"opencv", CV_VERSION},
          {"mkldnn", at::hasMKLDNN()},
          {"packed_kernels", packed},
          {"quantized_engines", engines},
          {"defaults",
           {{"training_precision", training.name()},
            {"training_precision_reason", training.reason},
            {"inference_precision", "fp32"},
            {"inference_precision_auto", inference_auto.name()},
            {"inference_precision_auto_reason", inference_auto.reason},
            {"fp32_inference_kernel", onednn_fp32 ? "onednn" : "blas"}}}};
}

std::string yes_no(bool value) { return value ? "yes" : "no"; }

/// " (kernels: Haswell)"; for OpenBLAS's generic fallback on a CPU with AVX2, why it matters.
std::string blas_core_note(const json& info) {
  const auto core = info["blas"]["openblas_core"].get<std::string>();
  if (core.empty()) return "";
  std::string note = " (kernels: " + core + ")";
  if (core == "Prescott" && info["cpu"]["features"]["avx2"].get<bool>()) {
    note +=
        "\n           OpenBLAS did not recognise this CPU and runs generic SSE3 code: fp32\n"
        "           training here is several times slower than it could be (inference uses\n"
        "           oneDNN). OPENBLAS_CORETYPE=Haswell or SkylakeX, if the CPU has them, helps";
  }
  return note;
}

/// ", packed: brg:avx512_core, bf16 brg:avx512_core_amx_bf16", or "" without oneDNN.
std::string packed_note(const json& info) {
  const auto& packed = info["packed_kernels"];
  if (packed.is_null()) return ", not packed: attnkit was built without libdnnl-dev";
  return ", packed: " + packed["fp32"].get<std::string>() + "; bf16 " +
         packed["bf16"].get<std::string>();
}

void print_text(const json& info) {
  std::cout << "attnkit " << info["version"].get<std::string>() << "\n"
            << "cpu:       " << info["cpu"]["model"].get<std::string>() << " ("
            << info["cpu"]["vector_units"].get<std::string>() << "; features from "
            << info["cpu"]["features_from"].get<std::string>() << ")\n";
  for (const auto& [name, present] : info["cpu"]["features"].items()) {
    std::cout << "  " << pad_right(name, 12) << yes_no(present.get<bool>()) << "\n";
  }
  std::cout << "cores:     " << info["cores"] << " (attnkit uses " << info["threads"]
            << " threads without --threads)\n"
            << "blas:      " << info["blas"]["library"].get<std::string>() << blas_core_note(info)
            << "\n"
            << "libtorch:  " << info["libtorch"].get<std::string>() << " (oneDNN/MKLDNN "
            << (info["mkldnn"].get<bool>() ? "available" : "not available")
            << "; quantized engines:";
  for (const auto& engine : info["quantized_engines"])
    std::cout << " " << engine.get<std::string>();
  std::cout << ")\n"
            << "opencv:    " << info["opencv"].get<std::string>() << "\n"
            << "training:  " << info["defaults"]["training_precision"].get<std::string>() << " ("
            << info["defaults"]["training_precision_reason"].get<std::string>() << ")\n"
            << "inference: fp32 (matmuls: "
            << info["defaults"]["fp32_inference_kernel"].get<std::string>() << packed_note(info)
            << "); --precision auto = "
            << info["defaults"]["inference_precision_auto"].get<std::string>() << " ("
            << info["defaults"]["inference_precision_auto_reason"].get<std::string>() << ")\n";
}

}  // namespace

int run_info(int argc, char** argv) {
  bool as_json = false;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")("json", po::bool_switch(&as_json),
                                                    "print JSON");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "", "attn info [--json]",
                          "Prints attnkit's version, the CPU and the features that decide its\n"
                          "defaults (AVX2, AVX-512, bf16, AMX, VNNI), the threads it uses, the\n"
                          "BLAS and library versions, and the precision it chooses. Set\n"
                          "ATTNKIT_CPU_FEATURES=avx2,fma to see the choice for another CPU.",
                          vm)) {
    return kExitOk;
  }
  const auto info = collect_info();
  if (as_json) {
    std::cout << info.dump(2) << std::endl;
  } else {
    print_text(info);
  }
  if (!info["blas"]["openblas"].get<bool>()) {
    print_warning("info", "BLAS is not OpenBLAS (" + info["blas"]["library"].get<std::string>() +
                              "): fp32 matmuls run many times slower; install "
                              "libopenblas0-openmp");
  }
  return kExitOk;
}

}  // namespace attnkit::apps
