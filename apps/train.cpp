// apps/train.cpp: `attn train <task>`: dispatches to the classifier or captioner trainer.
#include <iostream>
#include <string>

#include "apps/cli_common.h"
#include "apps/commands.h"

namespace attnkit::apps {

int run_train(int argc, char** argv) {
  const std::string usage =
      "Usage: attn train <task> [options]\n\n"
      "Tasks:\n"
      "  classifier  a ViT on Fashion-MNIST or an image folder (root/<class>/*.jpg)\n\n"
      "Run 'attn train <task> --help' for the task's options.\n";
  if (argc < 2) {
    std::cerr << usage;
    return kExitUsage;
  }
  const std::string task = argv[1];
  if (task == "--help" || task == "-h") {
    std::cout << usage;
    return kExitOk;
  }
  if (task == "classifier") return run_train_classifier(argc - 1, argv + 1);
  throw UsageError("unknown task '" + task + "' (expected: classifier)");
}

}  // namespace attnkit::apps
