// The API adapter's mapping of the model's errors to statuses and stable codes: the
// contract clients (egressctl, scripts) branch on.
#include "daemon/api_errors.h"

#include <gtest/gtest.h>

#include "control_model/errors.h"

namespace egressd::daemon {
namespace {

struct Case {
  int code;
  int status;
  const char* apiCode;
};

TEST(ApiErrorsTest, EveryModelCodeHasItsStatusAndStableCode) {
  namespace model = control_model;
  const Case cases[] = {
      {model::kUnknownHandler, 400, "unknown_handler"},
      {model::kInvalidPolicy, 400, "invalid_policy"},
      {model::kUnknownPolicy, 400, "unknown_policy"},
      {model::kPolicyNotFound, 404, "unknown_policy"},
      {model::kUnknownSandbox, 404, "unknown_sandbox"},
      {model::kNoAuditFile, 409, "no_audit_file"},
      {model::kInternal, 500, "internal"},
      {EINVAL, 400, "invalid_request"},
      {ENOENT, 404, "not_found"},
      {EEXIST, 409, "conflict"},
      {EBUSY, 409, "conflict"},
      {EACCES, 500, "internal"},
      {EIO, 500, "internal"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.apiCode);
    const control::ApiResponse r = toApiResponse(Error(c.code, "the message"));
    EXPECT_EQ(r.status, c.status);
    EXPECT_FALSE(r.ok());
    ASSERT_TRUE(r.body.contains("error")) << r.body.dump();
    EXPECT_EQ(r.body["error"]["status"], c.status);
    EXPECT_EQ(r.body["error"]["code"], c.apiCode);
    EXPECT_EQ(r.body["error"]["message"], "the message");
  }
}

TEST(ApiErrorsTest, ResultsBecomeBodiesWithTheirStatus) {
  const control::ApiResponse created =
      toApiResponse(Result<nlohmann::json>(nlohmann::json{{"id", "sb"}}), 201);
  EXPECT_EQ(created.status, 201);
  EXPECT_EQ(created.body, (nlohmann::json{{"id", "sb"}}));
  const control::ApiResponse shown =
      toApiResponse(Result<nlohmann::json>(nlohmann::json::object()));
  EXPECT_EQ(shown.status, 200);
  const control::ApiResponse failed = toApiResponse(
      Result<nlohmann::json>(Error(control_model::kUnknownSandbox, "no sandbox 'x'")), 201);
  EXPECT_EQ(failed.status, 404);
  EXPECT_EQ(failed.body["error"]["code"], "unknown_sandbox");
  EXPECT_EQ(control::errorMessage(failed), "no sandbox 'x'");
}

}  // namespace
}  // namespace egressd::daemon
