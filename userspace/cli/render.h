// The rendering helpers behind the verb table's human output (cli/commands.h): small,
// total functions over the API's JSON that degrade to placeholders on unexpected shapes.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace egressd::cli::render {

// object[key] as text (strings unquoted, other values as JSON); `fallback` when absent.
std::string str(const nlohmann::json& object, const char* key, const std::string& fallback = "");
const nlohmann::json& member(const nlohmann::json& object, const char* key);
std::string joinList(const nlohmann::json& list, const std::string& empty = "(none)");
std::string paramsSuffix(const nlohmann::json& params);
std::string fromSuffix(const nlohmann::json& entry);
// Columns as wide as their widest cell, two spaces apart.
std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows);
// `sandbox show` / `sandbox create`.
std::string renderDetail(const nlohmann::json& body);

}  // namespace egressd::cli::render
