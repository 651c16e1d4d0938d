#pragma once
// Clients for the `alibi serve` tests: the server started as a process on a free port of
// 127.0.0.1, cpp-httplib's client for whole requests, and a raw socket for what a well-behaved
// client would not do (stop reading, vanish mid-stream) and for reading a stream as it comes.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cli.h"

namespace alibi::test {

// `alibi serve ARGS --port 0`: the port it says it listens on.
struct ServeProcess {
  BackgroundCli cli;
  int port = 0;

  ServeProcess(const std::string& args, const std::string& err_file) {
    // A previous server's lines must not be read as this one's (the shell truncates the file
    // only once it runs).
    std::remove(err_file.c_str());
    cli = start_cli("--threads 1 serve " + args + " --port 0", err_file);
    if (!cli.wait_for("listening on http://", 120)) return;
    std::smatch m;
    const std::string err = read_text(err_file);
    if (std::regex_search(err, m, std::regex("listening on http://[^:]+:([0-9]+)")))
      port = std::stoi(m[1]);
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
  ServeProcess(ServeProcess&& o) noexcept : cli(o.cli), port(o.port) { o.cli.pid = -1; }
  ServeProcess(const ServeProcess&) = delete;
  // A test that ends before stop() (a failed assertion) leaves no server behind.
  ~ServeProcess() {
    if (cli.pid > 0) cli.finish(SIGKILL);
  }
  // SIGTERM (or `sig`) and the exit.
  CliResult stop(int sig = SIGTERM) {
    const CliResult r = cli.finish(sig);
    cli.pid = -1;
    return r;
  }
};

// The value of a metric line "NAME VALUE" in /metrics's text (-1 if absent).
inline double metric(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

// A connection of our own to 127.0.0.1:port.
struct RawClient {
  int fd = -1;
  std::string got;  // everything read
  explicit RawClient(int port, int rcvbuf = 0) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) close();
  }
  ~RawClient() { close(); }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  bool post(const std::string& path, const std::string& body) {
    const std::string req = "POST " + path +
                            " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                            "application/json\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
    return ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size());
  }
  // Reads what arrives until `needle` is in everything read on this connection so far, the
  // peer closes, or timeout_s passes; returns everything read so far (headers included).
  std::string read_until(const std::string& needle, double timeout_s = 60) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    char buf[4096];
    while (got.find(needle) == std::string::npos && std::chrono::steady_clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, size_t(n));
    }
    return got;
  }
};

// The payloads of the server-sent events in a raw chunked HTTP response ("data: X\n\n" -> X).
inline std::vector<std::string> sse_data(const std::string& raw) {
  std::string body;
  size_t at = raw.find("\r\n\r\n");
  if (at == std::string::npos) return {};
  at += 4;
  while (at < raw.size()) {  // chunked transfer coding: SIZE\r\nDATA\r\n ... 0\r\n\r\n
    const size_t eol = raw.find("\r\n", at);
    if (eol == std::string::npos) break;
    const size_t n = std::stoul(raw.substr(at, eol - at), nullptr, 16);
    if (n == 0) break;
    body += raw.substr(eol + 2, n);
    at = eol + 2 + n + 2;
  }
  std::vector<std::string> out;
  for (size_t p = 0; (p = body.find("data: ", p)) != std::string::npos;) {
    const size_t end = body.find("\n\n", p);
    out.push_back(body.substr(p + 6, end - p - 6));
    p = end == std::string::npos ? body.size() : end + 2;
  }
  return out;
}

// A text as the server's JSON carries it: bytes that are not UTF-8 become U+FFFD (the server
// dumps with nlohmann's replace handler; this does the same to what generate wrote).
inline std::string as_json_text(const std::string& bytes) {
  const nlohmann::json j = bytes;
  return nlohmann::json::parse(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
      .get<std::string>();
}

}  // namespace alibi::test
