// vision/data/karpathy.h: captioning datasets in Karpathy's split JSON (dataset_coco.json,
// dataset_flickr8k.json): images[].filepath, filename, split, sentences[].tokens. Scenes use the
// same format plus objects[] with boxes.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core/types.hpp>

namespace attnkit::vision {

/// An object the pointing game can check: the caption word and its box in image pixels.
struct CaptionObject {
  std::string word;
  cv::Rect box;
};

struct CaptionRecord {
  std::string image_path;  ///< root / filepath / filename
  std::string filepath;    ///< as stored (may be empty)
  std::string filename;
  std::string split;                               ///< train | val | test | restval
  std::vector<std::vector<std::string>> captions;  ///< tokenised references
  std::vector<CaptionObject> objects;              ///< only in datasets that have them
};

/// Reads a Karpathy split file. Sentences without "tokens" are tokenised from "raw" (lower case,
/// split on spaces, punctuation dropped). Throws DataError naming the file and the entry.
std::vector<CaptionRecord> load_karpathy_json(const std::string& json_path,
                                              const std::string& image_root);

/// The same on the file's contents `text`; `json_path` is used in messages.
std::vector<CaptionRecord> parse_karpathy_json(const std::string& text,
                                               const std::string& json_path,
                                               const std::string& image_root);

/// Writes records in the same format (atomically), with "raw" sentences and objects when present.
void save_karpathy_json(const std::string& json_path, const std::vector<CaptionRecord>& records,
                        const std::string& dataset_name);

}  // namespace attnkit::vision
