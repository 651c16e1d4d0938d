#!/usr/bin/env python3
"""ctest: training under mpirun is bit-identical to one process with the same global batch.

    python3 tests/test_distributed.py ALIBI_BINARY CASE

CASE is one of:
  ranks     1 rank x 6 micro-batches == 2 ranks x 3 == 3 ranks x 2 (3 does not divide the
            parameters into equal parts): every logged loss and grad norm, and every tensor of
            the final checkpoint (weights and AdamW moments), equal to the bit; likewise a
            masked LM on 1 rank x 2 and 2 ranks x 1.
  resume    2 ranks saved at step 4, resumed on 3 ranks to step 8 == 1 rank for 8 steps;
            a resume that changes the global batch is refused (exit 2) unless allowed.
  faults    a rank killed with SIGKILL ends the job with a non-zero exit within 30 s and the last
            checkpoint stays loadable; SIGTERM to mpirun makes every rank save one checkpoint
            and exit 0 (mpirun 4.1 itself then reports 1), SIGUSR1 the same with mpirun's exit 0;
            ranks started with different flags, or more threads than cores, exit 2 with one line;
            ranks that differ only in --threads (hosts of different sizes) train together.
  hosts     2 ranks x 3 on two simulated hosts (scripts/two_hosts.sh: network namespaces, TCP
            over a veth pair) == 1 rank x 6; skipped (77) where network namespaces cannot be made
            (not root, or a container without the capability).
Exits 77 (skipped, by name) only where mpirun is missing; scripts/setup.sh installs it.
"""
import json
import lzma
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = 77
MODEL = ["--pos", "alibi", "--seq-len", "16", "--layers", "2", "--d-model", "32", "--heads",
         "4", "--ffn", "64", "--batch", "2", "--lr", "3e-3", "--warmup", "2", "--seed", "7",
         "--dropout", "0.1", "--eval-every", "0", "--log-every", "100", "--eval-windows", "4",
         "--min-lr-ratio", "1"]  # a constant rate after warm-up: --steps does not change it
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none", OMPI_MCA_rmaps_base_oversubscribe="1")


def mpirun(n, *args):
    return ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(n), *args]


def run(cmd, ok=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300, **kw)
    if ok and r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r


def tensors(path):
    """name -> raw bytes of each tensor of a safetensors file (the metadata left out)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    return {k: body[v["data_offsets"][0]:v["data_offsets"][1]]
            for k, v in header.items() if k != "__metadata__"}


def log(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [(r["step"], r["loss"], r["grad_norm"]) for r in map(json.loads, f)]


def last_ckpt(run_dir):
    return os.path.join(run_dir, sorted(f for f in os.listdir(run_dir)
                                        if f.startswith("ckpt-"))[-1])


def same_run(a, b, what):
    la, lb = log(a), log(b)
    if la != lb:
        sys.exit(f"FAIL: {what}: logs differ\n{la}\n{lb}")
    ta, tb = tensors(last_ckpt(a)), tensors(last_ckpt(b))
    if ta.keys() != tb.keys():
        sys.exit(f"FAIL: {what}: tensor names differ")
    bad = [k for k in ta if ta[k] != tb[k]]
    if bad:
        sys.exit(f"FAIL: {what}: {len(bad)} tensors differ, e.g. {bad[:4]}")
    print(f"ok: {what}: {len(la)} steps, {len(ta)} tensors equal to the bit")


def train(alibi, data, out, ranks, accum, steps, *extra, ok=True):
    cmd = [alibi, "--threads", "1", "train", "--data", data, "--out", out, *MODEL,
           "--grad-accum", str(accum), "--steps", str(steps), "--oversubscribe", *extra]
    return run(mpirun(ranks, *cmd) if ranks > 1 else cmd, ok=ok)


def case_ranks(alibi, data, tmp):
    for ranks, accum in [(1, 6), (2, 3), (3, 2)]:
        train(alibi, data, f"{tmp}/r{ranks}", ranks, accum, 6, "--save-every", "0")
    same_run(f"{tmp}/r1", f"{tmp}/r2", "2 ranks x 3 against 1 rank x 6")
    same_run(f"{tmp}/r1", f"{tmp}/r3", "3 ranks x 2 against 1 rank x 6")
    # A masked LM: each micro-batch's masking is keyed by its index, not by the rank.
    for ranks, accum in [(1, 2), (2, 1)]:
        train(alibi, data, f"{tmp}/mlm{ranks}", ranks, accum, 4, "--save-every", "0",
              "--objective", "mlm")
    same_run(f"{tmp}/mlm1", f"{tmp}/mlm2", "masked LM, 2 ranks x 1 against 1 rank x 2")


def case_resume(alibi, data, tmp):
    train(alibi, data, f"{tmp}/whole", 1, 6, 8, "--save-every", "0")
    train(alibi, data, f"{tmp}/split", 2, 3, 4, "--save-every", "0")
    r = run(mpirun(3, alibi, "--threads", "1", "train", "--resume", f"{tmp}/split",
                   "--grad-accum", "1", "--steps", "8", "--oversubscribe"), ok=False)
    lines = [l for l in r.stderr.splitlines() if l.startswith("alibi: error")]
    if r.returncode != 2 or len(lines) != 1 or "--allow-batch-change" not in lines[0]:
        sys.exit(f"FAIL: a changed global batch was not refused with one line:\n{r.stderr}")
    print("ok: a resume that changes the global batch is refused:", lines[0])
    run(mpirun(3, alibi, "--threads", "1", "train", "--resume", f"{tmp}/split", "--steps", "8",
               "--oversubscribe"))
    same_run(f"{tmp}/whole", f"{tmp}/split", "saved on 2 ranks, resumed on 3, against 1 rank")


def wait_for(path, seconds, prefix=None):
    """path exists and is not empty; with prefix, a file in folder path starts with it."""
    t0 = time.time()
    while time.time() - t0 < seconds:
        if prefix and os.path.isdir(path) and any(f.startswith(prefix) and f.endswith(
                ".safetensors") for f in os.listdir(path)):
            return True
        if not prefix and os.path.exists(path) and os.path.getsize(path) > 0:
            return True
        time.sleep(0.2)
    return False


def case_hosts(alibi, data, tmp):
    script = os.path.join(REPO, "scripts", "two_hosts.sh")
    up = subprocess.run(["bash", script, "up"], capture_output=True, text=True)
    if up.returncode != 0:
        print(f"SKIPPED: cannot make network namespaces here: {up.stderr.strip()}")
        sys.exit(SKIP)
    try:
        train(alibi, data, f"{tmp}/one", 1, 6, 6, "--save-every", "0")
        cmd = [alibi, "--threads", "1", "train", "--data", data, "--out", f"{tmp}/two", *MODEL,
               "--grad-accum", "3", "--steps", "6", "--save-every", "0", "--oversubscribe"]
        run(["bash", script, "run", *cmd])
        same_run(f"{tmp}/one", f"{tmp}/two", "2 ranks on two hosts (TCP) against 1 rank")
    finally:
        subprocess.run(["bash", script, "down"], capture_output=True)


def case_faults(alibi, data, tmp):
    out = f"{tmp}/kill"
    cmd = mpirun(2, alibi, "--threads", "1", "train", "--data", data, "--out", out, *MODEL,
                 "--steps", "100000", "--save-every", "2")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                         start_new_session=True)
    if not wait_for(os.path.join(out, "log.jsonl"), 60) or not wait_for(out, 60, "ckpt-"):
        os.killpg(p.pid, signal.SIGKILL)
        sys.exit(f"FAIL: the job did not start:\n{p.communicate()[1][-3000:]}")
    ranks = subprocess.run(["pgrep", "-f", "-s", str(p.pid), f"{alibi} --threads 1 train"],
                           capture_output=True, text=True).stdout.split()
    if len(ranks) < 2:
        p.kill()
        sys.exit(f"FAIL: expected 2 rank processes, found {ranks}")
    t0 = time.time()
    os.kill(int(ranks[-1]), signal.SIGKILL)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        sys.exit("FAIL: the job hung for 30 s after a rank was killed")
    if rc == 0:
        sys.exit("FAIL: the job exited 0 after a rank was killed")
    print(f"ok: a killed rank ends the job (exit {rc}) in {time.time() - t0:.1f} s")
    run([alibi, "eval", out, "--data", data, "--lengths", "16", "--max-tokens", "256"])
    done = log(out)[-1][0]
    saved = int(os.path.basename(last_ckpt(out))[5:14])
    run([alibi, "--threads", "1", "train", "--resume", out, "--steps", str(saved + 2)])
    if log(out)[-1][0] != saved + 2:
        sys.exit(f"FAIL: --resume after the kill did not reach step {saved + 2}")
    print(f"ok: its last checkpoint (step {saved}; killed at {done}) loads and resumes on 1 rank")

    for sig in (signal.SIGTERM, signal.SIGUSR1):
        stop_by_signal(alibi, data, f"{tmp}/{sig.name}", sig)

    base = [alibi, "--threads", "1", "train", "--data", data, *MODEL, "--steps", "2"]
    r = run(["mpirun", "--oversubscribe", "--bind-to", "none", "-np", "1", *base, "--out",
             f"{tmp}/flags", "--lr", "3e-3", ":", "-np", "1", *base, "--out", f"{tmp}/flags",
             "--lr", "1e-3"], ok=False)
    check_refusal(r, "other flags", f"{tmp}/flags")
    # Hosts of different sizes run different thread counts: that alone is the same job.
    r = run(["mpirun", "--oversubscribe", "--bind-to", "none", "-np", "1", alibi, "--threads",
             "1", *base[3:], "--out", f"{tmp}/sizes", "--oversubscribe", ":", "-np", "1",
             alibi, "--threads", "2", *base[3:], "--out", f"{tmp}/sizes", "--oversubscribe"])
    if not last_ckpt(f"{tmp}/sizes"):
        sys.exit(f"FAIL: ranks with 1 and 2 threads saved nothing:\n{r.stderr}")
    print("ok: ranks with 1 and 2 threads train together")
    ncores = os.cpu_count()
    r = run(mpirun(2, alibi, "--threads", str(ncores), "train", "--data", data, "--out",
                   f"{tmp}/threads", *MODEL, "--steps", "2"), ok=False)
    check_refusal(r, "--oversubscribe", f"{tmp}/threads")


def stop_by_signal(alibi, data, out, sig):
    cmd = mpirun(2, alibi, "--threads", "1", "train", "--data", data, "--out", out, *MODEL,
                 "--steps", "100000", "--save-every", "0")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                         start_new_session=True, text=True)
    if not wait_for(os.path.join(out, "log.jsonl"), 60):
        os.killpg(p.pid, signal.SIGKILL)
        sys.exit(f"FAIL: the job did not start:\n{p.communicate()[1][-3000:]}")
    time.sleep(1)
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        sys.exit(f"FAIL: {sig.name} to mpirun did not end the job in 60 s")
    saved = [f for f in os.listdir(out) if f.startswith("ckpt-")]
    stopped = [l for l in err.splitlines() if l.startswith("interrupted at step")]
    if len(saved) != 1 or len(stopped) != 1 or (sig == signal.SIGUSR1 and p.returncode != 0):
        sys.exit(f"FAIL: {sig.name} to mpirun: exit {p.returncode}, files {os.listdir(out)}\n"
                 f"{err[-3000:]}")
    step = int(stopped[0].split()[3].rstrip(";"))
    if log(out)[-1][0] != step or not saved[0].endswith(f"{step:09d}.safetensors"):
        sys.exit(f"FAIL: {sig.name}: stopped at {step} but saved {saved}")
    print(f"ok: {sig.name} to mpirun: every rank stopped at step {step}, saved {saved[0]}, "
          f"mpirun exit {p.returncode}")


def check_refusal(r, words, out):
    lines = [l for l in r.stderr.splitlines() if l.startswith("alibi: error")]
    if r.returncode != 2 or len(lines) != 1 or words not in lines[0] or os.path.exists(out):
        sys.exit(f"FAIL: expected exit 2, one line naming '{words}', nothing written; got "
                 f"{r.returncode}:\n{r.stderr}")
    print("ok: refused:", lines[0])


def main():
    alibi, case = os.path.abspath(sys.argv[1]), sys.argv[2]
    if shutil.which("mpirun") is None:
        print("SKIPPED: mpirun is missing (apt-get install openmpi-bin; scripts/setup.sh does)")
        sys.exit(SKIP)
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "corpus.txt")
        with lzma.open(os.path.join(REPO, "data", "default-corpus.txt.xz"), "rt") as f:
            open(text, "w").write(f.read()[:100_000])
        data = os.path.join(tmp, "data")
        run([alibi, "prepare", "--input", text, "--out", data, "--tokenizer", "bytes"])
        {"ranks": case_ranks, "resume": case_resume, "faults": case_faults,
         "hosts": case_hosts}[case](alibi, data, tmp)


if __name__ == "__main__":
    main()
