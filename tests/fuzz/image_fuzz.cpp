// tests/fuzz/image_fuzz.cpp: libFuzzer harness for the image layer: encoded bytes of any format
// OpenCV reads -> decode_image_rgb. Any input must end in an 8-bit RGB image or an ImageError:
// never a crash, another exception or a huge allocation. The pixel limit only holds if the size
// read from the header is the size the decoder allocates, so every image that decodes must have
// at most the size the header reading found (the sides may be swapped by EXIF orientation): a
// larger one is a finding even when the image is small. OpenCV and its codecs are not
// instrumented: only crashes inside them show, and coverage guides through attnkit's code only.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

#include "vision/errors.h"
#include "vision/image/image_header.h"
#include "vision/image/image_io.h"

namespace vision = attnkit::vision;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<unsigned char> bytes(data, data + size);
  try {
    // 4 megapixels: larger images are refused from their header, as any limit is, and the
    // fuzzer does not spend its time on gigabyte allocations.
    const cv::Mat rgb = vision::decode_image_rgb(bytes, "fuzz.png", /*max_pixels=*/4'000'000);
    if (rgb.empty() || rgb.type() != CV_8UC3) __builtin_trap();
    const auto declared = vision::read_image_dimensions(data, size);
    if (!declared) __builtin_trap();
    // The header may declare more than was decoded (a TIFF tag given twice counts with its
    // larger value), never less.
    if (int64_t{rgb.cols} * rgb.rows > declared->width * declared->height) __builtin_trap();
  } catch (const vision::ImageError&) {
  }
  return 0;
}
