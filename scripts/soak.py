#!/usr/bin/env python3
"""Watch-mode soak: many small files pass through ONE `quickscan run` (watch mode) process in
batches against `quickscan emulator`; prints the worker's peak RSS (VmHWM) after the first,
middle and last batch. Run by hand (minutes, not seconds):

  scripts/soak [--files 200000] [--batches 20] [--binary PATH]

With --metrics, metrics are on (`metrics.listen`) and scraped after every batch. Passes when every file was filed and the peak RSS grew by at most 10 MB from the first batch
to the last (issue: watch mode's memory stays flat over a long life). Standard library only.
"""
import argparse, json, os, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, time, urllib.request


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def vm_hwm_kb(pid):
    return status_kb(pid, "VmHWM")


def breakdown(pid):
    """Where the resident memory is now: anonymous (heap), file-backed, shared (SQLite's -shm)."""
    return " ".join(f"{k}={status_kb(pid, k) / 1024:.1f}" for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"))


def scrape(port):
    """One scrape of the worker's /metrics: its size and the files filed clean, as it says."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    clean = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("quickscan_files_total") and 'outcome="clean"' in line)
    return f"{len(text)} bytes, quickscan_files_total{{outcome=clean}} {clean:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200_000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--binary", default=os.environ.get("QUICKSCAN_BIN", ".build/release/quickscan"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="print the figures after every batch")
    ap.add_argument("--metrics", action="store_true", help="serve /metrics (metrics.listen) and scrape it after every batch")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="quickscan-soak-")
    inbox, db = os.path.join(work, "inbox"), os.path.join(work, "db.sqlite")
    os.makedirs(inbox)
    config = os.path.join(work, "config.json")
    # With --metrics: served in watch mode, and scraped after every batch.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    with open(config, "w") as f:
        json.dump({"inboxes": [{"path": "inbox"}], "settle_seconds": 0, "poll_interval_seconds": 0.5, "database": "db.sqlite",
                   "volume": {"max_samples": 1000, "max_wait_seconds": 0.2}, "scan": {"poll_interval_seconds": 0.2},
                   "disposition": {"clean": {"action": "move", "to": "clean"}, "threat": {"action": "move", "to": "quarantine"},
                                   "not_scanned": {"action": "move", "to": "failed"}},
                   "delete_samples_after_scan": True, "log": {"level": "error"},
                   **({"metrics": {"listen": f"127.0.0.1:{metrics_port}"}} if a.metrics else {})}, f)
    # The API's real limit (6,000 calls a minute) would make this a one-hour rate-limit test:
    # the soak is about memory, so the emulator allows far more (and a quota that lasts).
    emulator = subprocess.Popen([a.binary, "emulator", "--port", "0", "--unaccepted-types", "scan", "--log-level", "critical",
                                 "--rate-limit", "10000000", "--quota-total", "100000000"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = emulator.stdout.readline().strip().removeprefix("listening on ")
    env = dict(os.environ, FALCON_CLIENT_ID="soak", FALCON_CLIENT_SECRET="soak-secret")
    worker = subprocess.Popen([a.binary, "run", "--config", config, "--base-url", url], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    per = a.files // a.batches
    marks = {0: "first", a.batches // 2: "middle", a.batches - 1: "last"}
    peaks, ok, started = {}, True, time.time()
    try:
        for b in range(a.batches):
            folder = os.path.join(inbox, f"b{b}")
            os.makedirs(folder)
            for i in range(per):
                with open(os.path.join(folder, f"f{i}.dat"), "w") as f:
                    f.write(f"soak {b} {i}\n")
            target = (b + 1) * per
            deadline = time.time() + 600
            while True:
                if worker.poll() is not None:
                    sys.exit(f"soak: the worker exited with {worker.returncode}")
                with sqlite3.connect(db, timeout=30) as c:
                    done = c.execute("SELECT COUNT(*) FROM files WHERE state = 'disposed'").fetchone()[0]
                if done >= target:
                    break
                if time.time() > deadline:
                    sys.exit(f"soak: batch {b} not filed after 600 s ({done} of {target})")
                time.sleep(0.5)
            shutil.rmtree(os.path.join(work, "clean", f"b{b}"), ignore_errors=True)  # keep the disk flat, not the worker
            scraped = scrape(metrics_port) if a.metrics else "off"
            if b in marks:
                peaks[marks[b]] = vm_hwm_kb(worker.pid) / 1024
                print(f"soak: after the {marks[b]} batch ({target} files, {time.time() - started:.0f} s): peak RSS {peaks[marks[b]]:.1f} MB "
                      f"(now MB: {breakdown(worker.pid)}; /metrics: {scraped})", flush=True)
            elif a.verbose:
                print(f"soak: batch {b}: peak RSS {vm_hwm_kb(worker.pid) / 1024:.1f} MB (now MB: {breakdown(worker.pid)})", flush=True)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=30)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    growth = peaks["last"] - peaks["first"]
    ok = growth <= 10 and code == 0
    print(f"soak: {'OK' if ok else 'FAILED'} files={a.files} batches={a.batches} growth={growth:.1f} MB (limit 10) "
          f"watch exit={code} elapsed={time.time() - started:.0f}s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
