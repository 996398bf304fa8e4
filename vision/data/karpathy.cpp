// vision/data/karpathy.cpp: Karpathy split JSON via nlohmann-json.
#include "vision/data/karpathy.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "vision/errors.h"
#include "vision/image/image_io.h"
#include "vision/json_error.h"
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

// Readers that name the field they read, so an error says "images[3].sentences[0].tokens:
// expected a list of strings, got number" instead of nlohmann's bare type error.
[[noreturn]] void bad_field(const std::string& file, const std::string& where,
                            const std::string& expected, const json& got) {
  throw DataError(file + ": " + where + ": expected " + expected + ", got " + got.type_name());
}

const json& member(const json& object, const char* key, const std::string& file,
                   const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) throw DataError(file + ": " + where + ": no \"" + key + "\" field");
  return *it;
}

std::string string_value(const json& value, const std::string& file, const std::string& where) {
  if (!value.is_string()) bad_field(file, where, "a string", value);
  return value.get<std::string>();
}

std::vector<std::string> string_list(const json& value, const std::string& file,
                                     const std::string& where) {
  if (!value.is_array()) bad_field(file, where, "a list of strings", value);
  std::vector<std::string> out;
  for (size_t i = 0; i < value.size(); ++i) {
    out.push_back(string_value(value[i], file, where + "[" + std::to_string(i) + "]"));
  }
  return out;
}

const json& list_value(const json& value, const std::string& file, const std::string& where) {
  if (!value.is_array()) bad_field(file, where, "a list", value);
  return value;
}

cv::Rect box_value(const json& value, const std::string& file, const std::string& where) {
  constexpr int64_t kLimit = 1 << 30;  // far beyond any image, and no int overflow in x + w
  const auto fits = [&](const json& v) {
    // Unsigned first: get<int64_t>() of 2^64 - 1 is -1, which would pass.
    if (v.is_number_unsigned()) return v.get<uint64_t>() < static_cast<uint64_t>(kLimit);
    return v.is_number_integer() && v.get<int64_t>() > -kLimit && v.get<int64_t>() < kLimit;
  };
  if (!value.is_array() || value.size() != 4 || !fits(value[0]) || !fits(value[1]) ||
      !fits(value[2]) || !fits(value[3]) || value[2].get<int64_t>() <= 0 ||
      value[3].get<int64_t>() <= 0) {
    throw DataError(file + ": " + where +
                    ": an object box must be [x, y, width, height] "
                    "(integers, width and height positive), got " +
                    json_brief(value));
  }
  return cv::Rect(value[0].get<int>(), value[1].get<int>(), value[2].get<int>(),
                  value[3].get<int>());
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
    throw DataError(json_path + ": not valid JSON (" + json_error_text(e) + ")");
  }
  if (!doc.is_object() || !doc.contains("images") || !doc["images"].is_array()) {
    throw DataError(json_path + ": expected a Karpathy split file with an \"images\" list");
  }
  std::vector<CaptionRecord> records;
  const auto& images = doc["images"];
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& entry = images[i];
    const std::string where = "images[" + std::to_string(i) + "]";
    if (!entry.is_object()) bad_field(json_path, where, "an object", entry);
    CaptionRecord r;
    r.filename =
        string_value(member(entry, "filename", json_path, where), json_path, where + ".filename");
    if (entry.contains("filepath")) {
      r.filepath = string_value(entry["filepath"], json_path, where + ".filepath");
    }
    r.split = string_value(member(entry, "split", json_path, where), json_path, where + ".split");
    if (r.split != "train" && r.split != "val" && r.split != "test" && r.split != "restval") {
      throw DataError(json_path + ": " + where + ".split: '" + r.split +
                      "' is not train, val, test or restval");
    }
    r.image_path = (std::filesystem::path(image_root) / r.filepath / r.filename).string();
    const auto& sentences =
        list_value(member(entry, "sentences", json_path, where), json_path, where + ".sentences");
    for (size_t k = 0; k < sentences.size(); ++k) {
      const std::string at = where + ".sentences[" + std::to_string(k) + "]";
      const auto& sentence = sentences[k];
      if (!sentence.is_object()) bad_field(json_path, at, "an object", sentence);
      auto tokens = sentence.contains("tokens")
                        ? string_list(sentence["tokens"], json_path, at + ".tokens")
                        : tokenize(string_value(member(sentence, "raw", json_path, at), json_path,
                                                at + ".raw"));
      if (!tokens.empty()) r.captions.push_back(std::move(tokens));
    }
    if (r.captions.empty()) {
      throw DataError(json_path + ": " + where + ".sentences: no sentence with words");
    }
    if (entry.contains("objects")) {
      const auto& objects = list_value(entry["objects"], json_path, where + ".objects");
      for (size_t k = 0; k < objects.size(); ++k) {
        const std::string at = where + ".objects[" + std::to_string(k) + "]";
        if (!objects[k].is_object()) bad_field(json_path, at, "an object", objects[k]);
        r.objects.push_back(
            {string_value(member(objects[k], "word", json_path, at), json_path, at + ".word"),
             box_value(member(objects[k], "box", json_path, at), json_path, at + ".box")});
      }
    }
    records.push_back(std::move(r));
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
