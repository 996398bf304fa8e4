// vision/data/karpathy.cpp: Karpathy split JSON via nlohmann-json.
#include "vision/data/karpathy.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "vision/errors.h"
#include "vision/image/image_io.h"
#include "vision/json_number.h"

namespace attnkit::vision {
namespace {

using nlohmann::json;

std::vector<std::string> tokenize(const std::string& raw) {
  std::vector<std::string> tokens;
  std::string word;
  for (char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '\'') {
      word += static_cast<char>(std::tolower(c));
    } else if (!word.empty()) {
      tokens.push_back(word);
      word.clear();
    }
  }
  if (!word.empty()) tokens.push_back(word);
  return tokens;
}

}  // namespace

std::vector<CaptionRecord> load_karpathy_json(const std::string& json_path,
                                              const std::string& image_root) {
  std::ifstream in(json_path);
  if (!in) throw DataError(json_path + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw DataError(json_path + ": read error");
  return parse_karpathy_json(text, json_path, image_root);
}

std::vector<CaptionRecord> parse_karpathy_json(const std::string& text,
                                               const std::string& json_path,
                                               const std::string& image_root) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    throw DataError(json_path + ": not valid JSON (" + e.what() + ")");
  }
  if (!doc.is_object() || !doc.contains("images") || !doc["images"].is_array()) {
    throw DataError(json_path + ": expected a Karpathy split file with an \"images\" list");
  }
  std::vector<CaptionRecord> records;
  const auto& images = doc["images"];
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& entry = images[i];
    const std::string where = json_path + ": images[" + std::to_string(i) + "]";
    try {
      CaptionRecord r;
      r.filename = entry.at("filename").get<std::string>();
      r.filepath = entry.value("filepath", "");
      r.split = entry.at("split").get<std::string>();
      if (r.split != "train" && r.split != "val" && r.split != "test" && r.split != "restval") {
        throw DataError(where + ": split '" + r.split + "' is not train, val, test or restval");
      }
      r.image_path = (std::filesystem::path(image_root) / r.filepath / r.filename).string();
      for (const auto& sentence : entry.at("sentences")) {
        auto tokens = sentence.contains("tokens")
                          ? sentence.at("tokens").get<std::vector<std::string>>()
                          : tokenize(sentence.at("raw").get<std::string>());
        if (!tokens.empty()) r.captions.push_back(std::move(tokens));
      }
      if (r.captions.empty()) throw DataError(where + ": no sentences with words");
      if (entry.contains("objects")) {
        for (const auto& object : entry["objects"]) {
          const auto& box = object.at("box");
          if (!box.is_array() || box.size() != 4) {
            throw DataError(where + ": an object box must be [x, y, width, height]");
          }
          int64_t v[4];
          for (size_t k = 0; k < 4; ++k) v[k] = json_int64(box[k], where + ": box");
          // The far corner is computed in int (cv::Rect::br) by every user of the box.
          constexpr int64_t kMax = std::numeric_limits<int>::max();
          if (v[2] <= 0 || v[3] <= 0 || std::abs(v[0]) > kMax || std::abs(v[1]) > kMax ||
              v[0] + v[2] > kMax || v[1] + v[3] > kMax) {
            throw DataError(where + ": an object box must be [x, y, width, height] with a " +
                            "positive size, in int range");
          }
          r.objects.push_back({object.at("word").get<std::string>(),
                               cv::Rect(static_cast<int>(v[0]), static_cast<int>(v[1]),
                                        static_cast<int>(v[2]), static_cast<int>(v[3]))});
        }
      }
      records.push_back(std::move(r));
    } catch (const json::exception& e) {
      throw DataError(where + ": " + e.what());
    } catch (const std::invalid_argument& e) {  // from json_int64
      throw DataError(e.what());
    }
  }
  return records;
}

void save_karpathy_json(const std::string& json_path, const std::vector<CaptionRecord>& records,
                        const std::string& dataset_name) {
  json images = json::array();
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    json sentences = json::array();
    for (const auto& tokens : r.captions) {
      std::string raw;
      for (const auto& t : tokens) raw += (raw.empty() || t == "," ? "" : " ") + t;
      sentences.push_back({{"tokens", tokens}, {"raw", raw}});
    }
    json entry = {{"imgid", i},
                  {"filepath", r.filepath},
                  {"filename", r.filename},
                  {"split", r.split},
                  {"sentences", sentences}};
    if (!r.objects.empty()) {
      json objects = json::array();
      for (const auto& o : r.objects) {
        objects.push_back(
            {{"word", o.word}, {"box", {o.box.x, o.box.y, o.box.width, o.box.height}}});
      }
      entry["objects"] = objects;
    }
    images.push_back(entry);
  }
  const std::string text = json{{"dataset", dataset_name}, {"images", images}}.dump() + "\n";
  try {
    write_file_atomically(json_path, std::vector<unsigned char>(text.begin(), text.end()));
  } catch (const ImageError& e) {  // the writer is image_io's, the file is a dataset's
    throw DataError(e.what());
  }
}

}  // namespace attnkit::vision
