// tests/bench/make_test_video.cpp: writes a video for timing `attn overlay`: a photo panned
// across the frame, N frames of W x H (MJPG in .avi, MPEG-4 in .mp4).
//
//   make_test_video samples/chelsea.png /tmp/pan.avi 300 224 224
#include <cstdlib>
#include <iostream>
#include <string>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: make_test_video PHOTO OUT.avi|OUT.mp4 FRAMES WIDTH HEIGHT\n";
    return 2;
  }
  const cv::Mat photo = cv::imread(argv[1], cv::IMREAD_COLOR);
  if (photo.empty()) {
    std::cerr << argv[1] << ": cannot read the photo\n";
    return 1;
  }
  const int frames = std::atoi(argv[3]), width = std::atoi(argv[4]), height = std::atoi(argv[5]);
  const std::string out = argv[2];
  const bool avi = out.size() > 4 && out.substr(out.size() - 4) == ".avi";
  cv::VideoWriter writer(out,
                         avi ? cv::VideoWriter::fourcc('M', 'J', 'P', 'G')
                             : cv::VideoWriter::fourcc('m', 'p', '4', 'v'),
                         25.0, cv::Size(width, height));
  if (!writer.isOpened() || frames < 1 || width < 1 || height < 1) {
    std::cerr << out << ": cannot write " << frames << " frames of " << width << "x" << height
              << "\n";
    return 1;
  }
  // The photo scaled to twice the frame height, panned left to right.
  cv::Mat big;
  const double scale = 2.0 * height / photo.rows;
  cv::resize(photo, big, cv::Size(), scale, scale, cv::INTER_AREA);
  if (big.cols < width) cv::resize(big, big, cv::Size(width * 2, big.rows));
  for (int i = 0; i < frames; ++i) {
    const int x = (big.cols - width) * i / std::max(1, frames - 1);
    writer.write(big(cv::Rect(x, (big.rows - height) / 2, width, height)));
  }
  return 0;
}
