// apps/train.cpp: `attn train <task>`: dispatches to the classifier or captioner trainer.
#include "apps/cli_common.h"
#include "apps/commands.h"

namespace attnkit::apps {

int run_train(int argc, char** argv) {
  return dispatch_subtask(
      argc, argv, "train",
      {{"classifier", run_train_classifier,
        "a ViT on Fashion-MNIST or an image folder (root/<class>/*.jpg)"},
       {"captioner", run_train_captioner,
        "Show-Attend-Tell on a Karpathy split JSON (COCO, Flickr, attn data scenes)"}});
}

}  // namespace attnkit::apps
