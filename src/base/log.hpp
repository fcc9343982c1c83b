// Included first by every translation unit of hubnode, before any CAF header.
//
// Debian builds CAF with CAF_LOG_LEVEL quiet, which compiles every CAF_LOG_*
// macro to nothing. The logger itself is still in libcaf_core, so raising the
// level here, before CAF's headers see it, gives working CAF_LOG_* macros that
// write through CAF's logger as the logger.* options say.
#pragma once

#include "caf/detail/build_config.hpp"

#undef CAF_LOG_LEVEL
#define CAF_LOG_LEVEL CAF_LOG_LEVEL_DEBUG

// Each .cpp defines CAF_LOG_COMPONENT (its part: "http", "hub", "conn",
// "presence", "redis") right after this include and before any other.
