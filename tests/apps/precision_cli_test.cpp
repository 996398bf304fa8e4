// tests/apps/precision_cli_test.cpp: `--precision` on the commands that run models: the same
// answers as fp32 on the shipped models, the choice stated, bad values refused, bench rows.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/apps/cli_support.h"

namespace attnkit::apps {
namespace {

using nlohmann::json;

const std::string kFashion = std::string(ATTNKIT_SOURCE_DIR) + "/samples/fashion";
const std::string kScenes = std::string(ATTNKIT_SOURCE_DIR) + "/samples/scenes";

std::vector<std::string> top1_labels(const std::string& out) {
  std::vector<std::string> labels;
  const auto doc = json::parse(out);
  for (const auto& r : doc["results"]) {
    labels.push_back(r["predictions"][0]["label"].get<std::string>());
  }
  return labels;
}

TEST(PrecisionCli, ClassifyGivesFp32sClassesAtEveryPrecision) {
  const auto fp32 = run_attn("classify --json " + kFashion);
  ASSERT_EQ(fp32.exit_code, 0) << fp32.err;
  EXPECT_EQ(fp32.err.find("precision:"), std::string::npos) << "fp32 is the quiet default";
  const auto expected = top1_labels(fp32.out);
  ASSERT_EQ(expected.size(), 10u);
  for (const std::string precision : {"bf16", "int8", "auto"}) {
    const auto r = run_attn("classify --json --precision " + precision + " " + kFashion);
    ASSERT_EQ(r.exit_code, 0) << precision << ": " << r.err;
    EXPECT_EQ(top1_labels(r.out), expected) << precision;
    EXPECT_NE(r.err.find("attn classify: precision: "), std::string::npos) << r.err;
  }
}

TEST(PrecisionCli, PretendedCpusGetTheirAutoAndAWarningWhereSlow) {
  {
    PretendCpu cpu(kAvx2OnlyCpu);
    const auto r = run_attn("classify --precision auto " + kFashion + "/test0000-ankle-boot.png");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("precision: int8 (auto: AVX2 only)"), std::string::npos) << r.err;
    const auto bf16 =
        run_attn("classify --precision bf16 " + kFashion + "/test0000-ankle-boot.png");
    EXPECT_EQ(bf16.exit_code, 0) << bf16.err;
    EXPECT_NE(bf16.err.find("warning: bf16 requested, but this CPU has no native bf16"),
              std::string::npos)
        << bf16.err;
  }
  PretendCpu cpu("avx2 fma avx512f avx512_bf16 amx_tile amx_bf16");
  const auto r = run_attn("classify --precision auto " + kFashion + "/test0000-ankle-boot.png");
  EXPECT_NE(r.err.find("precision: bf16 (auto: AMX-BF16)"), std::string::npos) << r.err;
}

TEST(PrecisionCli, BadValuesAreUsageErrorsOnEveryCommand) {
  const std::vector<std::string> commands = {"classify " + kFashion,         "overlay " + kFashion,
                                             "caption " + kScenes,           "eval classifier",
                                             "eval captioner --data x.json", "bench"};
  for (const auto& command : commands) {
    const auto r = run_attn(command + " --precision fp16");
    EXPECT_EQ(r.exit_code, 2) << command << ": " << r.err;
    EXPECT_NE(r.err.find("--precision must be fp32, bf16, int8 or auto, got 'fp16'"),
              std::string::npos)
        << command << ": " << r.err;
  }
}

TEST(PrecisionCli, CaptionAndOverlayRunReduced) {
  const auto fp32 = run_attn("caption --json " + kScenes);
  ASSERT_EQ(fp32.exit_code, 0) << fp32.err;
  const auto int8 = run_attn("caption --json --precision int8 " + kScenes);
  ASSERT_EQ(int8.exit_code, 0) << int8.err;
  const auto a = json::parse(fp32.out)["results"];
  const auto b = json::parse(int8.out)["results"];
  ASSERT_EQ(a.size(), b.size());
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i]["caption"] == b[i]["caption"];
  EXPECT_GE(same, static_cast<int>(a.size()) - 1) << fp32.out << "\n" << int8.out;

  attnkit::testing::TempDir tmp;
  for (const std::string method : {"rollout", "grad-rollout"}) {
    const auto r = run_attn("overlay --precision bf16 --method " + method + " -o " +
                            tmp.file(method + ".png") + " " + kFashion + "/test0009-sneaker.png");
    EXPECT_EQ(r.exit_code, 0) << method << ": " << r.err;
  }
}

TEST(PrecisionCli, BenchTimesEachPrecisionWithItsRuns) {
  const auto r =
      run_attn("bench --arch vit_tiny_patch16_224 -b 1 -p fp32 int8 --runs 2 --warmup 0 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[0]["precision"], "fp32");
  EXPECT_EQ(rows[1]["precision"], "int8");
  for (const auto& row : rows) {
    EXPECT_EQ(row["ms_per_batch_runs"].size(), 2u);
    EXPECT_GT(row["ms_per_batch"].get<double>(), 0.0);
  }
  EXPECT_DOUBLE_EQ(rows[0]["speedup_vs_first_precision"].get<double>(), 1.0);
}

}  // namespace
}  // namespace attnkit::apps
