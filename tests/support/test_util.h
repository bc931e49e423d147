// GTest helpers for egressd::Result / Status.
#pragma once

#include <gtest/gtest.h>

#include "common/result.h"

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
