// The control-plane model's error codes beyond errno. The model speaks Result/Error only;
// the API adapter (daemon/api_errors) maps each code to an HTTP status and the API's
// stable error code, so these numbers are the model's half of that contract.
#pragma once

namespace egressd::control_model {

// A handler reference names a handler the sandbox's policy does not define (400).
inline constexpr int kUnknownHandler = 10001;
// A policy that does not parse, compile or load (400).
inline constexpr int kInvalidPolicy = 10002;
// A request names a policy that does not exist (400: the request is wrong).
inline constexpr int kUnknownPolicy = 10003;
// A lookup of a policy by name found none (404: the resource is missing).
inline constexpr int kPolicyNotFound = 10004;
// A lookup of a sandbox by id found none (404).
inline constexpr int kUnknownSandbox = 10005;
// The daemon writes no audit file to read (409).
inline constexpr int kNoAuditFile = 10006;
// Anything the caller cannot fix, whatever errno caused it (500).
inline constexpr int kInternal = 10007;

}  // namespace egressd::control_model
