// A Lua script as the command the redis actor runs:
// {"EVALSCRIPT", lua, numkeys, keys..., args...}, sent as EVALSHA.
#pragma once

#include "src/base/log.hpp"

#include "src/redis/types.hpp"

#include <initializer_list>
#include <string>
#include <string_view>

namespace hubnode {

inline redis_command eval_script(std::string_view lua,
                                 std::initializer_list<std::string> keys,
                                 std::initializer_list<std::string> args) {
  redis_command cmd{"EVALSCRIPT", std::string{lua}, std::to_string(keys.size())};
  cmd.insert(cmd.end(), keys.begin(), keys.end());
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

} // namespace hubnode
