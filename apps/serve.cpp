// apps/serve.cpp: `attn serve`: a local HTTP server with a page for exploring attention maps and
// a JSON API for scripts, on cpp-httplib.
#include <httplib.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include <boost/program_options.hpp>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "apps/inference_precision_option.h"
#include "apps/serve/analysis_cache.h"
#include "apps/serve/analyzer.h"
#include "apps/serve/http_api.h"
#include "apps/serve/image_list.h"
#include "apps/serve/work_gate.h"
#include "vision/api/attnkit.h"
#include "vision/errors.h"

namespace attnkit::apps {
namespace {

namespace po = boost::program_options;

struct ServeParams {
  std::vector<std::string> directories;
  ServeModelFiles models;
  bool no_captioner = false;
  std::string host = "127.0.0.1";
  int port = 8080;
  int workers = 1;
  int queue = 8;
  double max_body_mb = 25;
  int cache = 16;
  double cache_mb = 1024;
  int timeout = 30;
  int topk = 5;
  int threads = 0;
};

const char* const kServeSummary =
    "Serves a page for exploring attention in the browser, and the JSON API it uses:\n"
    "drop a photo or pick one from the DIRs given, and see the top classes (click one\n"
    "for its gradient rollout), rollout with its discard ratio and head fusion, every\n"
    "layer x head class-token map, what any patch attends to (hover it), the caption\n"
    "with each word's map, and download the view as the PNG `attn overlay` draws.\n"
    "Listens on loopback unless --host says otherwise. Stop it with Ctrl-C.\n\n"
    "API (see the README): POST /api/analyze (the image as the body, or a multipart\n"
    "field 'image', or ?image=N), GET /api/map?id=..&method=.., GET /api/overlay?id=..,\n"
    "GET /api/images, GET /api/health.\n\n"
    "Examples:\n"
    "  attn serve samples/                 then open http://127.0.0.1:8080/\n"
    "  curl --data-binary @samples/fashion/test0000-ankle-boot.png \\\n"
    "      http://127.0.0.1:8080/api/analyze\n"
    "  attn serve --model vit-b16.safetensors --no-captioner --port 9000 photos/";

po::options_description serve_options(ServeParams& p) {
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "dirs", po::value(&p.directories)->multitoken(),
      "directories whose images the page lists (recursively)")(
      "model,m", po::value(&p.models.classifier),
      "ViT model file (default: the shipped Fashion-MNIST ViT)")(
      "captioner", po::value(&p.models.captioner),
      "captioner model file (default: the shipped scenes captioner)")(
      "no-captioner", po::bool_switch(&p.no_captioner), "load no captioner")(
      "host", po::value(&p.host)->default_value(p.host),
      "address to listen on: 127.0.0.1 = this machine only; 0.0.0.0 = every interface")(
      "port", po::value(&p.port)->default_value(p.port), "TCP port (0 = any free port)")(
      "workers", po::value(&p.workers)->default_value(p.workers),
      "analyses run at once (each worker holds its own copy of the models)")(
      "queue", po::value(&p.queue)->default_value(p.queue),
      "analyses that may wait for a worker; more get 503 with Retry-After")(
      "max-body-mb", po::value(&p.max_body_mb)->default_value(p.max_body_mb),
      "largest request body in MB (larger: 413)")(
      "cache", po::value(&p.cache)->default_value(p.cache),
      "analyses kept for map and overlay requests (least recently used go first)")(
      "cache-mb", po::value(&p.cache_mb)->default_value(p.cache_mb),
      "memory the kept analyses may use, in MB (a ViT-B/16 analysis holds about 25 MB)")(
      "timeout", po::value(&p.timeout)->default_value(p.timeout),
      "seconds a client may stay silent while sending or receiving before it is dropped, and "
      "the longest an upload may take to arrive")(
      "topk,k", po::value(&p.topk)->default_value(p.topk), "predictions per analysis")(
      "precision,p", po::value(&p.models.precision)->default_value(p.models.precision),
      kInferencePrecisionHelp)("threads,t", po::value(&p.threads)->default_value(p.threads),
                               kThreadsHelp);
  add_decoding_options(options, p.models.decoding);
  add_max_pixels_option(options);
  return options;
}

std::optional<ServeParams> parse_serve(int argc, char** argv) {
  ServeParams p;
  const auto options = serve_options(p);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, options, "dirs", "attn serve [options] [DIR...]",
                          kServeSummary, vm)) {
    return std::nullopt;
  }
  if (p.port < 0 || p.port > 65535) throw UsageError("--port must be 0 to 65535");
  if (p.workers < 1 || p.workers > 64) throw UsageError("--workers must be 1 to 64");
  if (p.queue < 0 || p.queue > 1000) throw UsageError("--queue must be 0 to 1000");
  if (!(p.max_body_mb > 0 && p.max_body_mb <= 4096)) {
    throw UsageError("--max-body-mb must be more than 0 and at most 4096");
  }
  if (p.cache < 1) throw UsageError("--cache must be at least 1");
  if (!(p.cache_mb > 0 && p.cache_mb <= 1e7)) {
    throw UsageError("--cache-mb must be more than 0 and at most 10000000");
  }
  if (p.timeout < 1) throw UsageError("--timeout must be at least 1 second");
  if (p.topk < 1) throw UsageError("--topk must be at least 1");
  check_decoding(p.models.decoding);
  if (p.no_captioner && !p.models.captioner.empty()) {
    throw UsageError("--captioner and --no-captioner exclude each other");
  }
  if (p.models.classifier.empty()) p.models.classifier = default_model_path("classifier");
  if (p.models.captioner.empty() && !p.no_captioner) {
    p.models.captioner = default_model_path("captioner");
  }
  return p;
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

/// One Analyzer per worker; nullopt after saying why the models cannot be used.
std::optional<std::vector<std::unique_ptr<Analyzer>>> load_workers(const ServeParams& p) {
  std::vector<std::unique_ptr<Analyzer>> workers;
  try {
    for (int i = 0; i < p.workers; ++i) workers.push_back(std::make_unique<Analyzer>(p.models));
  } catch (const vision::Error& e) {
    print_error("serve", e.what());
    return std::nullopt;
  } catch (const std::invalid_argument& e) {
    print_error("serve", e.what());
    return std::nullopt;
  }
  return workers;
}

}  // namespace

int run_serve(int argc, char** argv) {
  const auto parsed = parse_serve(argc, argv);
  if (!parsed) return kExitOk;
  const ServeParams& p = *parsed;
  set_threads(p.threads);
  std::vector<ListedImage> images;
  try {
    images = list_images(p.directories);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  for (const auto* path : {&p.models.classifier, &p.models.captioner}) {
    if (!path->empty() && !std::filesystem::exists(*path)) {
      print_error("serve", *path + ": no such model file");
      return kExitBadModel;
    }
  }
  auto workers = load_workers(p);
  if (!workers) return kExitBadModel;

  WorkGate gate(p.workers, p.queue);
  AnalysisCache cache(static_cast<size_t>(p.cache), static_cast<size_t>(p.cache_mb * 1048576.0));
  ServeState state{*workers, gate, cache, images, {}};
  state.limits.max_body_bytes = static_cast<size_t>(p.max_body_mb * 1048576.0);
  state.limits.default_topk = p.topk;
  state.limits.body_seconds = p.timeout;
  if (is_loopback(p.host)) state.limits.allowed_hosts = {"127.0.0.1", "localhost", "[::1]"};

  httplib::Server server;
  // Connections need threads beyond the workers and the queue, so that a full queue is
  // answered with 503 rather than left waiting for a thread.
  const int connection_threads = std::max(p.workers + p.queue + 4, 8);
  server.new_task_queue = [connection_threads] {
    return new httplib::ThreadPool(connection_threads);
  };
  server.set_payload_max_length(state.limits.max_body_bytes);
  server.set_read_timeout(p.timeout, 0);
  server.set_write_timeout(p.timeout, 0);
  // One request per connection: cpp-httplib 0.11 keeps a connection open after a response that
  // left a body unread (413, 408), and would read the rest of that body as new requests.
  server.set_keep_alive_max_count(1);
  server.set_default_headers(
      {{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "no-store"}});
  install_routes(server, state);

  const int port = p.port == 0 ? server.bind_to_any_port(p.host)
                               : (server.bind_to_port(p.host, p.port) ? p.port : -1);
  if (port <= 0) {
    print_error("serve", "cannot listen on " + p.host + ":" + std::to_string(p.port) +
                             " (in use, or not an address of this machine); try --port 0");
    return kExitUsage;
  }
  const std::string shown_host =
      p.host.find(':') != std::string::npos ? "[" + p.host + "]" : p.host;
  std::cout << "attn serve: listening on http://" << shown_host << ":" << port << "/ "
            << (is_loopback(p.host)
                    ? "(loopback only; --host 0.0.0.0 to listen on every interface)"
                    : "(every address of this machine: others on the network can reach it)")
            << std::endl;
  std::cerr << "attn serve: " << p.models.classifier
            << (p.models.captioner.empty() ? "" : " + " + p.models.captioner) << ", "
            << images.size() << " listed images, " << p.workers << " worker(s), queue " << p.queue
            << "; Ctrl-C stops" << std::endl;
  if (!server.listen_after_bind()) {
    print_error("serve", "the server stopped with an error");
    return kExitSomeFailed;
  }
  return kExitOk;
}

}  // namespace attnkit::apps
