#!/usr/bin/env python3
"""quickscan benchmarks (stdlib only); scripts/bench/run builds the binaries and calls this.

Each benchmark runs one unmeasured warm-up per side, then --repeat measured runs; the table shows
medians (peak RSS: the maximum over the measured runs, from os.wait4's ru_maxrss). The page cache
is not dropped (that needs root): every data set fits in RAM, so both sides read warm files.

  hash       quickscan hash FILE  vs  openssl dgst -sha256 FILE             (1 GiB; --quick 256 MiB)
  many       find | xargs -P2 quickscan hash (the reference's shape; the serial pipe is reported
             too), and quickscan hash with every path in one argument list,
             vs  find | xargs -P2 openssl dgst -sha256                 (20,000 x 4 KiB; --quick 5,000)
  ingest     quickscan-bench ingest INBOX DB  vs  find | xargs -P2 openssl dgst -sha256
                                                                  (100,000 x 4 KiB; --quick 20,000)
  idle       quickscan-bench idle-poll INBOX DB on the ingested inbox: time of one poll, SQLite writes
  custody    quickscan-bench ingest-custody INBOX DB: the ingest's files taken into custody (a fresh
             copy of the inbox each run, synced and, as root, owned by nobody: taken by link under
             a lease) vs the in-place ingest; the same with every file hard-linked (copied: the
             fallback, no target); one 1 GiB file into custody vs cp + openssl dgst -sha256
  e2e        quickscan run --once against quickscan emulator (instant scans), 2,000 x 4 KiB files
             (--quick 1,000). API calls per file: the emulator's own count when it prints a stderr
             line "emulator stats: {JSON with "requests"}" on shutdown, else the client's debug log
             of the warm-up run (one "falcon reply" line per HTTP reply). Upload concurrency and
             volume pipelining: a probe run with 20 ms of emulator latency on each upload and
             volume.max_samples a quarter of its files (400; --quick 200)
  upload     quickscan upload FILE (256 MiB) against the emulator: peak RSS
  throughput quickscan run --once vs the FalconPy Quick Scan sample's shape (upload each file one at
             a time, one ScanSamples, GetScans every 1 s until done, delete each sample one at a
             time; scripts/bench/falconpy_baseline.py in .venv-falconpy, made by
             scripts/falconpy-check), 1,000 x 2 KiB files, --fault latency:ms=50 on every call,
             deletes on; and API calls per distinct file with and without deletes
  ratelimit  quickscan run --once, 5,000 x 2 KiB files with deletes, against --rate-limit 6000
             (per minute, sliding): wall time against the window's floor, 429s, nothing lost
             (--quick: 2,000 files against --rate-limit 2400)
  latency    quickscan run (watch mode, shipped defaults) against an emulator that scans at
             once: files dropped a few seconds apart, time from drop to filed minus
             settle_seconds (median of 100; --quick 20), then a burst of 1,000 files: volumes
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MB = 1_000_000
KIB = 1024
MIB = 1024 * 1024
GIB = 1024 * MIB

SIZES = {
    "full": dict(big=GIB, many=20_000, inbox=100_000, e2e=2_000, probe=400, upload=256 * MIB, small=4 * KIB,
                 throughput=1_000, ratelimit=5_000, rate=6_000, drops=100, burst=1_000),
    "quick": dict(big=256 * MIB, many=5_000, inbox=20_000, e2e=1_000, probe=200, upload=256 * MIB, small=4 * KIB,
                  throughput=1_000, ratelimit=2_000, rate=2_400, drops=20, burst=1_000),
}
ALL = ["hash", "many", "ingest", "idle", "custody", "e2e", "upload", "throughput", "ratelimit", "latency"]
CHILD_TIMEOUT = 600
PROBE_LATENCY_MS = 20
THROUGHPUT_LATENCY_MS = 50
THROUGHPUT_SIZE = 2 * KIB
DROP_SPACING = 2.0  # seconds between watch-mode drops
FALCONPY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".venv-falconpy", "bin", "python")
PROBE_VOLUMES = 4  # the probe's volume.max_samples is a quarter of its files
FILES_PER_DIR = 1000


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def human_count(n):
    return f"{n:,}"


def human_bytes(n):
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------------------------------------
# Children: wall time and rusage from os.wait4


class Result:
    def __init__(self, args, wall, code, rusage, out, err):
        self.args, self.wall, self.code, self.out, self.err = args, wall, code, out, err
        self.maxrss_mb = rusage.ru_maxrss * 1024 / MB  # ru_maxrss is in KiB on Linux
        self.cpu = rusage.ru_utime + rusage.ru_stime
        self.utime, self.stime = rusage.ru_utime, rusage.ru_stime


def run(args, *, cwd=None, env=None, capture=False, check=True, timeout=CHILD_TIMEOUT):
    """Runs a child (a list, or a string for bash -c) and waits with os.wait4.

    ru_maxrss of wait4 covers the child and the descendants it waited for (a shell pipeline)."""
    argv = ["bash", "-c", args] if isinstance(args, str) else list(args)
    out = tempfile.TemporaryFile() if capture else subprocess.DEVNULL
    err = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
    timer = threading.Timer(timeout, lambda: os.kill(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        _, status, rusage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    proc.returncode = code = os.waitstatus_to_exitcode(status)

    def read(f):
        if f is subprocess.DEVNULL:
            return ""
        f.seek(0)
        text = f.read().decode("utf-8", "replace")
        f.close()
        return text

    result = Result(argv, wall, code, rusage, read(out), read(err))
    if check and code != 0:
        raise SystemExit(f"bench: {shlex.join(argv)} exited {code}\n{result.err[-2000:]}")
    return result


class Emulator:
    """quickscan emulator --port 0 as a child; the first stdout line is its address."""

    live = []

    count = 0

    def __init__(self, binary, workdir, *extra):
        Emulator.count += 1
        self.errpath = os.path.join(workdir, f"emulator-{Emulator.count}.stderr")
        self.errfile = open(self.errpath, "wb")
        self.stats = None
        self.proc = subprocess.Popen([binary, "emulator", "--port", "0", "--log-level", "warning", *extra],
                                     stdout=subprocess.PIPE, stderr=self.errfile)
        Emulator.live.append(self)
        timer = threading.Timer(30, self.proc.kill)
        timer.start()
        line = self.proc.stdout.readline().decode().strip()
        timer.cancel()
        if not line.startswith("listening on "):
            self.stop()
            raise SystemExit(f"bench: emulator did not start: {line!r} (see {self.errpath})")
        self.url = line[len("listening on "):]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errfile.close()
        if self in Emulator.live:
            Emulator.live.remove(self)
        # Server-side counters, if the emulator prints them on shutdown as one stderr line
        # "emulator stats: {JSON}" (e.g. {"requests": N, ...}); absent otherwise.
        with open(self.errpath, errors="replace") as f:
            for line in f:
                if "emulator stats: " in line:
                    try:
                        self.stats = json.loads(line.split("emulator stats: ", 1)[1])
                    except ValueError:
                        pass


@atexit.register
def _stop_emulators():
    for emulator in list(Emulator.live):
        emulator.stop()


# ---------------------------------------------------------------------------------------------
# Data sets: generated once, reused from --data when the marker matches


def dataset(root, name, params, build):
    path = os.path.join(root, name)
    marker = os.path.join(root, f".{name}.ok")
    stamp = json.dumps(params, sort_keys=True)
    if os.path.exists(marker) and os.path.exists(path):
        with open(marker) as f:
            if f.read() == stamp:
                return path
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)
    log(f"generating {name}")
    build(path)
    with open(marker, "w") as f:
        f.write(stamp)
    return path


def build_big(path, size):
    chunk = 4 * MIB
    with open(path + ".tmp", "wb") as f:
        left = size
        while left > 0:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
    os.rename(path + ".tmp", path)


def build_tree(path, count, size, tag):
    """count files of size bytes, FILES_PER_DIR per folder; each starts with a text header and
    is otherwise random, so every file is unique and the emulator's verdict is clean."""
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    for i in range(count):
        folder = os.path.join(tmp, f"d{i // FILES_PER_DIR:03d}")
        if i % FILES_PER_DIR == 0:
            os.makedirs(folder)
        header = f"quickscan bench {tag} file {i}\n".encode()
        fd = os.open(os.path.join(folder, f"f{i:06d}.bin"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, header + os.urandom(size - len(header)))
        os.close(fd)
    os.rename(tmp, path)


def big_file(root, size):
    return dataset(root, f"big-{size}.bin", {"size": size}, lambda p: build_big(p, size))


def tree(root, kind, count, size):
    name = f"{kind}-{count}x{size}"
    return dataset(root, name, {"count": count, "size": size}, lambda p: build_tree(p, count, size, kind))


# ---------------------------------------------------------------------------------------------
# Benchmarks


def median(values):
    return statistics.median(values)


class Row:
    def __init__(self, name, ours, ref, figure, target, ok):
        self.name, self.ours, self.ref, self.figure, self.target = name, ours, ref, figure, target
        self.result = "PASS" if ok is True else "FAIL" if ok is False else ok


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.sizes = SIZES["quick" if opts.quick else "full"]
        self.qs = opts.bin
        self.qsb = opts.bench_bin
        self.root = opts.data
        self.work = os.path.join(self.root, "work")
        if os.path.isdir(self.work):
            shutil.rmtree(self.work)
        os.makedirs(self.work)
        self.rows = []
        self.raw = []
        self.n = opts.repeat
        self.ingest_db = None
        self.env = dict(os.environ, FALCON_CLIENT_ID="bench", FALCON_CLIENT_SECRET="bench")
        self.env.pop("FALCON_BASE_URL", None)
        self.env.pop("FALCON_MEMBER_CID", None)

    def note(self, name, side, results, extra=""):
        walls = " ".join(f"{r.wall:.3f}" for r in results)
        cpus = " ".join(f"{r.cpu:.2f}" for r in results)
        rss = " ".join(f"{r.maxrss_mb:.1f}" for r in results)
        self.raw.append(f"{name} [{side}] wall s: {walls} | cpu s (user+sys): {cpus} | maxrss MB: {rss}{extra}")

    def repeat(self, fn):
        return [fn() for _ in range(self.n)]

    # -- hash one big file --------------------------------------------------------------------
    def bench_hash(self):
        size = self.sizes["big"]
        path = big_file(self.root, size)
        ours_cmd = [self.qs, "hash", path]
        ref_cmd = ["openssl", "dgst", "-sha256", path]
        ours_digest = run(ours_cmd, capture=True).out.split()[0]
        ref_digest = run(ref_cmd, capture=True).out.strip().rsplit("= ", 1)[-1]
        if ours_digest != ref_digest:
            raise SystemExit(f"bench: digests differ: quickscan {ours_digest}, openssl {ref_digest}")
        ours = self.repeat(lambda: run(ours_cmd))
        ref = self.repeat(lambda: run(ref_cmd))
        self.note("hash", "quickscan", ours)
        self.note("hash", "openssl", ref)
        o, r = median([x.wall for x in ours]), median([x.wall for x in ref])
        self.rows.append(Row(
            f"hash one {human_bytes(size)} file",
            f"{o:.3f} s ({size / o / MB:.0f} MB/s)", f"{r:.3f} s ({size / r / MB:.0f} MB/s)",
            f"time ratio {o / r:.2f}", "ratio <= 1.0", o / r <= 1.0))

    # -- hash many small files ----------------------------------------------------------------
    def bench_many(self):
        count, size = self.sizes["many"], self.sizes["small"]
        folder = tree(self.root, "many", count, size)
        ours_sh = f"find . -type f -print0 | xargs -0 {shlex.quote(self.qs)} hash"
        ref_sh = "find . -type f -print0 | xargs -0 -P2 openssl dgst -sha256"
        ours_out = run(ours_sh, cwd=folder, capture=True).out
        # Checked without -P2: two openssl processes on one pipe tear each other's lines.
        ref_out = run(ref_sh.replace(" -P2", ""), cwd=folder, capture=True).out
        run(ref_sh + " > /dev/null", cwd=folder)
        ours_map = dict((line[66:], line[:64]) for line in ours_out.splitlines())
        ref_map = {}
        for line in ref_out.splitlines():
            m = re.match(r"^SHA2?-?256\((.*)\)= ([0-9a-f]{64})$", line)
            if m:
                ref_map[m.group(1)] = m.group(2)
        if len(ours_map) != count or ours_map != ref_map:
            raise SystemExit(f"bench: quickscan hash and openssl disagree over {folder} "
                             f"({len(ours_map)} vs {len(ref_map)} digests)")
        # The same files as one argument list: one quickscan process instead of one per
        # 128 KiB of paths (xargs' buffer), i.e. without the extra process start-ups.
        paths = sorted("./" + os.path.relpath(os.path.join(d, f), folder)
                       for d, _, names in os.walk(folder) for f in names)
        argv = [self.qs, "hash", *paths]
        run(argv, cwd=folder)
        # Timed in the reference's own shape (xargs -P2); the serial pipe is reported too: its
        # process start-ups (13 ms each for quickscan, 2.6 ms for openssl) run one after another.
        ours_p2 = ours_sh.replace("xargs -0 ", "xargs -0 -P2 ")
        run(ours_p2 + " > /dev/null", cwd=folder)
        serial = self.repeat(lambda: run(ours_sh + " > /dev/null", cwd=folder))
        ours = self.repeat(lambda: run(ours_p2 + " > /dev/null", cwd=folder))
        one = self.repeat(lambda: run(argv, cwd=folder))
        ref = self.repeat(lambda: run(ref_sh + " > /dev/null", cwd=folder))
        procs = len(run(f"find . -type f -print0 | xargs -0 sh -c 'echo $#' x", cwd=folder, capture=True).out.split())
        plural = f"{procs} process{'es' if procs != 1 else ''}"
        self.note("many", f"find | xargs quickscan hash, serial ({plural})", serial)
        self.note("many", f"find | xargs -P2 quickscan hash ({plural})", ours)
        self.note("many", "quickscan hash, one process", one)
        self.note("many", "find | xargs -P2 openssl", ref)
        o, o1, r = median([x.wall for x in ours]), median([x.wall for x in one]), median([x.wall for x in ref])
        self.rows.append(Row(
            f"hash {human_count(count)} x {human_bytes(size)} files (find | xargs -P2)",
            f"{o:.3f} s ({count / o:,.0f} files/s)", f"{r:.3f} s ({count / r:,.0f} files/s)",
            f"time ratio {o / r:.2f}", "ratio <= 1.0", o / r <= 1.0))
        self.rows.append(Row(
            f"hash {human_count(count)} x {human_bytes(size)} files (one process)",
            f"{o1:.3f} s ({count / o1:,.0f} files/s)", f"{r:.3f} s ({count / r:,.0f} files/s)",
            f"time ratio {o1 / r:.2f}", "ratio <= 1.0", o1 / r <= 1.0))

    # -- ingest -------------------------------------------------------------------------------
    def fresh_db(self, name):
        db = os.path.join(self.work, name)
        for suffix in ("", "-wal", "-shm", ".lock", "-journal"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
        return db

    def ingest_once(self, inbox, count):
        db = self.fresh_db("ingest.sqlite")
        result = run([self.qsb, "ingest", inbox, db], capture=True)
        report = json.loads(result.out.strip().splitlines()[-1])
        if report["files"] != count:
            raise SystemExit(f"bench: ingest recorded {report['files']} files, expected {count}")
        result.inner = report["seconds"]
        self.ingest_db = db
        return result

    def bench_ingest(self):
        count, size = self.sizes["inbox"], self.sizes["small"]
        inbox = tree(self.root, "inbox", count, size)
        ref_sh = "find . -type f -print0 | xargs -0 -P2 openssl dgst -sha256 > /dev/null"
        self.ingest_once(inbox, count)
        run(ref_sh, cwd=inbox)
        ours = self.repeat(lambda: self.ingest_once(inbox, count))
        ref = self.repeat(lambda: run(ref_sh, cwd=inbox))
        inner = " ".join(f"{x.inner:.3f}" for x in ours)
        self.note("ingest", "quickscan-bench", ours, f" | ingestOnly() s: {inner}")
        self.note("ingest", "openssl -P2", ref)
        o, r = median([x.wall for x in ours]), median([x.wall for x in ref])
        ratio = (count / o) / (count / r)
        self.rows.append(Row(
            f"ingest {human_count(count)} x {human_bytes(size)} files",
            f"{o:.2f} s ({count / o:,.0f} files/s)", f"{r:.2f} s ({count / r:,.0f} files/s)",
            f"{ratio:.2f} x reference files/s", ">= 0.5 x", ratio >= 0.5))
        rss = max(x.maxrss_mb for x in ours)
        self.rows.append(Row(
            f"peak RSS, ingest {human_count(count)} files", f"{rss:.1f} MB", f"{max(x.maxrss_mb for x in ref):.1f} MB",
            f"{rss:.1f} MB", "<= 100 MB", rss <= 100))

    # -- custody ------------------------------------------------------------------------------
    def custody_once(self, master, count, linked=False):
        """One custody ingest of a fresh copy of `master` (custody empties the inbox).

        By default the inbox holds real copies, as dropped files are: one link each, on disk
        (synced before the run, outside the measurement), owned by another user when we are
        root (nobody, 65534), so the worker takes each one by link under a lease and makes it
        its own. With `linked`, the inbox is a hard-linked copy of `master` instead (every file
        has a second link), so the worker copies each file (the fallback)."""
        inbox = os.path.join(self.work, "custody-inbox")
        if os.path.exists(inbox):
            shutil.rmtree(inbox)
        if linked:
            run(["cp", "-al", master, inbox])
        else:
            run(["cp", "-a", master, inbox])
            if os.geteuid() == 0:
                run(["chown", "-R", "65534:65534", inbox])
            run(["sync", "-f", inbox])
        db = self.fresh_db("custody.sqlite")
        for leftover in ("custody.sqlite.spool", "filed-clean", "filed-threat", "filed-failed"):
            shutil.rmtree(os.path.join(self.work, leftover), ignore_errors=True)
        result = run([self.qsb, "ingest-custody", inbox, db], capture=True)
        report = json.loads(result.out.strip().splitlines()[-1])
        if report["files"] != count:
            raise SystemExit(f"bench: custody ingest recorded {report['files']} files, expected {count}")
        left = sum(len(names) for _, _, names in os.walk(inbox))
        if left:
            raise SystemExit(f"bench: custody left {left} originals in the inbox")
        result.inner = report["seconds"]
        return result

    def bench_custody(self):
        # Many small files: custody (each file linked into the spool under a lease and made
        # ours, syncfs, durable record) against today's in-place ingest, in the same run; and
        # the copy fallback (files with a second link: copied into the spool while hashed,
        # syncfs, durable record, original unlinked), reported without a target.
        count, size = self.sizes["inbox"], self.sizes["small"]
        master = tree(self.root, "inbox", count, size)
        self.custody_once(master, count)
        ours = self.repeat(lambda: self.custody_once(master, count))
        inplace = self.repeat(lambda: self.ingest_once(master, count))
        self.custody_once(master, count, linked=True)
        copied = self.repeat(lambda: self.custody_once(master, count, linked=True))
        self.note("custody", "ingest-custody", ours, " | ingestOnly() s: " + " ".join(f"{x.inner:.3f}" for x in ours))
        self.note("custody", "ingest in place", inplace)
        self.note("custody", "ingest-custody, second link (copied)", copied, " | ingestOnly() s: " + " ".join(f"{x.inner:.3f}" for x in copied))
        o, p, c = median([x.inner for x in ours]), median([x.inner for x in inplace]), median([x.inner for x in copied])
        self.rows.append(Row(
            f"ingest {human_count(count)} x {human_bytes(size)} files with custody",
            f"{o:.2f} s ({count / o:,.0f} files/s)", f"in place {p:.2f} s ({count / p:,.0f} files/s)",
            f"{count / o:,.0f} files/s", ">= 20,000 files/s", count / o >= 20_000))
        self.rows.append(Row(
            f"the same, every file with a second link (copied, not linked)",
            f"{c:.2f} s ({count / c:,.0f} files/s)", f"in place {p:.2f} s", f"{count / c:,.0f} files/s", "(fallback)", "info"))
        # One big file: taken by link, hashed under the lease, synced, against cp then openssl
        # dgst; the reference is shown with and without a sync of its copy (custody's file is
        # durable when recorded).
        size = self.sizes["big"]
        path = big_file(self.root, size)
        big_master = os.path.join(self.root, "custody-big")
        if not os.path.isdir(big_master):
            os.makedirs(big_master)
            os.link(path, os.path.join(big_master, "big.bin"))
        copy = os.path.join(self.work, "copy.bin")
        ref_sh = f"cp {shlex.quote(path)} {shlex.quote(copy)} && openssl dgst -sha256 {shlex.quote(copy)} > /dev/null"
        ref_sync_sh = f"cp {shlex.quote(path)} {shlex.quote(copy)} && sync {shlex.quote(copy)} && openssl dgst -sha256 {shlex.quote(copy)} > /dev/null"
        def ref_once(sh):
            if os.path.exists(copy):
                os.unlink(copy)
            return run(sh)
        self.custody_once(big_master, 1)
        ref_once(ref_sh)
        ours = self.repeat(lambda: self.custody_once(big_master, 1))
        ref = self.repeat(lambda: ref_once(ref_sh))
        ref_sync = self.repeat(lambda: ref_once(ref_sync_sh))
        self.note("custody-big", "ingest-custody", ours, " | ingestOnly() s: " + " ".join(f"{x.inner:.3f}" for x in ours))
        self.note("custody-big", "cp + openssl", ref)
        self.note("custody-big", "cp + sync + openssl", ref_sync)
        o, r, rs = median([x.wall for x in ours]), median([x.wall for x in ref]), median([x.wall for x in ref_sync])
        self.rows.append(Row(
            f"one {human_bytes(size)} file into custody (linked under a lease, hashed, synced)",
            f"{o:.3f} s", f"cp+openssl {r:.3f} s; cp+sync+openssl {rs:.3f} s",
            f"ratio {o / r:.2f} ({o / rs:.2f} vs the synced copy)", "<= 0.8", o / r <= 0.8))

    # -- idle poll ----------------------------------------------------------------------------
    def bench_idle(self):
        count, size = self.sizes["inbox"], self.sizes["small"]
        inbox = tree(self.root, "inbox", count, size)
        if self.ingest_db is None:
            self.ingest_once(inbox, count)
        db = self.ingest_db

        def poll():
            result = run([self.qsb, "idle-poll", inbox, db], capture=True)
            result.report = json.loads(result.out.strip().splitlines()[-1])
            return result

        poll()
        ours = self.repeat(poll)
        ms = [x.report["seconds"] * 1000 for x in ours]
        writes = [x.report["writes"] for x in ours]
        entries = [x.report["entries"] for x in ours]
        self.note("idle", "quickscan-bench", ours,
                  f" | pollOnce() ms: {' '.join(f'{v:.1f}' for v in ms)} | writes: {writes} | entries: {entries}")
        m = median(ms)
        self.rows.append(Row(
            f"idle poll, {human_count(count)} unchanged files", f"{m:.1f} ms, {max(writes)} writes", "-",
            f"{m:.1f} ms, {max(writes)} writes ({entries[0]:,} entries)", "<= 300 ms, 0 writes",
            m <= 300 and max(writes) == 0))
        rss = max(x.maxrss_mb for x in ours)
        self.rows.append(Row(
            f"peak RSS, idle poll {human_count(count)} files", f"{rss:.1f} MB", "-", f"{rss:.1f} MB", "<= 100 MB",
            rss <= 100))

    # -- end to end ---------------------------------------------------------------------------
    def e2e_once(self, inbox, count, *, debug=False, faults=(), max_samples=None):
        emulator = Emulator(self.qs, self.work, *[a for f in faults for a in ("--fault", f)])
        try:
            db = self.fresh_db("e2e.sqlite")
            config = os.path.join(self.work, "e2e.json")
            with open(config, "w") as f:
                json.dump({
                    "inboxes": [{"path": inbox}],
                    "settle_seconds": 0,
                    "database": db,
                    "volume": {"max_wait_seconds": 0, **({"max_samples": max_samples} if max_samples else {})},
                    "scan": {"poll_interval_seconds": 0.05},
                    "disposition": {k: {"action": "leave"} for k in ("clean", "threat", "not_scanned")},
                    "log": {"level": "debug" if debug else "warning", "format": "json" if debug else "text"},
                }, f)
            result = run([self.qs, "run", "--once", "--config", config, "--base-url", emulator.url],
                         env=self.env, check=False)
        finally:
            emulator.stop()
        result.server_requests = (emulator.stats or {}).get("requests")
        if result.code != 0:
            raise SystemExit(f"bench: quickscan run --once exited {result.code}\n{result.err[-3000:]}")
        with sqlite3.connect(db) as conn:
            outcomes = dict(conn.execute("SELECT outcome, COUNT(*) FROM results GROUP BY outcome").fetchall())
        if outcomes != {"clean": count}:
            raise SystemExit(f"bench: end to end: expected {count} clean files, got {outcomes}")
        return result

    @staticmethod
    def replies(stderr):
        """(timestamp, operation) of each "falcon reply" debug line (JSON log format)."""
        out = []
        for line in stderr.splitlines():
            if '"falcon reply"' not in line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("message") != "falcon reply":
                continue
            ts = datetime.datetime.fromisoformat(obj["ts"].replace("Z", "+00:00")).timestamp()
            out.append((ts, obj.get("metadata", {}).get("falcon.operation", "?")))
        return out

    @classmethod
    def timeline(cls, stderr):
        """Reply times of uploads and of ScanSamples, sorted."""
        events = cls.replies(stderr)
        return (sorted(t for t, op in events if op == "UploadSampleV3"),
                sorted(t for t, op in events if op == "ScanSamples"))

    def bench_e2e(self):
        count, size = self.sizes["e2e"], self.sizes["small"]
        inbox = tree(self.root, "e2e", count, size)
        warm = self.e2e_once(inbox, count, debug=True)
        calls = {}
        for _, op in self.replies(warm.err):
            calls[op] = calls.get(op, 0) + 1
        total = sum(calls.values())
        ours = self.repeat(lambda: self.e2e_once(inbox, count))
        server = [x.server_requests for x in [warm] + ours]
        if all(v is not None for v in server):
            source = f"emulator-counted requests (warm-up, measured runs): {server}"
            total = median(server[1:])
        else:
            source = "emulator prints no request count: client-side count"
        self.note("e2e", "quickscan run --once", ours,
                  f" | HTTP replies seen by the client in the warm-up run: {sum(calls.values())} "
                  f"{json.dumps(calls, sort_keys=True)} | {source}")

        # Probe: 20 ms of latency on every upload, to see uploads overlap and volumes go out
        # while uploads are still running.
        pcount = self.sizes["probe"]
        pinbox = tree(self.root, "probe", pcount, size)
        probe = self.e2e_once(pinbox, pcount, debug=True, max_samples=PROBE_VOLUMES and pcount // PROBE_VOLUMES,
                              faults=[f"latency:ms={PROBE_LATENCY_MS},op=UploadSampleV3"])
        uploads, scans = self.timeline(probe.err)
        if uploads:
            span = uploads[-1] - uploads[0] + PROBE_LATENCY_MS / 1000
            inflight = len(uploads) * PROBE_LATENCY_MS / 1000 / span
        else:
            span, inflight = 0, 0
        early = sum(1 for t in scans if uploads and t < uploads[-1])
        warm_uploads, warm_scans = self.timeline(warm.err)
        warm_early = sum(1 for t in warm_scans if warm_uploads and t < warm_uploads[-1])
        self.raw.append(
            f"e2e probe [{pcount} files, volume.max_samples {pcount // PROBE_VOLUMES}, +{PROBE_LATENCY_MS} ms per upload] "
            f"wall {probe.wall:.2f} s | {len(uploads)} upload replies over {span:.2f} s => {inflight:.1f} uploads in "
            f"flight on average | {early} of {len(scans)} ScanSamples replies before the last upload reply "
            f"(warm-up run, default max_samples: {warm_early} of {len(warm_scans)})")

        o = median([x.wall for x in ours])
        per_file = total / count if total else None
        calls_text = f"{per_file:.2f} API calls/file" if per_file is not None else "API calls/file n/a"
        concurrent, pipelined = inflight >= 1.5, early > 0
        self.rows.append(Row(
            f"end to end, {human_count(count)} x {human_bytes(size)} files, emulator", f"{o:.2f} s ({count / o:,.0f} files/s)",
            "-", f"{count / o:,.0f} files/s; {calls_text}; uploads in flight {inflight:.1f}; "
                 f"{early}/{len(scans)} volumes sent before the last upload",
            "reported; uploads concurrent, volumes pipelined", concurrent and pipelined))

    # -- upload -------------------------------------------------------------------------------
    def bench_upload(self):
        size = self.sizes["upload"]
        path = big_file(self.root, size)
        emulator = Emulator(self.qs, self.work)
        try:
            env = dict(self.env, FALCON_BASE_URL=emulator.url)
            cmd = [self.qs, "upload", path]
            run(cmd, env=env)
            ours = self.repeat(lambda: run(cmd, env=env))
        finally:
            emulator.stop()
        self.note("upload", "quickscan upload", ours)
        rss = max(x.maxrss_mb for x in ours)
        o = median([x.wall for x in ours])
        self.rows.append(Row(
            f"peak RSS, upload one {human_bytes(size)} file", f"{rss:.1f} MB ({o:.2f} s, {size / o / MB:.0f} MB/s)", "-",
            f"{rss:.1f} MB", "<= 64 MB", rss <= 64))

    # -- throughput: concurrent uploads and deletes vs FalconPy's sample ------------------------
    def qs_once(self, inbox, emulator, *, delete, name):
        db = self.fresh_db(f"{name}.sqlite")
        config = os.path.join(self.work, f"{name}.json")
        with open(config, "w") as f:
            json.dump({
                "inboxes": [{"path": inbox}],
                "settle_seconds": 0,
                "database": db,
                "delete_samples_after_scan": delete,
                "disposition": {k: {"action": "leave"} for k in ("clean", "threat", "not_scanned")},
                "log": {"level": "warning"},
            }, f)
        result = run([self.qs, "run", "--once", "--config", config, "--base-url", emulator.url], env=self.env, check=False)
        with sqlite3.connect(db) as conn:
            result.outcomes = dict(conn.execute("SELECT outcome, COUNT(*) FROM results GROUP BY outcome").fetchall())
            result.pending_deletes = conn.execute("SELECT COUNT(*) FROM samples WHERE delete_pending = 1").fetchone()[0]
        if result.code not in (0, 1, 2):
            raise SystemExit(f"bench: quickscan run --once exited {result.code}\n{result.err[-3000:]}")
        return result

    def qs_against(self, inbox, faults=(), extra=(), *, delete, name):
        emulator = Emulator(self.qs, self.work, "--unaccepted-types", "scan", *[a for f in faults for a in ("--fault", f)], *extra)
        try:
            result = self.qs_once(inbox, emulator, delete=delete, name=name)
        finally:
            emulator.stop()
        result.stats = emulator.stats or {}
        return result

    @staticmethod
    def calls_per_file(stats, files):
        """API calls per distinct file, token calls aside: (total, breakdown)."""
        keys = ("uploads", "samples_deleted", "scan_samples_calls", "get_scans_calls")
        parts = {k: stats.get(k, 0) for k in keys}
        api = stats.get("requests", 0) - stats.get("tokens_issued", 0) - stats.get("revokes", 0)
        return api / files, parts, api

    def bench_throughput(self):
        count = self.sizes["throughput"]
        inbox = tree(self.root, "throughput", count, THROUGHPUT_SIZE)
        fault = f"latency:ms={THROUGHPUT_LATENCY_MS}"
        self.qs_against(inbox, [fault], delete=True, name="tp-warm")
        ours = self.repeat(lambda: self.qs_against(inbox, [fault], delete=True, name="tp"))
        for r in ours:
            if sum(r.outcomes.values()) != count or r.pending_deletes or r.stats.get("samples_deleted") != count:
                raise SystemExit(f"bench: throughput: lost work: {r.outcomes}, {r.pending_deletes} deletes pending, {r.stats}")
        self.note("throughput", "quickscan run --once, deletes on", ours,
                  f" | emulator stats of the last run: {json.dumps(ours[-1].stats, sort_keys=True)}")
        o = median([x.wall for x in ours])
        per_file, parts, api = self.calls_per_file(ours[-1].stats, count)
        nodel = self.qs_against(inbox, [fault], delete=False, name="tp-nodelete")
        per_file_nodel, parts_nodel, _ = self.calls_per_file(nodel.stats, count)
        self.raw.append(f"api calls per distinct file: {per_file_nodel:.3f} without deletes {json.dumps(parts_nodel, sort_keys=True)}; "
                        f"{per_file:.3f} with deletes {json.dumps(parts, sort_keys=True)}")
        self.rows.append(Row(
            f"API calls per distinct file, {human_count(count)} files (token calls aside)",
            f"{per_file_nodel:.3f} / {per_file:.3f}", "-", "without / with deletes",
            "1.0 / 2.0 + amortised ScanSamples, GetScans", per_file_nodel <= 1.01 and per_file <= 2.01))

        if not os.path.exists(FALCONPY):
            log("FalconPy baseline skipped: run scripts/falconpy-check once to create .venv-falconpy")
            ref_text, ratio, ok = "n/a (no .venv-falconpy)", None, "SKIP"
        else:
            emulator = Emulator(self.qs, self.work, "--unaccepted-types", "scan", "--fault", fault)
            try:
                ref = run([FALCONPY, os.path.join(os.path.dirname(os.path.abspath(__file__)), "falconpy_baseline.py"), emulator.url, inbox],
                          capture=True, timeout=1200)
            finally:
                emulator.stop()
            info = json.loads(ref.out.strip().splitlines()[-1])
            if info["files"] != count:
                raise SystemExit(f"bench: FalconPy baseline saw {info['files']} files")
            self.note("throughput", "FalconPy sample shape", [ref], f" | {json.dumps(info, sort_keys=True)}")
            ratio = ref.wall / o
            ref_text, ok = f"{ref.wall:.1f} s ({info['calls']} calls)", ratio >= 10
        self.rows.append(Row(
            f"end to end {human_count(count)} x {human_bytes(THROUGHPUT_SIZE)}, +{THROUGHPUT_LATENCY_MS} ms per call, deletes on, vs FalconPy sample",
            f"{o:.2f} s", ref_text, f"{ratio:.1f} x faster" if ratio else "-", ">= 10 x", ok))

    # -- the real rate limit --------------------------------------------------------------------
    def bench_ratelimit(self):
        count, rate = self.sizes["ratelimit"], self.sizes["rate"]
        inbox = tree(self.root, "ratelimit", count, THROUGHPUT_SIZE)
        # The fewest requests the run needs: one upload and one delete per file, a ScanSamples
        # per 1,000 and a GetScans; the sliding window lets `rate` go at once and the next
        # `rate` only a minute after, so an infinitely fast client needs 60 s per full window
        # beyond the first.
        needed = 2 * count + -(-count // 1000) + 1
        floor = 60.0 * (-(-needed // rate) - 1)
        results = []
        for i in range(max(1, self.n)):
            r = self.qs_against(inbox, extra=("--rate-limit", str(rate)), delete=True, name=f"rl{i}")
            if sum(r.outcomes.values()) != count or r.pending_deletes or r.stats.get("samples_deleted") != count:
                raise SystemExit(f"bench: ratelimit: lost work: {r.outcomes}, {r.pending_deletes} deletes pending, {r.stats}")
            results.append(r)
        self.note("ratelimit", f"quickscan run --once, --rate-limit {rate}", results,
                  " | " + " ; ".join(json.dumps(r.stats, sort_keys=True) for r in results))
        o = median([x.wall for x in results])
        api = [r.stats.get("requests", 0) - r.stats.get("tokens_issued", 0) - r.stats.get("revokes", 0) for r in results]
        limited = [r.stats.get("rate_limited", 0) for r in results]
        share = max(l / a for l, a in zip(limited, api))
        self.raw.append(f"ratelimit: {needed} requests needed, floor {floor:.1f} s; requests {api}; 429s {limited}")
        self.rows.append(Row(
            f"{human_count(count)} files with deletes under --rate-limit {rate}/min (sliding)",
            f"{o:.1f} s", f"floor {floor:.0f} s", f"{o / floor:.2f} x floor; 429s {max(limited)} ({share:.2%})" if floor else "-",
            "<= 1.15 x floor, <= 1 % 429", (floor == 0 or o <= 1.15 * floor) and share <= 0.01))

    # -- watch-mode latency ---------------------------------------------------------------------
    def bench_latency(self):
        drops, burst = self.sizes["drops"], self.sizes["burst"]
        base = os.path.join(self.work, "latency")
        shutil.rmtree(base, ignore_errors=True)
        inbox, clean, staging = (os.path.join(base, d) for d in ("inbox", "clean", "staging"))
        for d in (inbox, staging):
            os.makedirs(d)
        db = os.path.join(base, "db.sqlite")
        config = os.path.join(base, "config.json")
        with open(config, "w") as f:  # shipped defaults for everything else
            json.dump({"inboxes": [{"path": inbox}], "database": db,
                       "disposition": {"clean": {"action": "move", "to": clean}, "threat": {"action": "move", "to": clean},
                                       "not_scanned": {"action": "move", "to": clean}},
                       "log": {"level": "warning"}}, f)
        settle = 5.0  # the shipped settle_seconds
        emulator = Emulator(self.qs, self.work, "--scan-polls-until-done", "0", "--unaccepted-types", "scan")
        worker = subprocess.Popen([self.qs, "run", "--config", config, "--base-url", emulator.url], env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(base, "worker.stderr"), "wb"))
        seen = {}
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                if os.path.isdir(clean):
                    now = time.time()
                    for entry in os.scandir(clean):
                        seen.setdefault(entry.name, now)
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            time.sleep(1)
            dropped = {}
            for i in range(drops):
                name = f"drop{i:03d}.txt"
                src = os.path.join(staging, name)
                with open(src, "wb") as f:
                    f.write(f"latency drop {i} {os.urandom(8).hex()}\n".encode())
                dropped[name] = time.time()
                os.rename(src, os.path.join(inbox, name))
                time.sleep(DROP_SPACING)
            deadline = time.time() + 60
            while len([n for n in dropped if n in seen]) < drops and time.time() < deadline:
                time.sleep(0.1)
            latencies = sorted(seen[n] - t - settle for n, t in dropped.items() if n in seen)
            if len(latencies) < drops:
                raise SystemExit(f"bench: latency: only {len(latencies)} of {drops} drops filed")
            # A burst: one volume for all of it.
            burst_dir = os.path.join(staging, "burst")
            os.makedirs(burst_dir)
            for i in range(burst):
                with open(os.path.join(burst_dir, f"b{i:04d}.txt"), "wb") as f:
                    f.write(f"burst {i} {os.urandom(8).hex()}\n".encode())
            burst_at = time.time()
            os.rename(burst_dir, os.path.join(inbox, "burst"))
            deadline = time.time() + 120
            while len([n for n in seen if n.startswith("b")]) < 1 and time.time() < deadline:
                time.sleep(0.1)
            burst_root = os.path.join(clean, "burst")
            while (not os.path.isdir(burst_root) or len(os.listdir(burst_root)) < burst) and time.time() < deadline:
                time.sleep(0.1)
            burst_done = time.time() - burst_at
            with sqlite3.connect(db) as conn:
                volumes = conn.execute("SELECT COUNT(*) FROM volumes WHERE state = 'done' AND intent_at >= ?", (burst_at,)).fetchone()[0]
        finally:
            stop.set()
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
            emulator.stop()
        med = median(latencies)
        p90 = latencies[int(0.9 * (len(latencies) - 1))]
        self.raw.append(f"latency: {drops} drops {DROP_SPACING} s apart, drop to filed minus settle_seconds {settle}: "
                        f"median {med:.3f} s, p90 {p90:.3f} s, min {latencies[0]:.3f} s, max {latencies[-1]:.3f} s; "
                        f"burst of {burst} files filed in {burst_done:.1f} s in {volumes} volume(s)")
        self.rows.append(Row(
            f"watch mode, shipped defaults: drop to filed, minus settle_seconds (median of {drops})",
            f"{med:.2f} s (p90 {p90:.2f} s)", "-", f"burst of {human_count(burst)} files: {volumes} volume(s)",
            "<= 1 s; a burst in one volume", med <= 1.0 and volumes == 1))

    # -- output -------------------------------------------------------------------------------
    def table(self):
        header = ["benchmark", "ours (median)", "reference (median)", "figure", "target", "result"]
        rows = [[r.name, r.ours, r.ref, r.figure, r.target, r.result] for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        for row in rows:
            lines.append("| " + " | ".join(str(x).ljust(w) for x, w in zip(row, widths)) + " |")
        return "\n".join(lines)


def tool_version(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except Exception:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="data folder, reused when present (default: a temporary folder, removed after)")
    ap.add_argument("--repeat", type=int, default=3, help="measured runs per benchmark and side (default 3)")
    ap.add_argument("--quick", action="store_true", help="CI-sized data: 256 MiB, 5,000 files, 20,000-file ingest")
    ap.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--json", metavar="FILE", help="also write the rows and raw samples as JSON")
    ap.add_argument("--strict", action="store_true", help="exit 1 when any target fails")
    ap.add_argument("--bin", default=os.environ.get("QUICKSCAN_BIN"), help="quickscan binary (QUICKSCAN_BIN)")
    ap.add_argument("--bench-bin", default=os.environ.get("QUICKSCAN_BENCH_BIN"),
                    help="quickscan-bench binary (QUICKSCAN_BENCH_BIN)")
    opts = ap.parse_args()
    if not opts.bin or not opts.bench_bin:
        ap.error("give --bin and --bench-bin (or QUICKSCAN_BIN and QUICKSCAN_BENCH_BIN); scripts/bench/run does")
    opts.bin, opts.bench_bin = os.path.abspath(opts.bin), os.path.abspath(opts.bench_bin)
    if opts.repeat < 1:
        ap.error("--repeat must be at least 1")
    selected = [s.strip() for s in opts.only.split(",") if s.strip()]
    unknown = [s for s in selected if s not in ALL]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {ALL}")
    for tool in ("openssl", "find", "xargs", "bash"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is required")

    temporary = opts.data is None
    opts.data = os.path.abspath(opts.data or tempfile.mkdtemp(prefix="quickscan-bench-"))
    os.makedirs(opts.data, exist_ok=True)
    started = time.perf_counter()
    bench = Bench(opts)
    try:
        for name in ALL:
            if name in selected:
                t = time.perf_counter()
                log(f"{name} ...")
                getattr(bench, f"bench_{name}")()
                log(f"{name} done in {time.perf_counter() - t:.1f} s")
    finally:
        if temporary:
            shutil.rmtree(opts.data, ignore_errors=True)
        else:
            shutil.rmtree(bench.work, ignore_errors=True)

    elapsed = time.perf_counter() - started
    print(f"quickscan benchmarks ({'quick' if opts.quick else 'full'}, {opts.repeat} measured runs per side, "
          f"medians; peak RSS = max ru_maxrss over the measured runs, 1 MB = 10^6 bytes)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}; "
          f"{tool_version(['openssl', 'version'])}; quickscan {opts.bin}")
    print("page cache: not dropped (no privileges); every data set fits in RAM and each side ran once "
          "unmeasured first, so both sides read warm files")
    print()
    print(bench.table())
    print()
    print("raw samples:")
    for line in bench.raw:
        print("  " + line)
    print(f"total benchmark time {elapsed:.0f} s")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"rows": [vars(r) for r in bench.rows], "raw": bench.raw, "seconds": elapsed}, f, indent=2)
    if opts.strict and any(r.result == "FAIL" for r in bench.rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
