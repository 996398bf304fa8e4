// apps/inference_precision_option.h: the `--precision fp32|bf16|int8|auto` option of the commands
// that run models (classify, overlay, caption, eval, bench) and the line that states the choice.
#pragma once

#include <string>

#include "vision/models/inference_precision.h"

namespace attnkit::apps {

/// The help text of --precision for inference.
extern const char* const kInferencePrecisionHelp;

/// Resolves --precision (`requested`) on this CPU. Anything but fp32 is stated on stderr
/// ("attn classify: precision: bf16 (auto: AMX-BF16)"), with a warning where it runs slowly.
/// Throws UsageError for a bad value.
vision::InferencePrecision choose_precision_option(const std::string& command,
                                                   const std::string& requested);

}  // namespace attnkit::apps
