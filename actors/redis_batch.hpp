// An actor's exchanges with the redis actor, one pipeline in flight at a
// time: whatever the actor asks for meanwhile waits here and goes out
// together in the next pipeline. The redis actor pays a blocking round trip
// per pipeline, so a busy node pays one for many commands instead of one
// each (one each capped a node near 1 / round trip, and on a loaded machine
// its presence writes fell seconds behind, which let other nodes' grace
// periods end on a stale P`presence:ID`). One pipeline at a time also keeps
// the actor's commands in the order it asked for them.
#pragma once

#include "actors/messages.hpp"
#include "src/redis/types.hpp"

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

#include "caf/error.hpp"

namespace hubnode {

class redis_batch {
public:
  // Gets this exchange's replies only, in the order of its commands.
  using replies_handler = std::function<void(const redis_replies&)>;
  using failure_handler = std::function<void(const caf::error&)>;

  // max_commands bounds a combined pipeline (an exchange larger than that
  // still goes, alone), so that one stays well inside redis.command-timeout.
  redis_batch(redis_actor redis, caf::timespan timeout, std::size_t max_commands)
      : redis_(std::move(redis)), timeout_(timeout), max_commands_(max_commands) {}

  // Self is the owning actor's pointer; this object lives in its state.
  template <class Self>
  void exchange(Self* self, redis_pipeline pipeline, replies_handler on_replies,
                failure_handler on_failure) {
    auto size = pipeline.size();
    queued_.push_back(
        {std::move(pipeline), size, std::move(on_replies), std::move(on_failure)});
    flush(self);
  }

private:
  struct pending {
    redis_pipeline pipeline; // moved into the combined one when sent
    std::size_t size;
    replies_handler on_replies;
    failure_handler on_failure;
  };
  using batch = std::vector<pending>;

  template <class Self>
  void flush(Self* self) {
    if (in_flight_ || queued_.empty())
      return;
    auto taken = std::make_shared<batch>(take());
    redis_pipeline combined;
    for (auto& p : *taken)
      std::move(p.pipeline.begin(), p.pipeline.end(), std::back_inserter(combined));
    in_flight_ = true;
    self->request(redis_, timeout_, redis_atom::value, std::move(combined))
        .then(
            [this, self, taken](const redis_replies& replies) {
              in_flight_ = false;
              answer(*taken, replies);
              flush(self);
            },
            [this, self, taken](caf::error& err) {
              in_flight_ = false;
              for (auto& p : *taken)
                p.on_failure(err);
              flush(self);
            });
  }

  // The queued exchanges that fit into one pipeline, at least one.
  batch take() {
    batch result;
    std::size_t commands = 0;
    while (!queued_.empty() &&
           (result.empty() || commands + queued_.front().size <= max_commands_)) {
      commands += queued_.front().size;
      result.push_back(std::move(queued_.front()));
      queued_.pop_front();
    }
    return result;
  }

  // Each exchange gets its own slice of the replies; the redis actor answers
  // every command or fails the pipeline, so a short reply is only a guard.
  static void answer(batch& taken, const redis_replies& replies) {
    std::size_t at = 0;
    for (auto& p : taken) {
      auto begin = std::min(at, replies.size());
      auto end = std::min(at + p.size, replies.size());
      p.on_replies(redis_replies(replies.begin() + static_cast<std::ptrdiff_t>(begin),
                                 replies.begin() + static_cast<std::ptrdiff_t>(end)));
      at += p.size;
    }
  }

  redis_actor redis_;
  caf::timespan timeout_;
  std::size_t max_commands_;
  std::deque<pending> queued_;
  bool in_flight_ = false;
};

} // namespace hubnode
