// apps/serve/web_assets.h: the page `attn serve` shows (apps/serve/web), compiled into the
// program.
#pragma once

#include <cstddef>
#include <string>

namespace attnkit::apps {

struct WebAsset {
  const char* path;          ///< "/index.html", "/app.js", ...
  const char* content_type;  ///< "text/html; charset=utf-8", ...
  const unsigned char* data;
  size_t size;
};

/// The file served at `path` ("/" is "/index.html"); nullptr for any other path.
const WebAsset* find_web_asset(const std::string& path);

}  // namespace attnkit::apps
