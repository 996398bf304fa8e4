// vision/train/feature_cache.cpp: feature shards: computing, resuming, reading back.
#include "vision/train/feature_cache.h"

#include <fcntl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "vision/atomic_file.h"
#include "vision/errors.h"
#include "vision/fnv1a.h"
#include "vision/image/image_io.h"
#include "vision/image/preprocess.h"
#include "vision/train/data_parallel.h"

namespace attnkit::vision {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string hex(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016" PRIx64, value);
  return text;
}

std::string shard_name(int64_t shard, const char* extension) {
  char text[32];
  std::snprintf(text, sizeof(text), "shard-%05" PRId64 ".%s", shard, extension);
  return text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// What one shard's JSON records; the shard is complete once this file exists.
struct ShardInfo {
  int64_t count = 0, tokens = 0, dim = 0, grid_height = 0, grid_width = 0;
  std::vector<std::pair<int, int>> sizes;
  std::vector<std::pair<int64_t, SkippedFile>> unreadable;  // index within the whole cache
};

json shard_json(const ShardInfo& s) {
  json sizes = json::array(), unreadable = json::array();
  for (const auto& [w, h] : s.sizes) sizes.push_back({w, h});
  for (const auto& [index, file] : s.unreadable) {
    unreadable.push_back({{"index", index}, {"path", file.path}, {"error", file.error}});
  }
  return {{"count", s.count}, {"tokens", s.tokens},
          {"dim", s.dim},     {"grid", {s.grid_height, s.grid_width}},
          {"sizes", sizes},   {"unreadable", unreadable}};
}

// A complete shard's record, or nothing when the shard is missing, torn or not this cache's.
std::optional<ShardInfo> read_shard(const fs::path& folder, int64_t shard, int64_t expected_count,
                                    size_t element_size) {
  const auto json_path = folder / shard_name(shard, "json");
  std::error_code ec;
  if (!fs::exists(json_path, ec)) return std::nullopt;
  try {
    const auto j = json::parse(read_text(json_path.string()));
    ShardInfo s;
    s.count = j.at("count").get<int64_t>();
    s.tokens = j.at("tokens").get<int64_t>();
    s.dim = j.at("dim").get<int64_t>();
    s.grid_height = j.at("grid").at(0).get<int64_t>();
    s.grid_width = j.at("grid").at(1).get<int64_t>();
    for (const auto& size : j.at("sizes")) s.sizes.emplace_back(size.at(0), size.at(1));
    for (const auto& u : j.at("unreadable")) {
      s.unreadable.push_back(
          {u.at("index").get<int64_t>(),
           SkippedFile{u.at("path").get<std::string>(), u.at("error").get<std::string>()}});
    }
    const auto bytes = fs::file_size(folder / shard_name(shard, "bin"), ec);
    const auto expected =
        static_cast<uintmax_t>(s.count * s.tokens * s.dim) * static_cast<uintmax_t>(element_size);
    if (ec || s.count != expected_count || static_cast<int64_t>(s.sizes.size()) != s.count ||
        bytes != expected) {
      return std::nullopt;
    }
    return s;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

uint64_t feature_cache_key(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                           const std::string& description) {
  Fnv1a hash;
  hash.add(description);
  for (const auto& [name, tensor] : tensors) {
    const auto values = tensor.detach().to(torch::kFloat).contiguous();
    hash.add(name);
    for (const auto size : values.sizes()) hash.add(&size, sizeof(size));
    hash.add(values.data_ptr(), values.numel() * sizeof(float));
  }
  return hash.value();
}

struct FeatureCache::Impl {
  fs::path folder;
  torch::ScalarType dtype = torch::kHalf;
  int64_t shard_images = 0;
  int64_t images = 0, tokens = 0, dim = 0, grid_height = 0, grid_width = 0;
  int64_t reused = 0, computed = 0;
  std::vector<std::pair<int, int>> sizes;
  std::vector<std::pair<int64_t, SkippedFile>> unreadable;
  std::vector<int> shard_fds;

  ~Impl() {
    for (int fd : shard_fds) {
      if (fd >= 0) ::close(fd);
    }
  }

  size_t element_size() const { return torch::elementSize(dtype); }
  int64_t shard_count() const { return (images + shard_images - 1) / shard_images; }
  int64_t shard_size(int64_t shard) const {
    return std::min(shard_images, images - shard * shard_images);
  }

  // Decodes, preprocesses and encodes the shard's images a batch at a time; writes the
  // features and then the record that says the shard is complete.
  void compute_shard(int64_t shard, const FeatureEncoder& encoder,
                     const std::vector<std::string>& paths, const PreprocessConfig& preprocess,
                     int64_t batch_size, const std::function<void(int64_t)>& advance) {
    ShardInfo info;
    info.count = shard_size(shard);
    info.tokens = encoder.tokens;
    info.dim = encoder.dim;
    info.grid_height = encoder.grid_height;
    info.grid_width = encoder.grid_width;
    const auto bin_path = (folder / shard_name(shard, "bin")).string();
    AtomicFile out(bin_path);
    const int64_t first = shard * shard_images;
    torch::NoGradGuard no_grad;
    for (int64_t start = 0; start < info.count; start += batch_size) {
      const int64_t n = std::min(batch_size, info.count - start);
      std::vector<torch::Tensor> pixels;
      std::vector<bool> readable;
      for (int64_t i = first + start; i < first + start + n; ++i) {
        try {
          const auto rgb = load_image_rgb(paths[i]);
          pixels.push_back(preprocess_image(rgb, preprocess));
          info.sizes.emplace_back(rgb.cols, rgb.rows);
          readable.push_back(true);
        } catch (const ImageError& e) {
          info.sizes.emplace_back(0, 0);
          info.unreadable.push_back({i, SkippedFile{paths[i], e.what()}});
          readable.push_back(false);
        }
      }
      torch::Tensor features;
      if (!pixels.empty()) {
        features = encoder.encode(torch::stack(pixels)).to(dtype).contiguous();
        TORCH_CHECK(
            features.dim() == 3 && features.size(1) == info.tokens && features.size(2) == info.dim,
            "FeatureCache: the encoder promised (B, ", info.tokens, ", ", info.dim,
            ") features and gave ", features.sizes());
      }
      // An unreadable image's row is zeros, so every shard holds count rows in order.
      int64_t next = 0;
      const auto zeros = torch::zeros({info.tokens, info.dim}, torch::TensorOptions(dtype));
      for (bool ok : readable) {
        const auto row = ok ? features[next++] : zeros;
        out.write(row.data_ptr(), static_cast<size_t>(row.numel()) * element_size());
      }
      advance(n);
    }
    out.commit();
    const auto text = shard_json(info).dump();
    write_atomically((folder / shard_name(shard, "json")).string(), text.data(), text.size());
  }
};

FeatureCache::FeatureCache() : impl_(std::make_unique<Impl>()) {}
FeatureCache::~FeatureCache() = default;

std::shared_ptr<FeatureCache> FeatureCache::open(
    const FeatureEncoder& encoder, const std::vector<std::string>& image_paths,
    const PreprocessConfig& preprocess, const FeatureCacheOptions& options, DataParallel* parallel,
    const std::function<void(int64_t, int64_t)>& on_progress) {
  TORCH_CHECK(options.dtype == torch::kHalf || options.dtype == torch::kBFloat16,
              "FeatureCache: the dtype must be float16 or bfloat16, got ", options.dtype);
  TORCH_CHECK(options.shard_images > 0 && options.batch_size > 0,
              "FeatureCache: shard_images and batch_size must be positive");
  TORCH_CHECK(!image_paths.empty(), "FeatureCache: no images");
  TORCH_CHECK(encoder.tokens > 0 && encoder.dim > 0,
              "FeatureCache: the encoder must state its feature shape, got ", encoder.tokens, " x ",
              encoder.dim);
  std::shared_ptr<FeatureCache> cache(new FeatureCache());
  auto& impl = *cache->impl_;
  impl.dtype = options.dtype;
  impl.shard_images = options.shard_images;
  impl.images = static_cast<int64_t>(image_paths.size());

  Fnv1a key;
  key.add(&encoder.key, sizeof(encoder.key));
  key.add(preprocess.to_json());
  key.add(std::string(c10::toString(options.dtype)));
  key.add(&impl.shard_images, sizeof(impl.shard_images));
  for (const auto& path : image_paths) key.add(path);
  impl.folder = fs::path(options.directory) / hex(key.value());
  std::error_code ec;
  fs::create_directories(impl.folder, ec);
  if (ec) {
    throw WriteError(impl.folder.string() + ": cannot create the feature cache folder (" +
                     ec.message() + ")");
  }

  // Shards already complete are reused; each rank computes every N-th of the missing ones.
  const int64_t shards = impl.shard_count();
  std::vector<int64_t> missing;
  for (int64_t s = 0; s < shards; ++s) {
    if (!read_shard(impl.folder, s, impl.shard_size(s), impl.element_size())) missing.push_back(s);
  }
  impl.reused = shards - static_cast<int64_t>(missing.size());
  impl.computed = static_cast<int64_t>(missing.size());
  const int rank = parallel ? parallel->rank() : 0, world = parallel ? parallel->world_size() : 1;
  int64_t mine = 0;
  for (size_t m = static_cast<size_t>(rank); m < missing.size(); m += world) {
    mine += impl.shard_size(missing[m]);
  }
  int64_t done = 0;
  auto advance = [&](int64_t n) {
    done += n;
    if (on_progress) on_progress(done, mine);
  };
  for (size_t m = static_cast<size_t>(rank); m < missing.size(); m += world) {
    impl.compute_shard(missing[m], encoder, image_paths, preprocess, options.batch_size, advance);
  }
  if (parallel && world > 1) parallel->sum({1.0});  // a barrier: every rank's shards are done

  for (int64_t s = 0; s < shards; ++s) {
    const auto info = read_shard(impl.folder, s, impl.shard_size(s), impl.element_size());
    if (!info) {
      throw DataError((impl.folder / shard_name(s, "bin")).string() +
                      ": feature shard missing or torn after it was computed (is another run "
                      "writing this cache?)");
    }
    if (s == 0) {
      impl.tokens = info->tokens;
      impl.dim = info->dim;
      impl.grid_height = info->grid_height;
      impl.grid_width = info->grid_width;
    } else if (info->tokens != impl.tokens || info->dim != impl.dim) {
      throw DataError((impl.folder / shard_name(s, "json")).string() + ": shard of " +
                      std::to_string(info->tokens) + "x" + std::to_string(info->dim) +
                      " features where the first has " + std::to_string(impl.tokens) + "x" +
                      std::to_string(impl.dim));
    }
    impl.sizes.insert(impl.sizes.end(), info->sizes.begin(), info->sizes.end());
    impl.unreadable.insert(impl.unreadable.end(), info->unreadable.begin(), info->unreadable.end());
    const auto bin = (impl.folder / shard_name(s, "bin")).string();
    const int fd = ::open(bin.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw DataError(bin + ": cannot open (" + std::strerror(errno) + ")");
    impl.shard_fds.push_back(fd);
  }
  return cache;
}

int64_t FeatureCache::size() const { return impl_->images; }
int64_t FeatureCache::tokens() const { return impl_->tokens; }
int64_t FeatureCache::dim() const { return impl_->dim; }
int64_t FeatureCache::grid_height() const { return impl_->grid_height; }
int64_t FeatureCache::grid_width() const { return impl_->grid_width; }
std::string FeatureCache::folder() const { return impl_->folder.string(); }
int64_t FeatureCache::reused_shards() const { return impl_->reused; }
int64_t FeatureCache::computed_shards() const { return impl_->computed; }
const std::vector<std::pair<int, int>>& FeatureCache::image_sizes() const { return impl_->sizes; }
const std::vector<std::pair<int64_t, SkippedFile>>& FeatureCache::unreadable() const {
  return impl_->unreadable;
}

torch::Tensor FeatureCache::gather(const std::vector<int64_t>& rows) const {
  const auto& impl = *impl_;
  auto out = torch::empty({static_cast<int64_t>(rows.size()), impl.tokens, impl.dim},
                          torch::TensorOptions(impl.dtype));
  const size_t row_bytes = static_cast<size_t>(impl.tokens * impl.dim) * impl.element_size();
  auto* base = static_cast<char*>(out.data_ptr());
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t row = rows[i];
    TORCH_CHECK(row >= 0 && row < impl.images, "FeatureCache::gather: row ", row, " of ",
                impl.images);
    const int fd = impl.shard_fds[static_cast<size_t>(row / impl.shard_images)];
    // pread, not a memory map: pages read stay in the page cache, outside the process's memory.
    auto offset = static_cast<off_t>((row % impl.shard_images) * static_cast<int64_t>(row_bytes));
    size_t got = 0;
    while (got < row_bytes) {
      const ssize_t n = ::pread(fd, base + i * row_bytes + got, row_bytes - got, offset + got);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        throw DataError(
            impl.folder.string() + ": cannot read the features of image " + std::to_string(row) +
            " (" + (n < 0 ? std::strerror(errno) : "the shard is shorter than recorded") + ")");
      }
      got += static_cast<size_t>(n);
    }
  }
  return out.to(torch::kFloat);
}

}  // namespace attnkit::vision
