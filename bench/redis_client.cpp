#include "bench/redis_client.hpp"

#include <sstream>
#include <stdexcept>

namespace bench {

redis_context redis_connect(const options& opts) {
  const auto [host, port] = *parse_redis_url(opts.redis_url);
  const timeval timeout{5, 0};
  redis_context c(redisConnectWithTimeout(host.c_str(), port, timeout));
  if (!c || c->err)
    throw std::runtime_error("redis " + opts.redis_url + ": " +
                             (c ? c->errstr : "out of memory"));
  redisSetTimeout(c.get(), timeout);
  return c;
}

redis_reply redis_command(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  redis_reply r(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data())));
  if (!r || r->type == REDIS_REPLY_ERROR)
    throw std::runtime_error(std::string("redis ") + args[0] + ": " +
                             (r ? r->str : c->errstr));
  return r;
}

double redis_info_sum(redisContext* c, const std::string& section,
                      const std::vector<std::string>& fields) {
  const auto r = redis_command(c, {"INFO", section});
  std::istringstream lines(std::string(r->str, r->len));
  std::string line;
  double sum = 0;
  while (std::getline(lines, line)) {
    for (const auto& field : fields) {
      if (line.size() > field.size() && line.rfind(field, 0) == 0 &&
          line[field.size()] == ':')
        sum += std::stod(line.substr(field.size() + 1));
    }
  }
  return sum;
}

} // namespace bench
