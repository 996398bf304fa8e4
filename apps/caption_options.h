// apps/caption_options.h: the limits of --beam and --max-len, shared by `attn caption`, `attn
// overlay --method caption` and `attn eval captioner`.
#pragma once

#include <cstdint>
#include <string>

#include "apps/program_options_fwd.h"

namespace attnkit::apps {

/// How captions are decoded (`attn caption`, `attn eval captioner`).
struct DecodingParams {
  int64_t beam = 3;      ///< beam width (1 = greedy)
  int64_t max_len = 20;  ///< most words per caption
};

/// --beam and --max-len into `decoding`.
void add_decoding_options(boost::program_options::options_description& options,
                          DecodingParams& decoding);

/// --beam >= 1 and --max-len in range. Throws UsageError.
void check_decoding(const DecodingParams& decoding);

/// --data must name a Karpathy split JSON; --images defaults to the JSON's folder. Throws
/// UsageError.
void check_split_json(const std::string& data, std::string& images);

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
