// apps/train.cpp: `attn train <task>`: dispatches to the classifier trainer.
#include "apps/cli_common.h"
#include "apps/commands.h"

namespace attnkit::apps {

int run_train(int argc, char** argv) {
  return dispatch_subtask(
      argc, argv, "train",
      {{"classifier", run_train_classifier,
        "a ViT on Fashion-MNIST or an image folder (root/<class>/*.jpg)"}});
}

}  // namespace attnkit::apps
