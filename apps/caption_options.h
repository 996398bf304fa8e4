// apps/caption_options.h: the limits of --beam and --max-len, shared by `attn caption`, `attn
// overlay --method caption` and `attn eval captioner`.
#pragma once

#include <cstdint>
#include <string>

namespace attnkit::apps {

/// The longest caption any command decodes: decoding is linear in it, but a caption that long
/// is already a model that never says <end>.
constexpr int64_t kMaxCaptionWords = 1000;

/// "most words per caption (1 to 1000)": the --max-len help text.
std::string max_len_help();

/// Throws UsageError unless 1 <= max_len <= kMaxCaptionWords.
void check_max_len(int64_t max_len);

/// An empty string when 1 <= beam <= the vocabulary's size (beam search keeps at most one
/// hypothesis per word), else the error message naming the vocabulary size.
std::string beam_width_error(int64_t beam, int64_t vocabulary_size);

}  // namespace attnkit::apps
