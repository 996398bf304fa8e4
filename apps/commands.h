// apps/commands.h: the entry point of each `attn` subcommand (argv[0] is the subcommand's name).
#pragma once

namespace attnkit::apps {

int run_bench(int argc, char** argv);
int run_caption(int argc, char** argv);
int run_overlay(int argc, char** argv);
int run_serve(int argc, char** argv);
int run_classify(int argc, char** argv);
int run_import(int argc, char** argv);
int run_info(int argc, char** argv);
int run_inspect(int argc, char** argv);
int run_train(int argc, char** argv);
int run_train_classifier(int argc, char** argv);
int run_train_captioner(int argc, char** argv);
int run_eval_captioner(int argc, char** argv);
int run_eval_maps(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_data(int argc, char** argv);

}  // namespace attnkit::apps
