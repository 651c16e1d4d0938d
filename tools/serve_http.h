#pragma once
// The HTTP side of `alibi serve` (docs/serve.md): cpp-httplib's server (Debian's
// libcpp-httplib-dev) moves the bytes; src/serve parses the bodies, runs the requests and
// formats the answers.
//   POST /v1/completions  (stream: server-sent events)   GET /v1/models   GET /health
//   GET /metrics (Prometheus text)   POST /tokenize   POST /detokenize
// Every route but /health needs `Authorization: Bearer KEY` when a key is set.
#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "serve/completion.h"
#include "serve/engine.h"
#include "serve/metrics.h"

namespace alibi::cli {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;            // 0: any free port
  std::string api_key;        // empty: no key needed
  size_t max_body = 1 << 20;  // bytes of a request body; more: 413
  int timeout_s = 30;         // read and write timeout of a connection
  int threads = 16;           // connections served at once
};

class HttpServer {
 public:
  HttpServer(const HttpOptions& o, const serve::ServeContext& ctx, serve::Engine& engine,
             serve::Metrics& metrics);
  ~HttpServer();
  // Binds the listening socket; the port (the one chosen for port 0). UsageError naming
  // --host / --port where the address cannot be had.
  int bind();
  void start();  // serves on its own thread
  // Stops accepting connections: new requests on open ones get 503. Requests under way go on.
  void drain();
  bool draining() const { return draining_.load(); }
  // Waits until every connection has ended (after drain()).
  void join();
  bool running() const;  // the listening thread has not ended

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> ended_{false};  // the listening thread returned
  std::thread thread_;
};

}  // namespace alibi::cli
