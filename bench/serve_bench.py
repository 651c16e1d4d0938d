#!/usr/bin/env python3
"""Load benchmark of `alibi serve` (docs/serve.md): C clients, each sending requests one after
another, streaming, greedy; the tokens/s of the whole run and each request's time to first token
and inter-token latencies. Concurrency 1 is the baseline (the requests served one at a time);
every other level is reported as a ratio against it, measured against the same server in the same
run. Python's standard library only (a comparison benchmark, never a product dependency). Each
level also reports the CPUs the client and the server kept busy on average (CPU seconds over wall
seconds): on a machine of 2 cores the client's share is taken from the server.

  flock /tmp/alibi-bench.lock python3 bench/serve_bench.py --alibi build/alibi --run RUN \
      [--clients 1,4,16] [--requests 32] [--max-tokens 64] [--threads 2] [--max-batch 16]

With --llama-server BIN --gguf FILE the same load goes to llama.cpp's llama-server on that file
instead (--max-batch parallel slots of --max-context tokens each, the same threads), for the
side-by-side table of docs/serve.md.
"""
import argparse
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time


def start_llama_server(args):
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [args.llama_server, "-m", args.gguf, "--host", "127.0.0.1", "--port", str(port),
           "-t", str(args.threads), "-np", str(args.max_batch),
           "-c", str(args.max_context * args.max_batch), "-b", str(args.chunk)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and p.poll() is None:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return p, port
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("serve_bench: llama-server did not start")


def start_server(args):
    if args.llama_server:
        return start_llama_server(args)
    return spawn_alibi_serve(
        [args.alibi, "--threads", str(args.threads), "serve", args.run, "--port", "0",
         "--max-batch", str(args.max_batch), "--max-queue", str(4 * args.max_batch),
         "--chunk", str(args.chunk), "--max-context", str(args.max_context),
         "--dtype", args.dtype, "--kv-cache", args.kv_cache])


def spawn_alibi_serve(cmd):
    """Starts `alibi serve` (cmd) on port 0: the process and the port it says it listens on."""
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        sys.stderr.write(line)
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, int(m.group(1))
    raise SystemExit("serve_bench: the server did not start")


def one_request(port, prompt, max_tokens):
    """Streams one completion; returns (tokens, ttft, [inter-token gaps])."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True})
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise SystemExit(f"serve_bench: status {r.status}: {r.read()[:200]}")
    times = []
    for raw in r:  # one SSE line per iteration
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        ev = json.loads(line[6:])
        if ev["choices"] and ev["choices"][0]["finish_reason"] is None:
            times.append(time.perf_counter())
    c.close()
    gaps = [b - a for a, b in zip(times, times[1:])]
    return len(times), (times[0] - t0) if times else 0.0, gaps


def level(port, server_pid, clients, requests, max_tokens, prompts):
    results, lock = [], threading.Lock()
    todo = list(range(requests))

    def client():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            r = one_request(port, prompts[i % len(prompts)], max_tokens)
            with lock:
                results.append(r)

    t0, cpu0, srv0 = time.perf_counter(), time.process_time(), server_cpu(server_pid)
    ts = [threading.Thread(target=client) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    cpu = (time.process_time() - cpu0) / wall, (server_cpu(server_pid) - srv0) / wall
    tokens = sum(r[0] for r in results)
    ttft = sorted(r[1] for r in results)
    gaps = sorted(g for r in results for g in r[2])
    p = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")
    return tokens / wall, p(ttft, 0.5), p(ttft, 0.99), p(gaps, 0.5), p(gaps, 0.99), cpu


def server_cpu(pid):
    """CPU seconds the server process has used (user + system, all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alibi", default="build/alibi")
    ap.add_argument("--run", help="run folder or checkpoint to serve")
    ap.add_argument("--llama-server", default="", help="llama.cpp's llama-server instead")
    ap.add_argument("--gguf", default="", help="the file llama-server serves")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=32, help="requests per level")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--max-context", type=int, default=512)
    ap.add_argument("--dtype", default="fp32", help="alibi serve's --dtype (fp32, bf16, int8)")
    ap.add_argument("--kv-cache", default="f32", help="alibi serve's --kv-cache (f32, f16)")
    args = ap.parse_args()
    if not args.run and not (args.llama_server and args.gguf):
        ap.error("give --run, or --llama-server and --gguf")
    rnd = random.Random(1)
    words = "the of and to a in that it was he his with as for had you not be her".split()
    prompts = [" ".join(rnd.choice(words) for _ in range(rnd.randint(4, 40))) for _ in range(64)]
    server, port = start_server(args)
    try:
        one_request(port, prompts[0], 8)  # warm-up
        base = None
        print("clients  tokens/s  vs 1 client  TTFT p50/p99 (ms)  ITL p50/p99 (ms)"
              "  CPUs: client / server")
        for c in [int(x) for x in args.clients.split(",")]:
            tps, t50, t99, i50, i99, cpu = level(port, server.pid, c, max(args.requests, c),
                                                 args.max_tokens, prompts)
            base = base or tps
            print(f"{c:7d}  {tps:8.1f}  {tps / base:10.2f}x  {1e3 * t50:7.1f} / {1e3 * t99:7.1f}"
                  f"  {1e3 * i50:6.1f} / {1e3 * i99:6.1f}  {cpu[0]:6.2f} / {cpu[1]:4.2f}",
                  flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
