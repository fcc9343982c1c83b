// What a connection actor may ask of its socket. The WebSocket session in src/
// implements it; actors never touch a socket, and unit tests use a fake.
//
// Every call only posts work to the socket's own executor and returns at once.
// The session reports back to the connection actor with messages
// (upgraded, frame, activity, violation, closed).
#pragma once

#include "src/base/types.hpp"

namespace hubnode {

class transport {
public:
  virtual ~transport() = default;

  // Complete the WebSocket upgrade with `welcome` as the first frame, sent
  // with the 101 response in one write; answered with `upgraded` (both are
  // out) or `closed`.
  virtual void accept(payload welcome) = 0;

  // Answer the upgrade request with an HTTP error instead, then close.
  virtual void reject(admission why) = 0;

  // Write these frames in order, after those handed over before. While a
  // write is on the wire, what comes meanwhile waits and goes in the next.
  virtual void write(std::vector<payload> frames) = 0;

  // Bytes of the frames handed to write() and not yet written to the socket:
  // what a client that does not read makes the node hold. Any thread.
  virtual std::uint64_t unsent_bytes() const = 0;

  // Send a WebSocket ping; a pong comes back as `activity`.
  virtual void ping() = 0;

  // Send a close frame once the pending write is done; if it cannot go out
  // within a short bound (a peer that stopped reading), drop the socket.
  virtual void close(std::uint16_t code) = 0;
};

using transport_ptr = std::shared_ptr<transport>;

} // namespace hubnode
