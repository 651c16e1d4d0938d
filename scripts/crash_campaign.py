#!/usr/bin/env python3
"""Crash campaign: SIGKILL `alibi train` at random moments, resume, and prove nothing is lost.

    python3 scripts/crash_campaign.py [--alibi build/alibi] [--trials 30] [--seed 1]

Prepares a small byte corpus (the start of data/default-corpus.txt.xz), trains a reference run
of a tiny model with dropout to --steps without interruption (keeping every checkpoint), then
for each trial starts the same run in a fresh folder and kills it with SIGKILL again and again,
resuming each time (`train --resume RUN`), until it completes. A share of the kills
(--write-share) land inside a checkpoint write: the run gets ALIBI_TEST_PAUSE_IN_WRITE (a
test-only hook in src/core/io.cpp that pauses halfway through writing the temporary, after a
marker line on stderr) and is killed during that pause. After every kill each
ckpt-*.safetensors in the run folder must be complete (its header and sizes agree with the
file) and equal, tensor for tensor, to the reference's checkpoint of the same step, and the
newest checkpoint must never go back; at the end the final checkpoint must equal the
reference's (every tensor's bytes, and the step), and no temporary nor checkpoint past --keep
may be left: a kill between the final checkpoint's rename and the clean-up that follows it is
tidied by the resume that finds the run complete.

`train --resume` on a folder without a checkpoint is refused (exit 2, "holds no checkpoint"):
the campaign checks that once, and a run killed before its first checkpoint is restarted with
the original command. Exit status 0 when every trial passes, 1 otherwise.
"""
import argparse
import json
import lzma
import os
import queue
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A tiny model (well under 50 ms a step on one core) with dropout, so that resuming must also
# restore the random stream to be bit-identical.
MODEL = ["--pos", "alibi", "--layers", "2", "--d-model", "32", "--heads", "4", "--ffn", "64",
         "--seq-len", "32", "--batch", "4", "--warmup", "5", "--lr", "3e-3", "--seed", "5",
         "--dropout", "0.1", "--attn-dropout", "0.1"]
# Not part of a run's identity: given again on every resume.
RUNTIME = ["--eval-every", "20", "--eval-windows", "4", "--log-every", "10"]
MARKER = "alibi: test: paused in write of"
DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "U8": 1}


class Broken(Exception):
    """A checkpoint that is incomplete, foreign or different from the reference."""


def load_checkpoint(path):
    """(step, {tensor name: raw bytes}) of a complete alibi safetensors file, else Broken."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise Broken(f"{path}: {len(blob)} bytes, shorter than the header length field")
    (hlen,) = struct.unpack_from("<Q", blob)
    if 8 + hlen > len(blob):
        raise Broken(f"{path}: header of {hlen} bytes runs past the file's {len(blob)}")
    try:
        header = json.loads(blob[8:8 + hlen])
    except ValueError as e:
        raise Broken(f"{path}: header is not JSON ({e})") from e
    meta = header.pop("__metadata__", {})
    if not meta.get("format", "").startswith("alibi-checkpoint"):
        raise Broken(f"{path}: metadata format {meta.get('format')!r}")
    base, end, out = 8 + hlen, 0, {}
    for name, t in header.items():
        lo, hi = t["data_offsets"]
        count = 1
        for d in t["shape"]:
            count *= d
        if hi - lo != count * DTYPE_BYTES[t["dtype"]]:
            raise Broken(f"{path}: tensor {name} spans {hi - lo} bytes, its shape needs more")
        out[name] = blob[base + lo:base + hi]
        end = max(end, hi)
    if base + end != len(blob):
        raise Broken(f"{path}: {len(blob)} bytes, the header describes {base + end}")
    return int(meta["step"]), out


def step_of(name):
    return int(name[len("ckpt-"):-len(".safetensors")])


def checkpoints(run):
    if not os.path.isdir(run):
        return []
    return sorted(n for n in os.listdir(run)
                  if n.startswith("ckpt-") and n.endswith(".safetensors"))


def temporaries(run):
    if not os.path.isdir(run):
        return set()
    return {n for n in os.listdir(run) if n.startswith("ckpt-") and ".tmp-" in n}


def alibi_cmd(args, *rest):
    return [args.alibi, "--threads", "1", *rest]


def run_ok(cmd, what):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"FAIL: {what}: {' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-2000:]}")
    return r


def prepare_corpus(args, work):
    src = os.path.join(REPO, "data", "default-corpus.txt.xz")
    with lzma.open(src, "rb") as f:
        text = f.read(args.corpus_bytes)
    text = text[:text.rfind(b"\n") + 1]  # whole lines: no UTF-8 sequence cut in two
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "wb") as f:
        f.write(text)
    data = os.path.join(work, "data")
    run_ok(alibi_cmd(args, "prepare", "--input", corpus, "--out", data, "--tokenizer", "bytes"),
           "prepare")
    return data


def fresh_cmd(args, data, run, keep):
    return alibi_cmd(args, "train", "--data", data, "--out", run, *MODEL, *RUNTIME,
                     "--steps", str(args.steps), "--save-every", str(args.save_every),
                     "--keep", str(keep))


def resume_cmd(args, run):
    return alibi_cmd(args, "train", "--resume", run, "--steps", str(args.steps), *RUNTIME,
                     "--save-every", str(args.save_every), "--keep", str(args.keep))


def check_empty_resume(args, work):
    """What `--resume` does with a folder that holds no checkpoint (documents the restart)."""
    empty = os.path.join(work, "empty-run")
    os.makedirs(empty)
    r = subprocess.run(alibi_cmd(args, "train", "--resume", empty, "--steps", "1"),
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 2 or "holds no checkpoint" not in r.stderr:
        sys.exit(f"FAIL: --resume of an empty folder: exit {r.returncode}, {r.stderr!r}")
    print("resume of a folder without checkpoint: refused (exit 2, 'holds no checkpoint'); "
          "such a run is restarted with the original command")


class Segment:
    """One start of the run: a process whose stderr is read by a thread (marker lines queued)."""

    def __init__(self, cmd, env):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.lines, self.markers = [], queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith(MARKER):
                self.markers.put(line)
        self.markers.put(None)  # end of stream: the process is gone

    def wait_marker(self, count, timeout):
        """True once COUNT markers were seen; False if the process ended first."""
        deadline = time.monotonic() + timeout
        for _ in range(count):
            try:
                if self.markers.get(timeout=max(0.0, deadline - time.monotonic())) is None:
                    return False
            except queue.Empty:
                return False
        return True

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def finish(self):
        code = self.proc.wait(timeout=600)
        self.reader.join(timeout=10)
        return code, "".join(self.lines)


class Trial:
    def __init__(self, args, rng, data, ref, index, work):
        self.args, self.rng, self.data, self.ref = args, rng, data, ref
        self.run = os.path.join(work, f"trial-{index:03d}")
        self.kills = self.hooked = self.by_chance = self.starts = self.restarts = 0
        self.newest = 0  # the newest checkpoint's step seen after a kill: must never go back

    def check_folder(self):
        names = checkpoints(self.run)
        for n in names:
            step, tensors = load_checkpoint(os.path.join(self.run, n))
            if step != step_of(n):
                raise Broken(f"{n} holds step {step}")
            if tensors != self.ref[step]:
                raise Broken(f"{n} differs from the reference's step {step}")
        newest = step_of(names[-1]) if names else 0
        if newest < self.newest:
            raise Broken(f"newest checkpoint went back from step {self.newest} to {newest}")
        self.newest = newest

    def start(self):
        """The next segment: a resume, or the original command while there is no checkpoint."""
        a = self.args
        mode = "none"
        if self.kills < a.max_kills:
            mode = "write" if self.rng.random() < a.write_share else "timed"
        env = dict(os.environ)
        if mode == "write":
            env["ALIBI_TEST_PAUSE_IN_WRITE"] = str(a.pause)
        if checkpoints(self.run):
            cmd = resume_cmd(a, self.run)
        else:
            cmd = fresh_cmd(a, self.data, self.run, a.keep)
            self.restarts += self.starts > 0
        self.starts += 1
        return Segment(cmd, env), mode

    def execute(self):
        a = self.args
        while True:
            if self.starts > a.max_kills + 5:
                raise Broken(f"still not complete after {self.starts} starts")
            temps_before = temporaries(self.run)
            seg, mode = self.start()
            if mode == "write":
                # The k-th save of this segment; 1 to 3 so later saves (and pruning) are hit too.
                if seg.wait_marker(self.rng.randint(1, 3), timeout=300):
                    time.sleep(self.rng.uniform(0.0, 0.8 * a.pause))
                    seg.kill()
            elif mode == "timed":
                try:
                    seg.proc.wait(timeout=self.rng.uniform(0.0, a.kill_window))
                except subprocess.TimeoutExpired:
                    seg.kill()
            code, err = seg.finish()
            if code == 0:
                break
            if code != -signal.SIGKILL:
                raise Broken(f"segment exited {code}: {err[-1500:]}")
            self.kills += 1
            if temporaries(self.run) - temps_before:  # a temporary appeared: killed in a write
                if mode == "write":
                    self.hooked += 1
                else:
                    self.by_chance += 1
            self.check_folder()
        final = os.path.join(self.run, f"ckpt-{a.steps:09d}.safetensors")
        if not os.path.exists(final):
            raise Broken(f"the completed run has no {os.path.basename(final)}")
        self.check_folder()
        left, surplus = temporaries(self.run), len(checkpoints(self.run)) - a.keep
        if left:
            raise Broken(f"temporaries left after completion: {sorted(left)}")
        elif surplus > 0:
            raise Broken(f"{a.keep + surplus} checkpoints kept, --keep {a.keep}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--alibi", default=os.path.join(REPO, "build", "alibi"), help="the binary")
    p.add_argument("--trials", type=int, default=30, help="runs to kill and resume")
    p.add_argument("--seed", type=int, default=1, help="seed of the kill schedule")
    p.add_argument("--steps", type=int, default=60, help="steps of each run")
    p.add_argument("--save-every", type=int, default=5, help="steps between checkpoints")
    p.add_argument("--keep", type=int, default=2, help="checkpoints kept by the trial runs")
    p.add_argument("--corpus-bytes", type=int, default=100_000, help="bytes of the corpus")
    p.add_argument("--max-kills", type=int, default=8, help="kills per trial at most")
    p.add_argument("--write-share", type=float, default=0.4,
                   help="share of kills aimed inside a checkpoint write")
    p.add_argument("--pause", type=float, default=0.3,
                   help="seconds a hooked write pauses (ALIBI_TEST_PAUSE_IN_WRITE)")
    p.add_argument("--work", help="working folder (default: a fresh temporary one, removed)")
    args = p.parse_args()
    if not os.access(args.alibi, os.X_OK):
        sys.exit(f"FAIL: --alibi '{args.alibi}' is not an executable; build alibi first")
    t0 = time.monotonic()
    work = args.work or tempfile.mkdtemp(prefix="alibi-crash-")
    os.makedirs(work, exist_ok=True)
    try:
        failures = campaign(args, work, t0)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


def campaign(args, work, t0):
    data = prepare_corpus(args, work)
    check_empty_resume(args, work)
    ref_dir = os.path.join(work, "reference")
    t_ref = time.monotonic()
    run_ok(fresh_cmd(args, data, ref_dir, keep=10**6), "reference run")
    ref_wall = time.monotonic() - t_ref
    ref = dict(load_checkpoint(os.path.join(ref_dir, n)) for n in checkpoints(ref_dir))
    if args.steps not in ref:
        sys.exit(f"FAIL: the reference run has no checkpoint of step {args.steps}")
    # Timed kills fall anywhere in one uninterrupted run's time: start-up, steps, saves.
    args.kill_window = ref_wall
    print(f"reference: {args.steps} steps, {len(ref)} checkpoints, {ref_wall:.2f} s")
    rng = random.Random(args.seed)
    totals = {"kills": 0, "hooked": 0, "by_chance": 0}
    failures = 0
    for i in range(args.trials):
        t = Trial(args, rng, data, ref, i, work)
        try:
            t.execute()
            result = "OK (final checkpoint bit-identical)"
        except (Broken, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as e:
            failures += 1
            result = f"FAIL: {e}"
        totals["kills"] += t.kills
        totals["hooked"] += t.hooked
        totals["by_chance"] += t.by_chance
        print(f"trial {i + 1:3d}: {t.kills} kills, {t.hooked + t.by_chance} inside a write "
              f"({t.hooked} hooked, {t.by_chance} by chance), {t.starts} starts "
              f"({t.restarts} fresh restarts): {result}", flush=True)
        shutil.rmtree(t.run, ignore_errors=True)
    inside = totals["hooked"] + totals["by_chance"]
    print(f"crash campaign: {args.trials} trials, {totals['kills']} kills, {inside} inside a "
          f"checkpoint write ({totals['hooked']} hooked, {totals['by_chance']} by chance), "
          f"{failures} failed, {time.monotonic() - t0:.0f} s "
          f"(seed {args.seed}): "
          f"{'PASS' if failures == 0 else 'FAIL'}")
    return failures


if __name__ == "__main__":
    main()
