// GTest helpers for egressd::Result / Status.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "common/result.h"

namespace egressd::test {

// "4142" -> "AB"; stops at the first pair that is not two hex digits.
inline std::string unhex(std::string_view hex) {
  auto digit = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    const int hi = digit(hex[i]);
    const int lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      break;
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

}  // namespace egressd::test

#define EGRESSD_TEST_CONCAT_INNER(a, b) a##b
#define EGRESSD_TEST_CONCAT(a, b) EGRESSD_TEST_CONCAT_INNER(a, b)

// EXPECT_OK(expr) / ASSERT_OK(expr): the Result or Status is ok; else print its error.
#define EXPECT_OK(expr)                                                              \
  do {                                                                               \
    const auto& egressd_ok_ = (expr);                                                \
    EXPECT_TRUE(egressd_ok_.ok()) << #expr << ": " << egressd_ok_.error().message(); \
  } while (0)
#define ASSERT_OK(expr)                                                              \
  do {                                                                               \
    const auto& egressd_ok_ = (expr);                                                \
    ASSERT_TRUE(egressd_ok_.ok()) << #expr << ": " << egressd_ok_.error().message(); \
  } while (0)

// ASSERT_OK_AND_ASSIGN(auto x, expr): declares/assigns the value of an ok Result, or fails.
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(EGRESSD_TEST_CONCAT(egressd_result_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)                  \
  auto tmp = (expr);                                               \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.error().message(); \
  lhs = std::move(tmp).value()
