// samples/cpp/explain_image.cpp: classify an image with attnkit, explain the top class, write
// the overlay, and caption the image when a captioner is given.
//
//   explain_image IMAGE [OUT.png] [--model M.safetensors] [--captioner C.safetensors]
//
// Without --model the shipped Fashion-MNIST classifier is used (attnkit::default_model_path).
#include <cstdio>
#include <exception>
#include <string>

#include <vision/api/attnkit.h>

int main(int argc, char** argv) {
  std::string image_path, out_path = "explained.png", model_path, captioner_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--model" && i + 1 < argc) {
      model_path = argv[++i];
    } else if (arg == "--captioner" && i + 1 < argc) {
      captioner_path = argv[++i];
    } else if (image_path.empty()) {
      image_path = arg;
    } else {
      out_path = arg;
    }
  }
  if (image_path.empty()) {
    std::fprintf(stderr, "usage: explain_image IMAGE [OUT.png] [--model M] [--captioner C]\n");
    return 2;
  }
  try {
    if (model_path.empty()) model_path = attnkit::default_model_path("classifier");
    const attnkit::Classifier classifier(model_path);
    const cv::Mat rgb = attnkit::load_image(image_path);

    const auto predictions = classifier.classify(rgb, 3);
    for (const auto& p : predictions) {
      std::printf("%-16s %6.2f%%\n", p.label.c_str(), 100.0 * p.probability);
    }

    // Why the top class: gradient rollout, drawn over the photo.
    const auto map = classifier.explain(rgb, "grad-rollout");
    attnkit::OverlayOptions style;
    style.label = "why " + predictions.front().label;
    attnkit::save_image(out_path, classifier.overlay(rgb, map, style));
    std::printf("map %dx%d (%s) -> %s\n", map.grid.rows, map.grid.cols, map.method.c_str(),
                out_path.c_str());

    if (!captioner_path.empty()) {
      const attnkit::Captioner captioner(captioner_path);
      const auto caption = captioner.caption(rgb);
      std::printf("caption: %s\n", caption.text.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "explain_image: %s\n", e.what());
    return 1;
  }
  return 0;
}
