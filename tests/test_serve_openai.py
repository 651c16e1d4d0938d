"""`alibi serve` through the `openai` Python package, as applications call it (issue 31).

    python3 tests/test_serve_openai.py ALIBI_BINARY [VENV]

A byte-level model trained here for a few steps at seq-len 16 (the bundled corpus) is served on a
free port of 127.0.0.1 with an API key; the official client then asks for completions past the
training length (greedy: equal to `alibi generate --temperature 0`), several prompts with n > 1,
a stream (its text equal to the answer's, its last chunk carrying finish_reason and the usage),
logprobs, the model list, and the errors it must raise: BadRequestError naming the parameter,
AuthenticationError for a wrong key. SIGTERM then ends the server with exit 0.

Runs under VENV's python when this interpreter has no `openai` package: scripts/test.sh installs
tests/requirements-openai.txt into build/openai-venv. Exits 77 (ctest: skipped, by name) when
neither has it: only where pip could not reach PyPI.
"""
import lzma
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

try:
    import openai
except ImportError:
    venv = sys.argv[2] if len(sys.argv) > 2 else ""
    venv_python = os.path.join(venv, "bin", "python")
    if venv and os.path.exists(venv_python) and \
            os.path.realpath(sys.prefix) != os.path.realpath(venv):
        os.execv(venv_python, [venv_python, *sys.argv])
    print("SKIPPED: no `openai` package in this Python (scripts/test.sh installs it into "
          "build/openai-venv; pip could not reach PyPI?)")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "test-key-0123"
TRAIN_LEN = 16


def run(alibi, *args, cwd):
    r = subprocess.run([alibi, "--threads", "1", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: alibi {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout


def make_model(alibi, work):
    with lzma.open(os.path.join(ROOT, "data", "default-corpus.txt.xz"), "rt") as f:
        text = f.read()[:200_000]
    with open(os.path.join(work, "corpus.txt"), "w") as f:
        f.write(text)
    run(alibi, "prepare", "--input", "corpus.txt", "--out", "data", "--tokenizer", "bytes",
        cwd=work)
    run(alibi, "train", "--data", "data", "--out", "run", "--seq-len", str(TRAIN_LEN),
        "--layers", "2", "--d-model", "32", "--heads", "4", "--ffn", "64", "--batch", "4",
        "--steps", "30", "--eval-every", "0", "--save-every", "30", cwd=work)
    return os.path.join(work, "run")


def start_server(alibi, run_dir, work):
    err = open(os.path.join(work, "serve.err"), "w+")
    p = subprocess.Popen([alibi, "--threads", "1", "serve", run_dir, "--port", "0",
                          "--api-key", KEY, "--max-batch", "4", "--chunk", "8"],
                         stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        err.seek(0)
        m = re.search(r"listening on http://[^:]+:([0-9]+)", err.read())
        if m:
            return p, int(m.group(1)), err
        if p.poll() is not None:
            break
        time.sleep(0.05)
    err.seek(0)
    sys.exit(f"FAIL: alibi serve did not start: {err.read()[-2000:]}")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    alibi = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="serve_openai_") as work:
        run_dir = make_model(alibi, work)
        server, port, err = start_server(alibi, run_dir, work)
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY,
                                   max_retries=0, timeout=120)
            exercise(client, alibi, run_dir, work, port)
        except (AssertionError, openai.OpenAIError) as e:
            err.seek(0)
            server.kill()
            sys.exit(f"FAIL: {type(e).__name__}: {e}\nserver stderr:\n{err.read()[-2000:]}")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        check(code == 0, f"the server exited {code} after SIGTERM")
    print("PASS: the openai client's completions, streams, logprobs, models and errors")


def exercise(client, alibi, run_dir, work, port):
    model = client.models.list().data
    check([m.id for m in model] == ["run"], f"/v1/models lists {[m.id for m in model]}")

    # Greedy, 8x the training length: generate's text; usage counts bytes.
    prompt, n_new = "It was the best of times", 8 * TRAIN_LEN
    c = client.completions.create(model="run", prompt=prompt, max_tokens=n_new, temperature=0)
    want = run(alibi, "generate", run_dir, "--temperature", "0", "--max-new-tokens", str(n_new),
               "--prompt", prompt, cwd=work)
    check(c.choices[0].text == want, f"greedy text {c.choices[0].text!r} != generate's {want!r}")
    check(c.choices[0].finish_reason == "length", f"finish_reason {c.choices[0].finish_reason}")
    check(c.usage.prompt_tokens == len(prompt.encode()) and c.usage.completion_tokens == n_new,
          f"usage {c.usage}")
    check(c.object == "text_completion" and c.model == "run", f"object {c.object}, {c.model}")

    # Two prompts, two seeded samples of each: four choices, indexed prompt-major.
    c = client.completions.create(model="run", prompt=["Hello", "The sea"], n=2, max_tokens=20,
                                  temperature=0.8, seed=3)
    check(sorted(ch.index for ch in c.choices) == [0, 1, 2, 3], f"indexes of {c.choices}")
    check(all(len(ch.text.encode("utf-8", "surrogatepass")) > 0 for ch in c.choices),
          "an empty choice")
    check(c.usage.completion_tokens == 80, f"usage {c.usage}")

    # The stream: its text equals the answer's; the last text chunk ends it; usage on request.
    texts, finish, usage = [], None, None
    for chunk in client.completions.create(model="run", prompt=prompt, max_tokens=n_new,
                                           temperature=0, stream=True,
                                           stream_options={"include_usage": True}):
        if chunk.choices:
            texts.append(chunk.choices[0].text)
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    check("".join(texts) == want, f"streamed text {''.join(texts)!r} != {want!r}")
    check(finish == "length", f"stream finish_reason {finish}")
    check(usage is not None and usage.completion_tokens == n_new, f"stream usage {usage}")

    # logprobs: one entry per token, the chosen token the most likely of the top k (OpenAI's
    # top_logprobs is keyed by text: bytes that are not UTF-8 alone all read as U+FFFD and share
    # a key, so there may be fewer than k).
    c = client.completions.create(model="run", prompt="Once", max_tokens=6, temperature=0,
                                  logprobs=3)
    lp = c.choices[0].logprobs
    check(len(lp.tokens) == 6 and len(lp.token_logprobs) == 6 and len(lp.top_logprobs) == 6,
          f"logprobs {lp}")
    for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        check(l <= 0 and 1 <= len(top) <= 3 and max(top.values()) <= l + 1e-5,
              f"greedy token {tok!r} logprob {l} against its top 3 {top}")

    # Errors, as the client raises them.
    try:
        client.completions.create(model="run", prompt="x", max_tokens=-1)
        check(False, "max_tokens -1 was accepted")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and e.body.get("param") == "max_tokens", f"400 body {e.body}")
    try:
        client.completions.create(model="run", prompt="x", max_tokens=4, temperature="hot")
        check(False, "temperature 'hot' was accepted")
    except openai.BadRequestError as e:
        check(e.body.get("param") == "temperature", f"400 body {e.body}")
    wrong = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong",
                          max_retries=0)
    try:
        wrong.completions.create(model="run", prompt="x", max_tokens=4)
        check(False, "a wrong key was accepted")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, f"status {e.status_code}")
    # The server still serves.
    c = client.completions.create(model="run", prompt=prompt, max_tokens=n_new, temperature=0)
    check(c.choices[0].text == want, "the answer changed after the errors")


if __name__ == "__main__":
    main()
