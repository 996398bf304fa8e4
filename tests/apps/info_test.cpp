// tests/apps/info_test.cpp: `attn info` (text and --json) and `attn --version --verbose`, on this
// CPU and on pretended ones ($ATTNKIT_CPU_FEATURES).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/apps/cli_support.h"

namespace attnkit::apps {
namespace {

using nlohmann::json;

const char* kAmx = "avx2 fma avx512f avx512_bf16 avx512_vnni amx_tile amx_bf16";

TEST(InfoCli, JsonSchema) {
  const auto r = run_attn("info --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = json::parse(r.out);
  EXPECT_EQ(doc["version"], ATTNKIT_VERSION);
  EXPECT_FALSE(doc["cpu"]["model"].get<std::string>().empty());
  const auto from = doc["cpu"]["features_from"].get<std::string>();
  EXPECT_TRUE(from == "cpuid" || from == "/proc/cpuinfo") << from;
  for (const char* name : {"avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16",
                           "avx512_vnni", "avx_vnni"}) {
    EXPECT_TRUE(doc["cpu"]["features"][name].is_boolean()) << name;
  }
  EXPECT_GE(doc["cores"].get<int>(), 1);
  EXPECT_GE(doc["threads"].get<int>(), 1);
  EXPECT_TRUE(doc["blas"]["library"].is_string());
  EXPECT_TRUE(doc["blas"]["openblas"].is_boolean());
  // The kernel set OpenBLAS chose: asked of the loaded library itself.
  EXPECT_EQ(doc["blas"]["openblas_core"].get<std::string>().empty(),
            !doc["blas"]["openblas"].get<bool>())
      << doc["blas"];
  EXPECT_EQ(doc["libtorch"].get<std::string>().rfind("1.", 0), 0u) << doc["libtorch"];
  EXPECT_TRUE(doc["opencv"].is_string());
  EXPECT_TRUE(doc["mkldnn"].is_boolean());
  EXPECT_TRUE(doc["quantized_engines"].is_array());
  const bool native = doc["cpu"]["features"]["avx512_bf16"].get<bool>() ||
                      doc["cpu"]["features"]["amx_bf16"].get<bool>();
  EXPECT_EQ(doc["defaults"]["training_precision"], native ? "bf16" : "fp32");
  EXPECT_EQ(doc["defaults"]["inference_precision"], "fp32");
  const auto kernel = doc["defaults"]["fp32_inference_kernel"].get<std::string>();
  EXPECT_EQ(kernel, doc["mkldnn"].get<bool>() ? "onednn" : "blas");
  const auto auto_precision = doc["defaults"]["inference_precision_auto"].get<std::string>();
  EXPECT_EQ(auto_precision, native                                       ? "bf16"
                            : doc["cpu"]["features"]["avx2"].get<bool>() ? "int8"
                                                                         : "fp32");
}

TEST(InfoCli, TextAndVersionVerboseAgree) {
  const auto info = run_attn("info");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  for (const char* part : {"attnkit ", "cpu:", "avx512_bf16", "amx_bf16", "threads",
                           "blas:", "libtorch:", "opencv:", "training:", "inference: fp32"}) {
    EXPECT_NE(info.out.find(part), std::string::npos) << part << "\n" << info.out;
  }
  const auto verbose = run_attn("--version --verbose");
  ASSERT_EQ(verbose.exit_code, 0) << verbose.err;
  EXPECT_EQ(verbose.out, info.out);
  EXPECT_EQ(run_attn("--version").out, std::string("attn ") + ATTNKIT_VERSION + "\n");
}

TEST(InfoCli, PretendedCpusChooseTheirPrecision) {
  {
    PretendCpu cpu(kAvx2OnlyCpu);
    const auto doc = json::parse(run_attn("info --json").out);
    EXPECT_EQ(doc["cpu"]["features_from"], "ATTNKIT_CPU_FEATURES");
    EXPECT_TRUE(doc["cpu"]["features"]["avx2"].get<bool>());
    EXPECT_FALSE(doc["cpu"]["features"]["avx512f"].get<bool>());
    EXPECT_EQ(doc["defaults"]["training_precision"], "fp32");
    EXPECT_EQ(doc["defaults"]["training_precision_reason"],
              "auto: this CPU has no native bf16: AVX2 only");
    EXPECT_EQ(doc["defaults"]["inference_precision_auto"], "int8");
  }
  PretendCpu cpu(kAmx);
  const auto doc = json::parse(run_attn("info --json").out);
  EXPECT_EQ(doc["defaults"]["training_precision"], "bf16");
  EXPECT_EQ(doc["defaults"]["inference_precision_auto"], "bf16");
  EXPECT_EQ(doc["defaults"]["inference_precision_auto_reason"], "auto: AMX-BF16");
}

}  // namespace
}  // namespace attnkit::apps
