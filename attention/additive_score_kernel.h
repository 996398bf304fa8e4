// attention/additive_score_kernel.h: the inner loop of additive (Bahdanau / SAT) attention
// scoring, w^T tanh(k + q) + b, for one item's cells and queries at once.
#pragma once

#include <cstdint>

namespace attnkit::attention {

/// out[g][l] = sum_a w[a] * tanh(keys[l][a] + queries[g][a]) + bias, for row-major
/// keys (cells, width), queries (group, width), w (width) and out (group, cells), all float32.
/// Vectorised for AVX-512, AVX2 or SSE, chosen at run time (glibc's libmvec tanhf, <= 3 ulp
/// per element), without writing the (group, cells, width) hidden layer anywhere.
void additive_scores(const float* keys, const float* queries, const float* w, float bias,
                     int64_t cells, int64_t group, int64_t width, float* out);

}  // namespace attnkit::attention
