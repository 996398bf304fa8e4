// apps/main.cpp: `attn`: dispatches to a subcommand and maps errors to exit codes.
#include <cstring>
#include <iostream>
#include <string>

#include <c10/util/Exception.h>

#include "apps/cli_common.h"
#include "apps/commands.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

const Command kCommands[] = {
    {"classify", attnkit::apps::run_classify, "top-k classes of images with a ViT"},
    {"caption", attnkit::apps::run_caption, "describe images with a Show-Attend-Tell captioner"},
    {"overlay", attnkit::apps::run_overlay, "draw attention maps on images and videos"},
    {"import", attnkit::apps::run_import, "convert a timm / Hugging Face / torchvision checkpoint"},
    {"inspect", attnkit::apps::run_inspect, "show what a model file holds"},
    {"train", attnkit::apps::run_train, "train a classifier on Fashion-MNIST or an image folder"},
    {"eval", attnkit::apps::run_eval, "measure a model on a dataset (accuracy, confusion)"},
    {"data", attnkit::apps::run_data, "generate the captioned Fashion-MNIST scenes"},
    {"bench", attnkit::apps::run_bench, "time ViT inference"},
    {"info", attnkit::apps::run_info, "the CPU, its features, threads, BLAS and chosen defaults"},
};

void print_usage(std::ostream& out) {
  out << "Usage: attn <command> [options] ...\n\n"
         "attnkit: Vision Transformers and attention maps, natively in C++.\n\nCommands:\n";
  for (const auto& c : kCommands) {
    out << "  " << c.name << std::string(10 - std::strlen(c.name), ' ') << c.summary << "\n";
  }
  out << "\nRun 'attn <command> --help' for a command's options.\n\n"
      << attnkit::apps::exit_codes_help();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(std::cerr);
    return attnkit::apps::kExitUsage;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(std::cout);
    return attnkit::apps::kExitOk;
  }
  if (name == "--version") {
    if (argc > 2 && (std::strcmp(argv[2], "--verbose") == 0 || std::strcmp(argv[2], "-v") == 0)) {
      char info[] = "info";
      char* info_argv[] = {info, nullptr};
      return attnkit::apps::run_info(1, info_argv);
    }
    std::cout << "attn " << ATTNKIT_VERSION << "\n";
    return attnkit::apps::kExitOk;
  }
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const attnkit::apps::UsageError& e) {
      attnkit::apps::print_error(name, std::string(e.what()) + " (see 'attn " + name + " --help')");
      return attnkit::apps::kExitUsage;
    } catch (const c10::Error& e) {
      attnkit::apps::print_error(name, e.what_without_backtrace());
      return attnkit::apps::kExitNoInput;
    } catch (const std::exception& e) {
      attnkit::apps::print_error(name, e.what());
      return attnkit::apps::kExitNoInput;
    }
  }
  std::cerr << "attn: error: unknown command '" << name << "'\n\n";
  print_usage(std::cerr);
  return attnkit::apps::kExitUsage;
}
