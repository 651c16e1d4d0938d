#!/usr/bin/env python3
"""Crash and signal campaign: stop `alibi train` at random moments, resume, prove nothing is lost.

    python3 scripts/crash_campaign.py [--alibi build/alibi] [--signals KILL,INT,TERM]
                                      [--trials 30] [--mpirun 2] [--seed 1]

Prepares a small byte corpus (the start of data/default-corpus.txt.xz) and trains a reference
run of a tiny model with dropout to --steps without interruption, keeping a checkpoint of every
step. Then, for each signal of --signals, --trials times, starts the same run in a fresh folder
and stops it again and again, resuming each time with a plain `train --resume RUN` (no --steps:
a resume continues to the run's recorded length) until it completes:

- KILL: SIGKILL at a random moment. A share of the kills (--write-share) land inside a
  checkpoint write: the run gets ALIBI_TEST_PAUSE_IN_WRITE (a test-only hook in src/core/io.cpp
  that pauses halfway through writing the temporary, after a marker line on stderr) and is killed
  in that pause. After every kill each ckpt-*.safetensors in the folder must be complete and equal
  to the reference's of the same step, the newest must never go back, and the resume must start
  at once (the run folder's lock died with the process).
- INT, TERM, USR1: the graceful stop. Each segment gets one signal, at a moment drawn among
  start-up, training steps, validation (ALIBI_TEST_PAUSE_IN_VALIDATION) and a checkpoint write.
  It must exit 0, with its newest checkpoint at the step it stopped (the step its stderr and its
  log.jsonl end at), equal to the reference's. A segment ended by any other status is a crash.
  Signals are sent once the process has blocked them (/proc/PID/status): before that it is still
  loading its libraries, and a signal ends it by its default action, as it would any program.

At the end the final checkpoint must equal the reference's (every tensor's bytes, and the step),
and no temporary nor checkpoint past --keep may be left. With --mpirun N every run (the
reference too) is `mpirun -np N`, the signals go to mpirun (which forwards SIGUSR1 and SIGTERM to
every rank), and mpirun itself must exit 0 (use USR1: OpenMPI 4.1's mpirun exits 1 after it
forwards a SIGTERM). One exception: a signal that reaches mpirun after its ranks have ended
kills mpirun during its teardown; that is accepted only when the job completed (final checkpoint
written, summary printed), and counted as "after the job completed". Exit status 0 when every
trial passes, 1 otherwise.
"""
import argparse
import json
import lzma
import os
import queue
import random
import re
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
# restore the random stream to be bit-identical. Its weight-gradient products (K = 128 rows) take
# the oneDNN sgemm path that points rsp at the heap (src/core/signals.h).
MODEL = ["--pos", "alibi", "--layers", "2", "--d-model", "32", "--heads", "4", "--ffn", "64",
         "--seq-len", "32", "--batch", "4", "--warmup", "5", "--lr", "3e-3", "--seed", "5",
         "--dropout", "0.1", "--attn-dropout", "0.1"]
# Not part of a run's identity: given again on every resume.
RUNTIME = ["--eval-every", "20", "--eval-windows", "4", "--log-every", "10"]
MARKER = "alibi: test: paused in "
DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "U8": 1}
STOPPED = re.compile(r"^(?:interrupted|time limit reached) at step (\d+); saved (\S+)$")
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM,
           "USR1": signal.SIGUSR1}


class Broken(Exception):
    """A checkpoint that is incomplete, foreign or different from the reference; a crash."""


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


def last_logged_step(run):
    with open(os.path.join(run, "log.jsonl")) as f:
        lines = [l for l in f if l.strip()]
    return json.loads(lines[-1])["step"] if lines else 0


# mpirun as root (CI) and in containers without cross-memory attach, as tests/test_distributed.py.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}


def alibi_cmd(args, *rest):
    cmd = [args.alibi, "--threads", "1", *rest]
    if args.mpirun:
        cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(args.mpirun), *cmd]
    return cmd


def run_ok(cmd, what):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, **MPI_ENV))
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
    run_ok([args.alibi, "prepare", "--input", corpus, "--out", data, "--tokenizer", "bytes"],
           "prepare")
    return data


def fresh_cmd(args, data, run, save_every, keep):
    return alibi_cmd(args, "train", "--data", data, "--out", run, *MODEL, *RUNTIME,
                     "--steps", str(args.steps), "--save-every", str(save_every),
                     "--keep", str(keep))


def resume_cmd(args, run):
    """The plain resume a user types: the run's own length, flags of its identity not repeated."""
    return alibi_cmd(args, "train", "--resume", run, *RUNTIME,
                     "--save-every", str(args.save_every), "--keep", str(args.keep))


def check_empty_resume(args, work):
    """What `--resume` does with a folder that holds no checkpoint (documents the restart)."""
    empty = os.path.join(work, "empty-run")
    os.makedirs(empty)
    r = subprocess.run([args.alibi, "--threads", "1", "train", "--resume", empty],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 2 or "holds no checkpoint" not in r.stderr:
        sys.exit(f"FAIL: --resume of an empty folder: exit {r.returncode}, {r.stderr!r}")
    print("resume of a folder without checkpoint: refused (exit 2, 'holds no checkpoint'); "
          "such a run is restarted with the original command")


def descendants(pid):
    """pid and every process below it (ranks under mpirun), from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def takes_signal(pid, sig):
    """True once process pid blocks sig (alibi's stop thread takes it) or has a handler for it."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(l.split(":", 1) for l in f if ":" in l)
    except OSError:
        return False
    bit = 1 << (sig - 1)
    return any(int(fields[k].strip(), 16) & bit for k in ("SigBlk", "SigCgt"))


class Segment:
    """One start of the run: a process whose stderr is read by a thread (marker lines queued)."""

    def __init__(self, cmd, env):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env)
        self.lines, self.markers = [], queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", errors="backslashreplace")
            if line.encode("utf-8") != raw:
                line = f"NOT UTF-8: {raw!r}\n"
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

    def wait_ready(self, sig, mpirun, timeout=60):
        """True once every alibi process of the segment takes sig (under mpirun: the ranks, every
        process below mpirun that does); False if it ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            procs = descendants(self.proc.pid)[1:] if mpirun else [self.proc.pid]
            ready = [p for p in procs if takes_signal(p, sig)]
            if len(ready) >= max(1, mpirun):
                return True
            time.sleep(0.002)
        return False

    def send(self, sig, mpirun):
        """Sends sig unless the work has ended: the process is gone, or under mpirun no rank is
        left (mpirun is then tearing down, and OpenMPI 4.1's mpirun no longer forwards the signal
        but dies by it). False when not sent."""
        if self.proc.poll() is not None:
            return False
        if mpirun and len(descendants(self.proc.pid)) < 2:
            return False
        self.proc.send_signal(sig)
        return True

    def finish(self):
        code = self.proc.wait(timeout=600)
        self.reader.join(timeout=10)
        return code, "".join(self.lines)


class Trial:
    def __init__(self, args, rng, data, ref, name, sig, work):
        self.args, self.rng, self.data, self.ref, self.sig = args, rng, data, ref, sig
        self.run = os.path.join(work, name)
        self.stops = self.in_write = self.starts = self.restarts = 0
        self.late = 0  # under mpirun: signals that reached mpirun after the job had completed
        self.moments = {}
        self.newest = 0  # the newest checkpoint's step seen after a stop: must never go back

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
        return newest

    def start(self, env):
        """The next segment: a resume, or the original command while there is no checkpoint."""
        a = self.args
        if checkpoints(self.run):
            cmd = resume_cmd(a, self.run)
        else:  # again, over what a run killed before its first checkpoint left
            cmd = fresh_cmd(a, self.data, self.run, a.save_every, a.keep)
            if self.starts > 0:
                cmd.append("--replace")
            self.restarts += self.starts > 0
        self.starts += 1
        return Segment(cmd, env)

    def moment(self):
        """Where the next stop falls; 'none' once the trial has stopped the run often enough."""
        a = self.args
        if self.stops >= a.max_kills:
            return "none"
        if self.sig == signal.SIGKILL:
            return "write" if self.rng.random() < a.write_share else "timed"
        return self.rng.choices(["startup", "timed", "validation", "write"],
                                weights=[1, 3, 1, 1])[0]

    def stop(self, seg, moment):
        """Sends the trial's signal to seg at `moment`; False if the segment ended first."""
        a = self.args
        if self.sig != signal.SIGKILL and not seg.wait_ready(self.sig, a.mpirun):
            return False
        if moment in ("write", "validation"):
            # The k-th pause of this segment; 1 to 3 so later saves (and pruning) are hit too.
            if not seg.wait_marker(self.rng.randint(1, 3), timeout=300):
                return False
            time.sleep(self.rng.uniform(0.0, 0.8 * a.pause))
        elif moment == "startup":
            time.sleep(self.rng.uniform(0.0, a.startup_window))
        else:
            try:
                seg.proc.wait(timeout=self.rng.uniform(0.0, a.kill_window))
                return False
            except subprocess.TimeoutExpired:
                pass
        return seg.send(self.sig, a.mpirun)

    def execute(self):
        a = self.args
        while True:
            if self.starts > a.max_kills + 5:
                raise Broken(f"still not complete after {self.starts} starts")
            temps_before = temporaries(self.run)
            moment = self.moment()
            env = dict(os.environ, **MPI_ENV)
            if moment == "write":
                env["ALIBI_TEST_PAUSE_IN_WRITE"] = str(a.pause)
            elif moment == "validation":
                env["ALIBI_TEST_PAUSE_IN_VALIDATION"] = str(a.pause)
            seg = self.start(env)
            sent = moment != "none" and self.stop(seg, moment)
            code, err = seg.finish()
            if sent:
                self.stops += 1
                self.moments[moment] = self.moments.get(moment, 0) + 1
                if temporaries(self.run) - temps_before or moment == "write":
                    self.in_write += 1
            if self.sig == signal.SIGKILL and sent and code == -signal.SIGKILL:
                self.check_folder()
                continue
            if a.mpirun and sent and code == -self.sig and self.completed(err):
                # The ranks ended between the check in send() and the signal: mpirun died by it
                # while tearing down. The job itself completed; its folder is checked below.
                self.late += 1
                break
            if code != 0:
                raise Broken(f"segment ({moment}) exited {code}: {err[-1500:]}")
            if "NOT UTF-8: " in err:
                raise Broken(f"stderr is not text: {err[-1500:]}")
            if temporaries(self.run):
                raise Broken(f"temporaries left after a clean exit: {sorted(temporaries(self.run))}")
            stopped = [m for m in map(STOPPED.match, err.splitlines()) if m]
            newest = self.check_folder()
            if stopped:  # a graceful stop: the checkpoint of the step it stopped at
                at = int(stopped[-1].group(1))
                if newest != at or last_logged_step(self.run) != at:
                    raise Broken(f"stopped at step {at}: newest checkpoint {newest}, log ends "
                                 f"at {last_logged_step(self.run)}")
                continue
            break  # the run completed
        self.check_final()

    def completed(self, err):
        """True if the segment's job ran to its last step (rank 0 printed the job's summary)."""
        final = os.path.join(self.run, f"ckpt-{self.args.steps:09d}.safetensors")
        return os.path.exists(final) and any(l.startswith("job: ") for l in err.splitlines())

    def check_final(self):
        a = self.args
        final = os.path.join(self.run, f"ckpt-{a.steps:09d}.safetensors")
        if not os.path.exists(final):
            raise Broken(f"the completed run has no {os.path.basename(final)}")
        self.check_folder()
        left, surplus = temporaries(self.run), len(checkpoints(self.run)) - a.keep
        if left:
            raise Broken(f"temporaries left after completion: {sorted(left)}")
        if surplus > 0:
            raise Broken(f"{a.keep + surplus} checkpoints kept, --keep {a.keep}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--alibi", default=os.path.join(REPO, "build", "alibi"), help="the binary")
    p.add_argument("--signals", default="KILL",
                   help="comma-separated, of KILL, INT, TERM, USR1: --trials of each")
    p.add_argument("--trials", type=int, default=30, help="runs per signal to stop and resume")
    p.add_argument("--mpirun", type=int, default=0, help="ranks per run under mpirun (0: none)")
    p.add_argument("--seed", type=int, default=1, help="seed of the stop schedule")
    p.add_argument("--steps", type=int, default=60, help="steps of each run")
    p.add_argument("--save-every", type=int, default=5, help="steps between checkpoints")
    p.add_argument("--keep", type=int, default=2, help="checkpoints kept by the trial runs")
    p.add_argument("--corpus-bytes", type=int, default=100_000, help="bytes of the corpus")
    p.add_argument("--max-kills", type=int, default=8, help="stops per trial at most")
    p.add_argument("--write-share", type=float, default=0.4,
                   help="share of kills aimed inside a checkpoint write")
    p.add_argument("--pause", type=float, default=0.3,
                   help="seconds a hooked write or validation pauses")
    p.add_argument("--work", help="working folder (default: a fresh temporary one, removed)")
    args = p.parse_args()
    if not os.access(args.alibi, os.X_OK):
        sys.exit(f"FAIL: --alibi '{args.alibi}' is not an executable; build alibi first")
    names = [s.strip().upper() for s in args.signals.split(",") if s.strip()]
    bad = [s for s in names if s not in SIGNALS]
    if bad or not names:
        sys.exit(f"FAIL: --signals '{args.signals}'; expected a list of {', '.join(SIGNALS)}")
    if args.mpirun and "KILL" in names:
        sys.exit("FAIL: --mpirun takes the graceful signals (USR1, TERM, INT), not KILL")
    if args.mpirun and shutil.which("mpirun") is None:
        print("SKIPPED: --mpirun needs mpirun (apt-get install openmpi-bin)")
        sys.exit(77)
    t0 = time.monotonic()
    work = args.work or tempfile.mkdtemp(prefix="alibi-crash-")
    os.makedirs(work, exist_ok=True)
    try:
        failures = campaign(args, [SIGNALS[s] for s in names], work, t0)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


def campaign(args, sigs, work, t0):
    data = prepare_corpus(args, work)
    check_empty_resume(args, work)
    ref_dir = os.path.join(work, "reference")
    t_ref = time.monotonic()
    run_ok(fresh_cmd(args, data, ref_dir, save_every=1, keep=10**6), "reference run")
    ref_wall = time.monotonic() - t_ref
    ref = dict(load_checkpoint(os.path.join(ref_dir, n)) for n in checkpoints(ref_dir))
    if sorted(ref) != list(range(1, args.steps + 1)):
        sys.exit(f"FAIL: the reference run has checkpoints {sorted(ref)}, not 1..{args.steps}")
    # Timed stops fall anywhere in one uninterrupted run's time: start-up, steps, saves.
    args.kill_window = ref_wall
    args.startup_window = min(0.3, ref_wall / 4)
    print(f"reference: {args.steps} steps, {len(ref)} checkpoints, {ref_wall:.2f} s"
          f"{f' on {args.mpirun} ranks' if args.mpirun else ''}")
    rng = random.Random(args.seed)
    failures = 0
    for sig in sigs:
        name = signal.Signals(sig).name
        totals = {"stops": 0, "in_write": 0}
        moments = {}
        bad = 0
        for i in range(args.trials):
            t = Trial(args, rng, data, ref, f"{name}-{i:03d}", sig, work)
            try:
                t.execute()
                result = "OK (final checkpoint bit-identical)"
            except (Broken, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as e:
                bad += 1
                result = f"FAIL: {e}"
            totals["stops"] += t.stops
            totals["in_write"] += t.in_write
            for k, v in t.moments.items():
                moments[k] = moments.get(k, 0) + v
            late = f", {t.late} after the job completed" if t.late else ""
            print(f"{name} trial {i + 1:3d}: {t.stops} stops, {t.in_write} inside a write, "
                  f"{t.starts} starts ({t.restarts} fresh restarts{late}): {result}", flush=True)
            shutil.rmtree(t.run, ignore_errors=True)
        where = ", ".join(f"{k} {v}" for k, v in sorted(moments.items()))
        print(f"{name} campaign: {args.trials} trials, {totals['stops']} signals ({where}), "
              f"{totals['in_write']} inside a checkpoint write, {bad} failed, "
              f"{time.monotonic() - t0:.0f} s so far (seed {args.seed}): "
              f"{'PASS' if bad == 0 else 'FAIL'}", flush=True)
        failures += bad
    return failures


if __name__ == "__main__":
    main()
