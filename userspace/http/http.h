// The HTTP/1.1 layer in one include: message heads, serialization, local responses
// (message.h) and the incremental request/response parsers (parser.h).
#pragma once

#include "http/message.h"
#include "http/parser.h"
