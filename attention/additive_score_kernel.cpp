// attention/additive_score_kernel.cpp: one pass of add, tanh and dot product per cell, cloned
// per instruction set. Built with -fopenmp-simd (no OpenMP runtime: the simd pragma only).
#include "attention/additive_score_kernel.h"

#include <cmath>

#ifdef ATTNKIT_HAVE_LIBMVEC
// glibc declares its vector tanhf variants only under -ffast-math; this says the same without
// fast math's other effects, so the loop below calls _ZGV{b,d,e}N*v_tanhf from libmvec.
extern "C" float tanhf(float) noexcept __attribute__((__simd__("notinbranch")));
#endif

namespace attnkit::attention {

__attribute__((target_clones("avx512f", "avx2", "default"))) void additive_scores(
    const float* keys, const float* queries, const float* w, float bias, int64_t cells,
    int64_t group, int64_t width, float* out) {
  for (int64_t g = 0; g < group; ++g) {
    const float* q = queries + g * width;
    for (int64_t l = 0; l < cells; ++l) {
      const float* k = keys + l * width;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t a = 0; a < width; ++a) sum += w[a] * tanhf(k[a] + q[a]);
      out[g * cells + l] = sum + bias;
    }
  }
}

}  // namespace attnkit::attention
