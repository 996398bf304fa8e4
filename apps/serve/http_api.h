// apps/serve/http_api.h: the routes of `attn serve`: the page, the JSON API and the overlay PNGs,
// with the server's limits applied to every request.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "apps/serve/image_list.h"

namespace httplib {
class Server;
}

namespace attnkit::apps {

class Analyzer;
class AnalysisCache;
class WorkGate;

/// What one request may cost the server.
struct ServeLimits {
  size_t max_body_bytes = 25u << 20;  ///< larger request bodies get 413
  int default_topk = 5;               ///< predictions per analysis unless ?topk= says
  int body_seconds = 30;              ///< longest a request body may take to arrive (408)
  size_t max_headers = 100;           ///< more request headers get 431
  size_t max_form_parts = 16;         ///< more multipart parts get 400
  /// Host header values (without the port) the server answers; empty = any. A server on
  /// loopback names its own, so that a web page whose domain is rebound to 127.0.0.1 cannot
  /// read it (DNS rebinding).
  std::vector<std::string> allowed_hosts;
};

/// Everything a request may touch; owned by the caller, outliving the server.
struct ServeState {
  std::vector<std::unique_ptr<Analyzer>>& workers;  ///< one per WorkGate worker
  WorkGate& gate;
  AnalysisCache& cache;
  const std::vector<ListedImage>& images;
  ServeLimits limits;
};

/// Installs the routes and the error handling on `server`: every error is a JSON body
/// {"error": "..."} with a 4xx or 5xx status.
void install_routes(httplib::Server& server, ServeState& state);

}  // namespace attnkit::apps
