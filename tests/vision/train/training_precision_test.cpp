// tests/vision/train/training_precision_test.cpp: CPU feature parsing and the training-precision
// decision as a pure function of a feature set (an AVX2-only CPU and an AMX one), whatever CPU
// runs the test.
#include <stdexcept>

#include <gtest/gtest.h>

#include "vision/cpu_features.h"
#include "vision/train/training_precision.h"

namespace attnkit::vision {
namespace {

// /proc/cpuinfo flags of the two CPUs these machines have (trimmed to the relevant part).
const char* kZen3Flags = "fpu sse4_2 avx f16c fma avx2 bmi2 sha_ni vaes vpclmulqdq";
const char* kSapphireRapidsFlags =
    "avx fma avx2 avx512f avx512dq avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8";

TEST(CpuFeatures, ParsesCpuinfoFlagsAndCommaLists) {
  const auto zen3 = parse_cpu_flags(kZen3Flags);
  EXPECT_TRUE(zen3.avx2);
  EXPECT_TRUE(zen3.fma);
  EXPECT_FALSE(zen3.avx512f);
  EXPECT_FALSE(zen3.native_bf16());
  const auto spr = parse_cpu_flags(kSapphireRapidsFlags);
  for (const auto& [name, present] : spr.list()) EXPECT_TRUE(present) << name;
  EXPECT_TRUE(spr.native_bf16());
  const auto listed = parse_cpu_flags("avx2,avx512f, avx512_bf16");
  EXPECT_TRUE(listed.avx2 && listed.avx512f && listed.avx512_bf16);
  EXPECT_FALSE(listed.amx_bf16);
  EXPECT_TRUE(listed.native_bf16());  // AVX512-BF16 alone is native bf16
  EXPECT_EQ(parse_cpu_flags("avx2").list().size(), 8u);
}

TEST(CpuFeatures, ThisCpuIsReadOnceWithAModelName) {
  const auto& f = cpu_features();
  EXPECT_EQ(&f, &cpu_features());
  EXPECT_FALSE(f.model.empty());
  EXPECT_FALSE(f.source.empty());
}

TEST(TrainingPrecision, AutoIsBf16OnlyWhereNative) {
  const auto avx2 = choose_training_precision("auto", parse_cpu_flags(kZen3Flags));
  EXPECT_FALSE(avx2.bf16);
  EXPECT_EQ(avx2.name(), "fp32");
  EXPECT_EQ(avx2.reason, "auto: this CPU has no native bf16: AVX2 only");
  EXPECT_TRUE(avx2.warning.empty());

  const auto amx = choose_training_precision("auto", parse_cpu_flags(kSapphireRapidsFlags));
  EXPECT_TRUE(amx.bf16);
  EXPECT_EQ(amx.reason, "auto: this CPU computes bf16 natively: AMX-BF16");

  const auto avx512 = choose_training_precision("auto", parse_cpu_flags("avx2 avx512f"));
  EXPECT_FALSE(avx512.bf16);
  EXPECT_EQ(avx512.reason, "auto: this CPU has no native bf16: AVX-512 without BF16");
}

TEST(TrainingPrecision, ExplicitChoicesWinAndSlowOnesWarn) {
  const auto avx2 = parse_cpu_flags(kZen3Flags);
  const auto amx = parse_cpu_flags(kSapphireRapidsFlags);
  EXPECT_FALSE(choose_training_precision("fp32", amx).bf16);
  EXPECT_TRUE(choose_training_precision("fp32", amx).warning.empty());
  const auto forced = choose_training_precision("bf16", avx2);
  EXPECT_TRUE(forced.bf16);
  EXPECT_NE(forced.warning.find("no native bf16 (AVX2 only)"), std::string::npos) << forced.warning;
  EXPECT_TRUE(choose_training_precision("bf16", amx).warning.empty());
  EXPECT_THROW(choose_training_precision("fp16", amx), std::invalid_argument);
}

}  // namespace
}  // namespace attnkit::vision
