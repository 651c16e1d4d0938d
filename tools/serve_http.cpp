#include "serve_http.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace alibi::cli {
namespace {

using httplib::Request;
using httplib::Response;
using nlohmann::json;
using serve::ApiError;
using HandlerResponse = httplib::Server::HandlerResponse;

constexpr auto kPoll = std::chrono::milliseconds(50);  // how often a waiting handler looks around

// httplib's server whose listening socket can be shut without ending the connections it has:
// Server::stop() also tells every streaming response to end, which a graceful stop must not do.
class Listener : public httplib::Server {
 public:
  // Debian's library listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled in): while
  // the accept thread waits for a core, a burst of clients past that loses SYNs, which TCP sends
  // again only after a second. Listening again on the bound socket sets the backlog (Linux), here
  // to the kernel's cap.
  void widen_backlog() { ::listen(svr_sock_.load(), SOMAXCONN); }
  void stop_accepting() {
    const socket_t s = svr_sock_.load();
    if (s != INVALID_SOCKET) ::shutdown(s, SHUT_RDWR);  // accept() fails; the loop closes it
  }
};

void answer(Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(e.body(), "application/json");
}

// The descriptor of the connection a request came on: the socket whose local port and peer are
// the request's. httplib does not hand it to handlers; it is needed to notice a client that went
// away while its request waits for tokens. -1 if not found.
int connection_fd(const Request& req) {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  int found = -1;
  while (dirent* e = ::readdir(d)) {
    const int fd = std::atoi(e->d_name);
    if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == ::dirfd(d)) continue;
    sockaddr_storage local{}, peer{};
    socklen_t ll = sizeof local, pl = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
        ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0)
      continue;
    auto port = [](const sockaddr_storage& a) {
      return a.ss_family == AF_INET    ? ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port)
             : a.ss_family == AF_INET6 ? ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port)
                                       : 0;
    };
    char host[INET6_ADDRSTRLEN] = "";
    const void* addr =
        peer.ss_family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in&>(peer).sin_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in6&>(peer).sin6_addr);
    ::inet_ntop(peer.ss_family, addr, host, sizeof host);
    if (port(local) == req.local_port && port(peer) == req.remote_port && req.remote_addr == host) {
      found = fd;
      break;
    }
  }
  ::closedir(d);
  return found;
}

// Whether the client closed its side (or the connection broke). Data it sent ahead keeps it alive.
bool peer_gone(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
  char c;
  const ssize_t r = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

// Waits until the request's waiter moves past `seen` or kPoll passes; returns its version.
uint64_t wait_change(serve::Completion& c, uint64_t seen) {
  serve::Waiter& w = c.waiter();
  std::unique_lock lock(w.mu);
  w.cv.wait_for(lock, kPoll, [&] { return w.version != seen; });
  return w.version;
}

}  // namespace

struct HttpServer::Impl {
  HttpOptions o;
  const serve::ServeContext& ctx;
  serve::Engine& engine;
  serve::Metrics& metrics;
  Listener svr;
  const std::atomic<bool>& draining;

  Impl(const HttpOptions& o_, const serve::ServeContext& c, serve::Engine& e, serve::Metrics& m,
       const std::atomic<bool>& d)
      : o(o_), ctx(c), engine(e), metrics(m), draining(d) {}

  void routes();
  void completions(const Request& req, Response& res);
  // Streams a request's events until it ends; false where the client went away.
  bool stream(serve::Completion& c, int fd, httplib::DataSink& sink);
};

void HttpServer::Impl::routes() {
  const int threads = o.threads;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  svr.set_payload_max_length(o.max_body);
  // httplib's default sets SO_REUSEPORT, with which a second server binds a port already taken
  // and the two share its connections; SO_REUSEADDR alone only allows a restart over TIME_WAIT.
  svr.set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  svr.set_read_timeout(o.timeout_s, 0);
  svr.set_write_timeout(o.timeout_s, 0);
  svr.set_keep_alive_max_count(1000);
  svr.set_keep_alive_timeout(std::min(o.timeout_s, 2));
  svr.set_pre_routing_handler([this](const Request& req, Response& res) {
    if (o.api_key.empty() || req.path == "/health") return HandlerResponse::Unhandled;
    const std::string h = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (h.starts_with(kBearer) &&
        serve::same_key(std::string_view(h).substr(kBearer.size()), o.api_key))
      return HandlerResponse::Unhandled;
    answer(res, ApiError(401,
                         h.empty() ? "no API key: send the header Authorization: Bearer KEY"
                                   : "incorrect API key provided",
                         "", "invalid_request_error", "invalid_api_key"));
    return HandlerResponse::Handled;
  });
  // httplib's own refusals (no route, a body over --max-body, a malformed request) get an
  // OpenAI error object too.
  svr.set_error_handler(
      httplib::Server::HandlerWithResponse([this](const Request& req, Response& res) {
        if (!res.body.empty()) return HandlerResponse::Unhandled;
        const std::string msg =
            res.status == 404 ? str_cat("no route ", req.method, " ", req.path)
            : res.status == 413
                ? str_cat("the request body is larger than ", o.max_body, " bytes (--max-body)")
            : res.status == 400 ? std::string("malformed HTTP request")
                                : str_cat("the HTTP request was refused (status ", res.status, ")");
        answer(res, ApiError(res.status, msg));
        return HandlerResponse::Handled;
      }));
  svr.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      answer(res, e);
    } catch (const std::exception& e) {
      answer(res, ApiError(500, str_cat("internal error: ", e.what()), "", "server_error"));
    }
  });
  svr.Get("/health", [this](const Request&, Response& res) {
    const bool ok = !draining.load();
    res.status = ok ? 200 : 503;
    res.set_content(ok ? R"({"status":"ok"})" : R"({"status":"shutting down"})",
                    "application/json");
  });
  svr.Get("/v1/models", [this](const Request&, Response& res) {
    res.set_content(serve::models_json(ctx), "application/json");
  });
  svr.Get("/metrics", [this](const Request&, Response& res) {
    res.set_content(metrics.prometheus(engine.gauges()), "text/plain; version=0.0.4");
  });
  svr.Post("/tokenize", [this](const Request& req, Response& res) {
    const serve::TokenizeRequest t = serve::parse_tokenize(req.body);
    const std::vector<int32_t> ids = ctx.tok->encode(t.content, t.add_special);
    json tokens = json::array();
    for (int32_t id : ids)
      tokens.push_back(t.with_pieces ? json{{"id", id}, {"piece", ctx.tok->decode_one(id)}}
                                     : json(id));
    res.set_content(json{{"tokens", tokens}}.dump(-1, ' ', false, json::error_handler_t::replace),
                    "application/json");
  });
  svr.Post("/detokenize", [this](const Request& req, Response& res) {
    const std::vector<int32_t> ids = serve::parse_detokenize(req.body, ctx.tok->vocab());
    res.set_content(json{{"content", ctx.tok->decode(ids)}}.dump(-1, ' ', false,
                                                                 json::error_handler_t::replace),
                    "application/json");
  });
  svr.Post("/v1/completions", [this](const Request& req, Response& res) {
    try {
      completions(req, res);
    } catch (const ApiError& e) {
      answer(res, e);
      if (e.status == 429) res.set_header("Retry-After", "1");
    }
    metrics.request_done(res.status);
  });
}

void HttpServer::Impl::completions(const Request& req, Response& res) {
  if (draining.load())
    throw ApiError(503, "the server is shutting down; no new requests", "", "server_error");
  const serve::CompletionRequest parsed = serve::parse_completion(req.body, ctx.limits);
  auto c = std::make_shared<serve::Completion>(parsed, ctx);
  if (!c->submit(engine)) {
    const serve::EngineGauges g = engine.gauges();
    throw ApiError(429,
                   str_cat("the server is busy: ", g.running, " sequences run and ", g.queued,
                           " wait (--max-batch, --max-queue); retry later"),
                   "", "requests", "rate_limit_exceeded");
  }
  const int fd = connection_fd(req);
  if (c->stream()) {
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, c, fd](size_t, httplib::DataSink& sink) { return stream(*c, fd, sink); },
        [c](bool) { c->cancel(); });  // a no-op once every job ended
    return;
  }
  uint64_t seen = c->version();
  while (!c->done()) {
    seen = wait_change(*c, seen);
    if (peer_gone(fd)) {  // nobody to answer: free the rows now
      c->cancel();
      res.status = 499;  // for the metrics; the client does not see it
      return;
    }
  }
  res.set_content(c->response(), "application/json");
}

bool HttpServer::Impl::stream(serve::Completion& c, int fd, httplib::DataSink& sink) {
  for (uint64_t seen = c.version();;) {
    const std::string ev = c.events();
    // A write fails once the client is gone or has not read for --timeout seconds.
    if (!ev.empty() && !sink.write(ev.data(), ev.size())) {
      c.cancel();
      return false;
    }
    if (c.ended()) {
      sink.done();
      return true;
    }
    seen = wait_change(c, seen);
    if (peer_gone(fd)) {
      c.cancel();
      return false;
    }
  }
}

HttpServer::HttpServer(const HttpOptions& o, const serve::ServeContext& ctx, serve::Engine& engine,
                       serve::Metrics& metrics)
    : impl_(std::make_unique<Impl>(o, ctx, engine, metrics, draining_)) {
  impl_->routes();
}

HttpServer::~HttpServer() {
  if (thread_.joinable()) {
    drain();
    join();
  }
}

int HttpServer::bind() {
  const HttpOptions& o = impl_->o;
  errno = 0;
  const int port = o.port == 0 ? impl_->svr.bind_to_any_port(o.host)
                               : (impl_->svr.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port <= 0)
    usage_error("--host ", o.host, " --port ", o.port, ": cannot listen there (",
                errno ? std::strerror(errno) : "not an address of this machine", ")");
  impl_->svr.widen_backlog();
  return port;
}

void HttpServer::start() {
  thread_ = std::thread([this] {
    impl_->svr.listen_after_bind();
    ended_.store(true);
  });
}

void HttpServer::drain() {
  draining_.store(true);
  impl_->svr.stop_accepting();
}

void HttpServer::join() {
  if (thread_.joinable()) thread_.join();
}

bool HttpServer::running() const { return !ended_.load(); }

}  // namespace alibi::cli
