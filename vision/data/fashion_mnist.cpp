// vision/data/fashion_mnist.cpp: the idx reader (via zlib, which reads plain files too).
#include "vision/data/fashion_mnist.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include <torch/torch.h>
#include <zlib.h>

#include "vision/errors.h"

namespace attnkit::vision {
namespace {

struct GzCloser {
  void operator()(gzFile_s* file) const { gzclose(file); }
};

/// Reads exactly `size` bytes or throws.
void read_exact(gzFile file, void* out, size_t size, const std::string& path, const char* what) {
  auto* bytes = static_cast<char*>(out);
  while (size > 0) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size, 1u << 30));
    const int got = gzread(file, bytes, chunk);
    if (got <= 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      throw DataError(path + ": truncated idx file (ended inside the " + what + ")" +
                      (code < 0 ? std::string(": ") + message : std::string()));
    }
    bytes += got;
    size -= static_cast<size_t>(got);
  }
}

/// The idx file at `stem` + ".gz" if present, else `stem`.
std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const auto& name : {stem + ".gz", stem}) {
    const auto path = (std::filesystem::path(dir) / name).string();
    if (std::filesystem::exists(path)) return path;
  }
  throw DataError(dir + ": no " + stem +
                  "[.gz] (install Debian's dataset-fashion-mnist or pass "
                  "the directory that holds the idx files)");
}

}  // namespace

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> classes = {
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return classes;
}

torch::Tensor read_idx(const std::string& path) {
  std::unique_ptr<gzFile_s, GzCloser> file(gzopen(path.c_str(), "rb"));
  if (!file) throw DataError(path + ": cannot open (" + std::strerror(errno) + ")");
  unsigned char magic[4];
  read_exact(file.get(), magic, 4, path, "header");
  if (magic[0] != 0 || magic[1] != 0) throw DataError(path + ": not an idx file (bad magic)");
  if (magic[2] != 0x08) {
    throw DataError(path + ": idx element type 0x" + std::to_string(magic[2]) +
                    " is not supported (only unsigned bytes, 0x08)");
  }
  const int ndims = magic[3];
  if (ndims < 1 || ndims > 4) {
    throw DataError(path + ": idx file with " + std::to_string(ndims) + " dimensions");
  }
  std::vector<int64_t> shape;
  int64_t total = 1;
  for (int i = 0; i < ndims; ++i) {
    unsigned char b[4];
    read_exact(file.get(), b, 4, path, "header");
    const int64_t dim = (int64_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    if (dim <= 0 || dim > (int64_t{1} << 28)) {
      throw DataError(path + ": implausible idx dimension " + std::to_string(dim));
    }
    shape.push_back(dim);
    total *= dim;
    if (total > (int64_t{1} << 34)) throw DataError(path + ": idx file declares too much data");
  }
  auto data = torch::empty(shape, torch::kUInt8);
  read_exact(file.get(), data.data_ptr<uint8_t>(), static_cast<size_t>(total), path, "data");
  char extra;
  if (gzread(file.get(), &extra, 1) > 0) {
    throw DataError(path + ": trailing bytes after the " + std::to_string(total) +
                    " declared values");
  }
  return data;
}

LabeledImages load_fashion_mnist(const std::string& dir, const std::string& split) {
  std::string prefix;
  if (split == "train") {
    prefix = "train";
  } else if (split == "test") {
    prefix = "t10k";
  } else {
    throw DataError("Fashion-MNIST has splits 'train' and 'test', not '" + split + "'");
  }
  const auto images_path = find_idx(dir, prefix + "-images-idx3-ubyte");
  const auto labels_path = find_idx(dir, prefix + "-labels-idx1-ubyte");
  auto images = read_idx(images_path);
  auto labels = read_idx(labels_path);
  if (images.dim() != 3) throw DataError(images_path + ": expected (N, H, W) images");
  if (labels.dim() != 1 || labels.size(0) != images.size(0)) {
    throw DataError(labels_path + ": " + std::to_string(labels.size(0)) + " labels for " +
                    std::to_string(images.size(0)) + " images in " + images_path);
  }
  if (labels.max().item<int64_t>() >= static_cast<int64_t>(fashion_mnist_classes().size())) {
    throw DataError(labels_path + ": label " + std::to_string(labels.max().item<int64_t>()) +
                    " outside the 10 classes");
  }
  LabeledImages out;
  out.images = images.unsqueeze(1);
  out.labels = labels.to(torch::kLong);
  out.classes = fashion_mnist_classes();
  return out;
}

}  // namespace attnkit::vision
