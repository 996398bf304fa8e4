// apps/serve/http_api.cpp: the handlers: decode and check uploads, take a worker or refuse with
// 503, answer from the cache, and turn every failure into a JSON error with the right status.
#include "apps/serve/http_api.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <tuple>

#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "apps/json_output.h"
#include "apps/serve/analysis_cache.h"
#include "apps/serve/analyzer.h"
#include "apps/serve/web_assets.h"
#include "apps/serve/work_gate.h"
#include "vision/errors.h"
#include "vision/image/image_header.h"
#include "vision/image/image_io.h"

namespace attnkit::apps {
namespace {

using nlohmann::json;

/// What a client refused with 503 is told to wait.
constexpr int kRetryAfterSeconds = 2;

/// A request the server refuses, with the status to refuse it with.
struct HttpError : std::runtime_error {
  HttpError(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

void send_json(httplib::Response& res, const std::string& text, int status = 200) {
  res.status = status;
  res.set_content(text, "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, json_text(json{{"error", message}}), status);
}

QueryParams query_params(const httplib::Request& req) {
  return QueryParams(req.params.begin(), req.params.end());
}

/// A whole number in [low, high] from a query parameter or path part. Throws HttpError 400.
int64_t parse_index(const std::string& text, const std::string& what, int64_t low, int64_t high) {
  size_t used = 0;
  int64_t value = 0;
  try {
    // Digits only: stoll would also take " 5" and "+5".
    if (!text.empty() && std::isdigit(static_cast<unsigned char>(text.front()))) {
      value = std::stoll(text, &used);
    }
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || value < low || value > high) {
    throw HttpError(400, what + " must be a whole number from " + std::to_string(low) + " to " +
                             std::to_string(high) + ", got '" + text + "'");
  }
  return value;
}

/// ?maps=rollout,cls: which of Analyzer::first_map_names() an analysis brings ("" = none).
std::vector<std::string> map_names(const std::string& list) {
  const auto& known = Analyzer::first_map_names();
  std::vector<std::string> names;
  std::string::size_type start = 0;
  while (start <= list.size() && !list.empty()) {
    const auto comma = std::min(list.find(',', start), list.size());
    const auto name = list.substr(start, comma - start);
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      throw HttpError(400, "maps: unknown map '" + name + "' (rollout, grad-rollout, cls)");
    }
    names.push_back(name);
    start = comma + 1;
  }
  return names;
}

/// An upload as it was sent: the bytes, and the name to call them by.
struct Upload {
  std::string bytes;
  std::string name = "upload";
};

/// Collects body bytes while they stay within the size limit and the deadline: httplib's
/// timeout is per read, so a client sending a byte a second would otherwise hold a thread for
/// as long as it liked.
class BodyCollector {
 public:
  explicit BodyCollector(const ServeLimits& limits)
      : limits_(limits),
        deadline_(std::chrono::steady_clock::now() + std::chrono::seconds(limits.body_seconds)) {}

  /// Appends to `out`; false (stop reading) once too large or too late.
  bool append(std::string& out, const char* data, size_t length) {
    too_large_ = too_large_ || out.size() + length > limits_.max_body_bytes;
    too_slow_ = too_slow_ || std::chrono::steady_clock::now() > deadline_;
    if (too_large_ || too_slow_) return false;
    out.append(data, length);
    return true;
  }

  /// Starts a multipart part; false (stop reading) past the part limit or the deadline. The
  /// part's headers count against the size limit.
  bool start_part(std::vector<httplib::MultipartFormData>& parts,
                  const httplib::MultipartFormData& part) {
    too_many_parts_ = too_many_parts_ || parts.size() >= limits_.max_form_parts;
    header_bytes_ += part.name.size() + part.filename.size() + part.content_type.size();
    too_large_ = too_large_ || header_bytes_ > limits_.max_body_bytes;
    too_slow_ = too_slow_ || std::chrono::steady_clock::now() > deadline_;
    if (too_many_parts_ || too_large_ || too_slow_) return false;
    parts.push_back(part);
    return true;
  }

  /// Throws HttpError 413, 408 or 400 when the body was cut off for its size, its slowness or
  /// its number of parts.
  void check() const {
    if (too_large_) {
      throw HttpError(413, "the upload is larger than this server accepts (--max-body-mb)");
    }
    if (too_slow_) {
      throw HttpError(408, "the upload took longer than " + std::to_string(limits_.body_seconds) +
                               " s to arrive (--timeout)");
    }
    if (too_many_parts_) {
      throw HttpError(400, "the multipart form has more than " +
                               std::to_string(limits_.max_form_parts) + " parts");
    }
  }

 private:
  const ServeLimits& limits_;
  std::chrono::steady_clock::time_point deadline_;
  size_t header_bytes_ = 0;
  bool too_large_ = false;
  bool too_slow_ = false;
  bool too_many_parts_ = false;
};

/// Reads the request body: the raw bytes, or a multipart form's "image" field (else its first
/// file). Reading it here, not through httplib's form parsing, keeps a form-encoded body (what
/// `curl --data-binary` declares) from being read as parameters. Throws HttpError: 413 past the
/// size limit, 408 past the deadline, 400 for a body with no image.
Upload read_upload(const httplib::Request& req, const httplib::ContentReader& reader,
                   const ServeLimits& limits) {
  BodyCollector collector(limits);
  Upload upload;
  if (req.is_multipart_form_data()) {
    std::vector<httplib::MultipartFormData> parts;
    reader(
        [&](const httplib::MultipartFormData& part) { return collector.start_part(parts, part); },
        [&](const char* data, size_t length) {
          return parts.empty() || collector.append(parts.back().content, data, length);
        });
    collector.check();
    httplib::MultipartFormData* file = nullptr;
    for (auto& part : parts) {
      if (part.name == "image" || (file == nullptr && !part.filename.empty())) file = &part;
      if (part.name == "image") break;
    }
    if (file == nullptr) {
      throw HttpError(400, "the multipart form has no file (send it as 'image')");
    }
    if (file->content.empty()) throw HttpError(400, "the uploaded file is empty");
    if (!file->filename.empty()) upload.name = file->filename;
    upload.bytes = std::move(file->content);
    return upload;
  }
  reader([&](const char* data, size_t length) {
    return collector.append(upload.bytes, data, length);
  });
  collector.check();
  if (upload.bytes.empty()) {
    throw HttpError(400,
                    "no image: send its bytes as the request body (curl --data-binary @photo.jpg), "
                    "as a multipart form field 'image', or ?image=N for a listed image");
  }
  return upload;
}

/// Checks what an upload's header declares, before it waits for a worker: not an image 415,
/// too many pixels 413.
void check_upload_header(const std::string& bytes, const std::string& name) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto dimensions = vision::read_image_dimensions(data, bytes.size());
  if (!dimensions) {
    throw HttpError(415, name +
                             ": not an image attn can read (PNG, JPEG, WebP, BMP, TIFF or "
                             "PNM), or its header is cut short");
  }
  const int64_t limit = vision::max_image_pixels();
  const int64_t width = dimensions->width;
  const int64_t height = dimensions->height;
  if (width > 0 && height > 0 && (width > limit || height > limit / width)) {
    throw HttpError(413, name + ": " + std::to_string(width) + "x" + std::to_string(height) +
                             " is more pixels than this server's limit of " +
                             std::to_string(limit) + " (--max-pixels)");
  }
}

/// Decodes an upload whose header passed: undecodable (truncated, corrupt) is 400.
cv::Mat decode_upload(const std::string& bytes, const std::string& name) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  try {
    return vision::decode_image_rgb(std::vector<unsigned char>(data, data + bytes.size()), name);
  } catch (const vision::ImageError& e) {
    throw HttpError(400, e.what());
  }
}

class Routes {
 public:
  explicit Routes(ServeState& state) : s_(state) {}

  void health(const httplib::Request&, httplib::Response& res) const {
    const auto& vit = s_.workers.front()->vit();
    const auto* captioner = s_.workers.front()->captioner();
    const auto cache = s_.cache.usage();
    const auto load = s_.gate.load();
    const auto& files = s_.workers.front()->files();
    const json document{{"status", "ok"},
                        {"model",
                         {{"path", files.classifier},
                          {"classes", vit.config.num_classes},
                          {"layers", vit.config.depth},
                          {"heads", vit.config.num_heads},
                          {"image_size", {vit.config.image_height, vit.config.image_width}}}},
                        {"captioner", captioner ? json{{"path", files.captioner}} : json(nullptr)},
                        {"images", s_.images.size()},
                        {"cache",
                         {{"entries", cache.entries},
                          {"capacity", cache.capacity},
                          {"bytes", cache.bytes},
                          {"max_bytes", cache.max_bytes}}},
                        {"work",
                         {{"running", load.running},
                          {"waiting", load.waiting},
                          {"workers", load.workers},
                          {"queue", load.queue}}}};
    send_json(res, json_text(document));
  }

  void list_images(const httplib::Request&, httplib::Response& res) const {
    json list = json::array();
    for (size_t i = 0; i < s_.images.size(); ++i) {
      list.push_back({{"index", i}, {"name", s_.images[i].name}, {"bytes", s_.images[i].bytes}});
    }
    send_json(res, json_text(json{{"images", list}}));
  }

  void image_file(const httplib::Request& req, httplib::Response& res) const {
    const auto& image = listed(req.matches[1]);
    res.set_content(read_listed(image), image_content_type(image.path).c_str());
  }

  void analyze(const httplib::Request& req, httplib::Response& res,
               const httplib::ContentReader& reader) {
    int topk = s_.limits.default_topk;
    for (const auto& [name, value] : req.params) {
      if (name != "topk" && name != "image" && name != "maps") {
        throw HttpError(400, "unknown parameter '" + name + "' (topk, image, maps)");
      }
    }
    auto first_maps = Analyzer::first_map_names();
    if (req.has_param("maps")) first_maps = map_names(req.get_param_value("maps"));
    if (req.has_param("topk")) {
      topk = static_cast<int>(parse_index(req.get_param_value("topk"), "topk", 1, 1000));
    }
    Upload upload;
    if (req.has_param("image")) {
      const auto& image = listed(req.get_param_value("image"));
      upload.bytes = read_listed(image);
      upload.name = image.name;
      bool has_body = false;
      reader([&](const char*, size_t length) {
        has_body = has_body || length > 0;
        return !has_body;
      });
      if (has_body) throw HttpError(400, "?image=N analyses a listed image: send no body");
    } else {
      upload = read_upload(req, reader, s_.limits);
    }
    check_upload_header(upload.bytes, upload.name);
    // Decoding takes the worker too: a 100-megapixel image needs 300 MB to decode.
    auto ticket = enter();
    const auto decode_start = std::chrono::steady_clock::now();
    auto rgb = decode_upload(upload.bytes, upload.name);
    const double decode_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - decode_start)
            .count();
    upload.bytes.clear();
    auto analysis = s_.workers[ticket.worker()]->analyze(std::move(rgb), upload.name, topk,
                                                         first_maps, decode_ms);
    s_.cache.put(analysis);
    send_json(res, analysis->document);
  }

  void map(const httplib::Request& req, httplib::Response& res) {
    const auto analysis = find_analysis(req);
    auto settings = settings_of(req);
    // Maps read from the analysis need no worker; any worker's Analyzer can read them.
    std::optional<WorkGate::Ticket> ticket;
    if (Analyzer::needs_model(settings)) ticket.emplace(enter());
    auto& analyzer = *s_.workers[ticket ? ticket->worker() : 0];
    send_json(res, json_text(analyzer.map_json(*analysis, settings)));
  }

  void overlay(const httplib::Request& req, httplib::Response& res) {
    const auto analysis = find_analysis(req);
    auto settings = settings_of(req);
    // Drawing takes a worker whatever the method: a panel of 144 head maps over a photo costs
    // as much as an analysis.
    auto ticket = enter();
    const auto png = s_.workers[ticket.worker()]->overlay_png(*analysis, settings);
    res.set_content(reinterpret_cast<const char*>(png.data()), png.size(), "image/png");
  }

 private:
  const ListedImage& listed(const std::string& index) const {
    if (s_.images.empty()) throw HttpError(404, "no images are listed (give attn serve a DIR)");
    const auto i = parse_index(index, "image", 0, 1'000'000'000);
    if (i >= static_cast<int64_t>(s_.images.size())) {
      throw HttpError(404, "no listed image " + index + " (there are " +
                               std::to_string(s_.images.size()) + ": 0 to " +
                               std::to_string(s_.images.size() - 1) + ")");
    }
    return s_.images[i];
  }

  /// The listed file's bytes, if it is still a regular file (not a link put there since the
  /// listing) within the body size limit.
  std::string read_listed(const ListedImage& image) const {
    std::error_code ec;
    const auto status = std::filesystem::symlink_status(image.path, ec);
    if (ec || !std::filesystem::is_regular_file(status)) {
      throw HttpError(404, image.name + " can no longer be read");
    }
    const auto size = std::filesystem::file_size(image.path, ec);
    if (ec || size > s_.limits.max_body_bytes) {
      throw HttpError(413, image.name + " is larger than this server reads (--max-body-mb)");
    }
    std::ifstream in(image.path, std::ios::binary);
    if (!in) throw HttpError(404, image.name + " can no longer be read");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  WorkGate::Ticket enter() {
    auto ticket = s_.gate.enter();
    if (!ticket) {
      throw HttpError(503, "busy: every worker is running and the queue is full; retry in " +
                               std::to_string(kRetryAfterSeconds) + " s");
    }
    return std::move(*ticket);
  }

  std::shared_ptr<const Analysis> find_analysis(const httplib::Request& req) const {
    if (!req.has_param("id")) throw HttpError(400, "id is missing (from POST /api/analyze)");
    auto analysis = s_.cache.get(req.get_param_value("id"));
    if (!analysis) {
      throw HttpError(404, "no analysis '" + req.get_param_value("id") +
                               "' (unknown, or evicted from the cache: analyse the image again)");
    }
    return analysis;
  }

  static OverlaySettings settings_of(const httplib::Request& req) {
    try {
      return overlay_settings_from_query(query_params(req), {"id"});
    } catch (const UsageError& e) {
      throw HttpError(400, e.what());
    }
  }

  ServeState& s_;
};

/// The host part of a Host header: "127.0.0.1", "localhost", "[::1]" without ":PORT".
std::string host_without_port(const std::string& host) {
  if (!host.empty() && host.front() == '[') return host.substr(0, host.find(']') + 1);
  return host.substr(0, host.find(':'));
}

/// Requests refused from their headers, before their body is read: a Host this server does not
/// answer to, a body where none is taken (httplib would read it whole before finding no route),
/// too many headers, a compressed body (a small gzip can inflate past any limit), a declared
/// length that is not a number or is over the limit.
std::optional<HttpError> refusal_before_reading(const httplib::Request& req,
                                                const ServeLimits& limits) {
  const auto& hosts = limits.allowed_hosts;
  if (!hosts.empty() && req.has_header("Host") &&
      std::find(hosts.begin(), hosts.end(), host_without_port(req.get_header_value("Host"))) ==
          hosts.end()) {
    return HttpError(403, "Host '" + req.get_header_value("Host") +
                              "' is not this server's address (it answers to 127.0.0.1, "
                              "localhost and [::1])");
  }
  const bool upload = req.method == "POST" && req.path == "/api/analyze";
  if (!upload && req.method != "GET" && req.method != "HEAD") {
    return HttpError(
        405, req.method + " is not accepted on " + req.path + " (GET, or POST /api/analyze)");
  }
  const bool has_body =
      req.has_header("Transfer-Encoding") ||
      (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
  if (!upload && has_body) return HttpError(400, req.path + " takes no request body");
  if (req.headers.size() > limits.max_headers) {
    return HttpError(431, std::to_string(req.headers.size()) + " request headers; at most " +
                              std::to_string(limits.max_headers) + " are accepted");
  }
  const auto encoding = req.get_header_value("Content-Encoding");
  if (!encoding.empty() && encoding != "identity") {
    return HttpError(
        415, "Content-Encoding " + encoding + " is not accepted: send the bytes as they are");
  }
  const auto length = req.get_header_value("Content-Length");
  if (length.find_first_not_of("0123456789") != std::string::npos) {
    return HttpError(400, "Content-Length is not a number: '" + length + "'");
  }
  if (!length.empty() && (length.size() > 18 || std::stoull(length) > limits.max_body_bytes)) {
    return HttpError(413, "the request body is larger than this server accepts (--max-body-mb)");
  }
  return std::nullopt;
}

/// What went wrong, for the statuses httplib sets by itself.
std::string status_text(int status, const std::string& path) {
  switch (status) {
    case 404:
      return "no such path: " + path;
    case 405:
      return "method not allowed on " + path;
    case 408:
      return "the request took too long to arrive (--timeout)";
    case 413:
      return "the request body is larger than this server accepts (--max-body-mb)";
    case 414:
      return "the request line is too long";
    case 416:
      return "range not satisfiable";
    default:
      return status < 500 ? "bad request" : "internal error";
  }
}

/// Runs a handler, turning what it throws into a JSON error.
template <class Handler>
httplib::Server::Handler guarded(Handler handler) {
  return [handler](const httplib::Request& req, httplib::Response& res) {
    try {
      handler(req, res);
    } catch (const HttpError& e) {
      send_error(res, e.status, e.what());
      if (e.status == 503) {
        res.set_header("Retry-After", std::to_string(kRetryAfterSeconds).c_str());
      }
      // The rest of a body cut off for its size or its slowness is not read: the connection
      // cannot carry another request.
      if (e.status == 408 || e.status == 413) res.set_header("Connection", "close");
    } catch (const std::invalid_argument& e) {  // settings the model cannot honour
      send_error(res, 400, e.what());
    } catch (const std::out_of_range& e) {  // a patch off the grid or the image
      send_error(res, 400, e.what());
    } catch (const vision::Error& e) {
      send_error(res, 400, e.what());
    } catch (const std::exception& e) {
      // The details (a LibTorch error carries a backtrace and source paths) go to the log only.
      std::cerr << "attn serve: error: " << req.method << " " << req.path << ": " << e.what()
                << std::endl;
      send_error(res, 500, "internal error (the server's log says more)");
    }
  };
}

/// guarded() for a handler that reads the request body itself.
template <class Handler>
httplib::Server::HandlerWithContentReader guarded_with_body(Handler handler) {
  return [handler](const httplib::Request& req, httplib::Response& res,
                   const httplib::ContentReader& reader) {
    guarded([&](const httplib::Request& q, httplib::Response& r) { handler(q, r, reader); })(req,
                                                                                             res);
  };
}

}  // namespace

void install_routes(httplib::Server& server, ServeState& state) {
  auto routes = std::make_shared<Routes>(state);
  const auto static_file = [](const httplib::Request& req, httplib::Response& res) {
    const auto* asset = find_web_asset(req.path);
    if (asset == nullptr) throw HttpError(404, "no such page: " + req.path);
    res.set_content(reinterpret_cast<const char*>(asset->data), asset->size, asset->content_type);
    // The page runs only its own script and style, and talks only to this server.
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                   "frame-ancestors 'none'");
  };
  server.Get("/", guarded(static_file));
  server.Get("/index.html", guarded(static_file));
  server.Get("/app.js", guarded(static_file));
  server.Get("/style.css", guarded(static_file));
  server.Get("/api/health", guarded([routes](const auto& q, auto& r) { routes->health(q, r); }));
  server.Get("/api/images",
             guarded([routes](const auto& q, auto& r) { routes->list_images(q, r); }));
  server.Get(R"(/api/images/(\d{1,9}))",
             guarded([routes](const auto& q, auto& r) { routes->image_file(q, r); }));
  server.Post("/api/analyze", guarded_with_body([routes](const auto& q, auto& r, const auto& b) {
                routes->analyze(q, r, b);
              }));
  server.Get("/api/map", guarded([routes](const auto& q, auto& r) { routes->map(q, r); }));
  server.Get("/api/overlay", guarded([routes](const auto& q, auto& r) { routes->overlay(q, r); }));

  const auto limits = state.limits;
  server.set_pre_routing_handler([limits](const httplib::Request& req, httplib::Response& res) {
    const auto refusal = refusal_before_reading(req, limits);
    if (!refusal) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, refusal->status, refusal->what());
    // The body, if any, is left unread: the connection cannot carry another request.
    res.set_header("Connection", "close");
    return httplib::Server::HandlerResponse::Handled;
  });
  // What httplib answers by itself (404 for an unknown path, 413 for a body over the limit,
  // 400 for a malformed request) gets a JSON body too.
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    send_error(res, res.status, status_text(res.status, req.path));
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                                  std::exception_ptr) { send_error(res, 500, "internal error"); });
}

}  // namespace attnkit::apps
