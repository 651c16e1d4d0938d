#!/usr/bin/env python3
"""Soak test of `alibi serve` (issue 31, docs/serve.md): C clients for a given time, each sending
streaming requests one after another with random prompt lengths (some past the model's training
length) and random max_tokens, and cancelling a share of them mid-stream by closing the
connection. Every request must end as asked: [DONE] after its tokens, or the cancel; the server
must answer /health throughout; and its resident memory at the end must be within 5% of what it
was after the warm-up (no leak). Exit 1 on any failure. Python's standard library only.

  python3 bench/serve_soak.py --alibi build/alibi --run RUN [--minutes 30] [--clients 16]
      [--cancel 0.2] [--max-prompt-words 600] [--warmup-minutes 2] [-- serve flags...]
"""
import argparse
import http.client
import json
import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_bench import spawn_alibi_serve  # noqa: E402


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def start_server(args, extra):
    return spawn_alibi_serve([args.alibi, "--threads", str(args.threads), "serve", args.run,
                              "--port", "0", *extra])


def one_request(port, prompt, max_tokens, cancel_after):
    """'done' (all tokens, then [DONE]), 'cancelled' (closed after cancel_after tokens), or an
    error string."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8,
                       "stream": True, "stream_options": {"include_usage": True}})
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        return f"status {r.status}: {r.read()[:200]!r}"
    tokens, done, usage = 0, False, None  # tokens: chunks (a byte of a split character waits)
    for raw in r:
        line = raw.decode("utf-8", "replace").strip()
        if line == "data: [DONE]":
            done = True
            break
        if line.startswith("data: "):
            ev = json.loads(line[6:])
            if "error" in ev:
                return f"error event: {ev['error']}"
            if ev.get("usage"):
                usage = ev["usage"]["completion_tokens"]
            if ev["choices"] and ev["choices"][0]["finish_reason"] is None:
                tokens += 1
            if cancel_after is not None and tokens >= cancel_after:
                c.close()  # the client goes away mid-stream
                return "cancelled"
    c.close()
    if not done:
        return f"stream ended without [DONE] after {tokens} chunks"
    return "done" if usage == max_tokens else f"done after {usage} of {max_tokens} tokens"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alibi", default="build/alibi")
    ap.add_argument("--run", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--warmup-minutes", type=float, default=2)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--cancel", type=float, default=0.2, help="share of requests cancelled")
    ap.add_argument("--max-prompt-words", type=int, default=600)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args, extra = ap.parse_known_args()
    extra = [x for x in extra if x != "--"]
    words = "the of and to a in that it was he his with as for had you not be her".split()
    server, port = start_server(args, extra)
    counts, failures, lock = {"done": 0, "cancelled": 0}, [], threading.Lock()
    t0 = time.monotonic()
    end = t0 + 60 * args.minutes
    stop = threading.Event()

    def client(seed):
        rnd = random.Random(seed)
        while not stop.is_set() and time.monotonic() < end:
            prompt = " ".join(rnd.choice(words) for _ in range(rnd.randint(1, args.max_prompt_words)))
            n = rnd.randint(1, args.max_tokens)
            cancel = rnd.randint(0, n - 1) if rnd.random() < args.cancel else None
            try:
                got = one_request(port, prompt, n, cancel)
            except (OSError, http.client.HTTPException) as e:
                got = f"{type(e).__name__}: {e}"
            with lock:
                if got in counts:
                    counts[got] += 1
                else:
                    failures.append(got)

    ts = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in ts:
        t.start()
    rss_warm = None
    try:
        while time.monotonic() < end and not failures:
            time.sleep(5)
            if server.poll() is not None:
                failures.append(f"the server exited {server.returncode}")
                break
            h = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            h.request("GET", "/health")
            if h.getresponse().status != 200:
                failures.append("/health did not answer 200")
            h.close()
            elapsed = time.monotonic() - t0
            if rss_warm is None and elapsed >= 60 * args.warmup_minutes:
                rss_warm = rss_kb(server.pid)
                print(f"after warm-up ({elapsed:.0f} s): RSS {rss_warm / 1024:.1f} MiB, "
                      f"{counts['done']} done, {counts['cancelled']} cancelled", flush=True)
    finally:
        stop.set()
        for t in ts:
            t.join()
    rss_end = rss_kb(server.pid) if server.poll() is None else None
    server.terminate()
    code = server.wait(timeout=120)
    print(f"{time.monotonic() - t0:.0f} s, {args.clients} clients: {counts['done']} done, "
          f"{counts['cancelled']} cancelled, {len(failures)} failed; server exit {code}")
    if rss_warm and rss_end:
        growth = rss_end / rss_warm - 1
        print(f"RSS after warm-up {rss_warm / 1024:.1f} MiB, at the end {rss_end / 1024:.1f} MiB "
              f"({100 * growth:+.2f}%)")
        if growth > 0.05:
            failures.append(f"RSS grew {100 * growth:.1f}% after the warm-up")
    for f in failures[:10]:
        print("FAIL:", f)
    sys.exit(1 if failures or code != 0 or rss_warm is None else 0)


if __name__ == "__main__":
    main()
