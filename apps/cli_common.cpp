// apps/cli_common.cpp: shared command-line plumbing.
#include "apps/cli_common.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>
#include <boost/program_options.hpp>

#include "vision/errors.h"
#include "vision/fnv1a.h"
#include "vision/image/image_io.h"
#include "vision/stderr_lock.h"

namespace attnkit::apps {
namespace fs = std::filesystem;
namespace po = boost::program_options;

std::string exit_codes_help() {
  return "Exit codes:\n"
         "  0  every input processed\n"
         "  1  some inputs failed (the others were processed)\n"
         "  2  usage error\n"
         "  3  the model could not be loaded\n"
         "  4  no input could be processed, or the results could not be written\n";
}

void print_error(const std::string& command, const std::string& message) {
  const auto lock = vision::lock_stderr();
  std::cerr << "attn" << (command.empty() ? "" : " " + command) << ": error: " << message
            << std::endl;
}

void print_warning(const std::string& command, const std::string& message) {
  const auto lock = vision::lock_stderr();
  std::cerr << "attn " << command << ": warning: " << message << std::endl;
}

bool parse_command_line(int argc, char** argv, const po::options_description& visible,
                        const std::string& positional, const std::string& usage,
                        const std::string& description, po::variables_map& vm) {
  po::options_description all;
  all.add(visible);
  po::positional_options_description pos;
  if (!positional.empty()) pos.add(positional.c_str(), -1);
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << "Usage: " << usage << "\n\n"
                << description << "\n\n"
                << visible << "\n"
                << exit_codes_help();
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

std::vector<InputItem> expand_inputs(const std::vector<std::string>& args) {
  std::vector<InputItem> items;
  auto add_directory = [&](const std::string& dir) {
    std::vector<std::string> found;
    std::error_code ec;
    auto options = fs::directory_options::skip_permission_denied;
    for (auto it = fs::recursive_directory_iterator(dir, options, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const auto name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && vision::has_image_extension(it->path().string())) {
        found.push_back(it->path().string());
      }
    }
    if (ec) items.push_back({dir, dir + ": cannot list directory (" + ec.message() + ")"});
    std::sort(found.begin(), found.end());
    if (found.empty() && !ec) {
      items.push_back({dir, dir + ": directory holds no image files"});
    }
    for (auto& path : found) items.push_back({std::move(path), ""});
  };
  for (const auto& arg : args) {
    if (arg == "-") {
      for (std::string line; std::getline(std::cin, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        std::error_code ec;
        if (fs::is_directory(line, ec)) {
          add_directory(line);
        } else {
          items.push_back({line, ""});
        }
      }
      continue;
    }
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      add_directory(arg);
    } else if (!fs::exists(arg, ec)) {
      items.push_back({arg, arg + ": no such file or directory"});
    } else {
      items.push_back({arg, ""});
    }
  }
  return items;
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

int dispatch_subtask(int argc, char** argv, const std::string& command,
                     const std::vector<Subtask>& tasks) {
  std::ostringstream usage;
  usage << "Usage: attn " << command << " <task> [options]\n\nTasks:\n";
  std::string names;
  for (const auto& t : tasks) {
    usage << "  " << pad_right(t.name, 12) << t.summary << "\n";
    names += (names.empty() ? "" : ", ") + std::string(t.name);
  }
  usage << "\nRun 'attn " << command << " <task> --help' for the task's options.\n";
  if (argc < 2) {
    std::cerr << usage.str();
    return kExitUsage;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h") {
    std::cout << usage.str();
    return kExitOk;
  }
  for (const auto& t : tasks) {
    if (name == t.name) return t.run(argc - 1, argv + 1);
  }
  throw UsageError("unknown task '" + name + "' (expected: " + names + ")");
}

void add_max_pixels_option(po::options_description& options) {
  options.add_options()(
      "max-pixels",
      // The default is the limit in force, not the built-in one: a command line parsed again
      // (attn serve reads each request's map options with attn overlay's parser) must not undo
      // the limit the program was started with.
      po::value<int64_t>()->default_value(vision::max_image_pixels())->notifier([](int64_t pixels) {
        if (pixels < 1) {
          throw UsageError("--max-pixels must be at least 1, got " + std::to_string(pixels));
        }
        vision::set_max_image_pixels(pixels);
      }),
      "refuse images with more pixels than this (read from the file's header before decoding:\n"
      "a small file can declare a huge image)");
}

Shard parse_shard(const std::string& text) {
  const auto fail = [&](const std::string& why) -> Shard {
    throw UsageError("--shard " + text + ": " + why +
                     " (expected i/N with 0 <= i < N, e.g. --shard 0/4 ... --shard 3/4)");
  };
  const auto slash = text.find('/');
  if (slash == std::string::npos) return fail("no '/'");
  auto number = [&](const std::string& digits) -> long long {
    const auto is_digit = [](unsigned char c) { return std::isdigit(c) != 0; };
    if (digits.empty() || digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), is_digit)) {
      fail("'" + digits + "' is not a whole number");
    }
    return std::stoll(digits);
  };
  const long long index = number(text.substr(0, slash));
  const long long count = number(text.substr(slash + 1));
  if (count < 1) return fail("N must be at least 1");
  if (index >= count) return fail("i counts from 0, so it must be below N");
  return Shard{static_cast<int>(index), static_cast<int>(count)};
}

void add_shard_option(po::options_description& options, Shard* shard) {
  options.add_options()(
      "shard", po::value<std::string>()->value_name("i/N")->notifier([shard](const std::string& t) {
        *shard = parse_shard(t);
      }),
      "process only shard i of N (i from 0): the inputs whose path hashes to i, the same split "
      "on every machine and in any listing order; the N outputs together are the whole run's "
      "(Slurm job arrays, Kubernetes indexed jobs, xargs -P)");
}

std::vector<InputItem> select_shard(std::vector<InputItem> items, const Shard& shard) {
  if (shard.count == 1) return items;
  const auto belongs = [&](const InputItem& item) {
    const uint64_t hash = vision::Fnv1a().add(item.path.data(), item.path.size()).value();
    return hash % static_cast<uint64_t>(shard.count) == static_cast<uint64_t>(shard.index);
  };
  items.erase(std::remove_if(items.begin(), items.end(),
                             [&](const InputItem& item) { return !belongs(item); }),
              items.end());
  return items;
}

int default_threads() {
  // OpenMP's own variable wins over "all cores": parallel test runs and shared machines set it.
  if (const char* omp = std::getenv("OMP_NUM_THREADS"); omp && std::atoi(omp) > 0) {
    return std::atoi(omp);
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int set_threads(int requested) {
  if (requested < 0) {
    throw UsageError("--threads must be 0 (all cores) or a positive count, got " +
                     std::to_string(requested));
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int threads = requested > 0 ? requested : default_threads();
  // More threads than cores only adds spinning OpenMP workers (100,000 of them never finish
  // starting), so the count is capped at the core count.
  if (threads > cores) {
    std::cerr << "attn: warning: " << (requested > 0 ? "--threads" : "OMP_NUM_THREADS") << " "
              << threads << " is more than the " << cores << " cores here; using " << cores << "\n";
    threads = cores;
  }
  at::set_num_threads(threads);
  return threads;
}

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total),
      enabled_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::advance(int64_t n, const std::string& note) {
  done_ += n;
  note_ = note;
  const auto now = std::chrono::steady_clock::now();
  // Redraw at most 10 times a second, and always at the end.
  if (now - last_draw_ > std::chrono::milliseconds(100) || done_ >= total_) {
    last_draw_ = now;
    draw();
  }
}

void ProgressBar::draw() {
  if (!enabled_ || finished_) return;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fraction = total_ > 0 ? std::min(1.0, static_cast<double>(done_) / total_) : 0.0;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(filled, '#');
  bar += std::string(kWidth - filled, '.');
  char rate[64];
  std::snprintf(rate, sizeof(rate), "%.1f/s", seconds > 0 ? done_ / seconds : 0.0);
  const auto lock = vision::lock_stderr();
  std::cerr << "\r" << label_ << " [" << bar << "] " << done_ << "/" << total_ << " " << rate
            << (note_.empty() ? "" : " " + note_) << "\033[K" << std::flush;
}

void ProgressBar::clear() {
  if (!enabled_ || finished_) return;
  const auto lock = vision::lock_stderr();
  std::cerr << "\r\033[K" << std::flush;
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  const auto lock = vision::lock_stderr();
  std::cerr << "\r\033[K" << std::flush;
}

std::string pad_right(const std::string& text, size_t width) {
  // Count UTF-8 code points, not bytes, so accented labels line up.
  size_t columns = 0;
  for (unsigned char ch : text) columns += (ch & 0xC0) != 0x80;
  if (columns >= width) return text;
  return text + std::string(width - columns, ' ');
}

std::string command_line_text(const std::string& command, int argc, char** argv) {
  std::string text = command;
  for (int i = 1; i < argc; ++i) text += std::string(" ") + argv[i];
  return text;
}

int run_training_loop(const std::function<void()>& train, std::unique_ptr<ProgressBar>& bar) {
  std::string failure;
  try {
    train();
  } catch (const vision::TrainingDiverged& e) {
    failure = std::string(e.what()) + " (lower --lr?)";
  } catch (const vision::Error& e) {
    failure = e.what();
  }
  if (bar) bar->finish();  // before the message, so the bar's line does not swallow it
  if (failure.empty()) return kExitOk;
  print_error("train", failure);
  return kExitSomeFailed;
}

}  // namespace attnkit::apps
