#!/usr/bin/env python3
"""Crash torture: SIGKILL `quickscan run --once` at random moments until it completes, then
check every invariant. Standard library only.

  scripts/torture [--files 2000] [--min-kills 50] [--seed 1] [--api quickscan|quickscanpro]
                  [--fault SPEC]... [--keep]

Invariants checked after the final run:
  * every file of the inbox has exactly one final outcome, in the folder of its outcome, with
    identical bytes (SHA-256 recomputed), and nothing is left in the inbox or in the custody
    spool, file or journal (every move disposition: the worker takes each file into custody);
  * no sha256 was submitted in two volumes (quickscan), or scanned twice (quickscanpro: one
    LaunchScan per sha256), as the API saw it (read back from the emulator with the CLI);
  * the event log agrees with the final state of every file version;
  * the run's exit code is 1 (the inbox holds threats).
Prints one summary line; exits 1 on any violation.
"""
import argparse, hashlib, json, os, random, shutil, signal, sqlite3, subprocess, sys, tempfile, time

EICAR = b'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
PNG = b'\x89PNG\r\n\x1a\n'


def make_inbox(inbox, count, rng):
    """A mixed inbox: clean files, duplicates, EICAR, images, suspicious markers, odd names."""
    expected = {}
    for i in range(count):
        kind = rng.random()
        folder = f"batch{i % 17}/sub{i % 5}" if i % 3 else ""
        if kind < 0.04:
            name, data, where = f"eicar {i}.com", EICAR, "quarantine"
        elif kind < 0.07:
            name, data, where = f"photo_{i}.png", PNG + bytes([i % 251]) * 40, "failed"
        elif kind < 0.09:
            name, data, where = f"sus-{i}.bin", b"QUICKSCAN-EMULATOR-SUSPICIOUS " + str(i).encode(), "quarantine"
        elif kind < 0.20:
            name, data, where = f"dup {i}.txt", b"shared content " + str(i % 7).encode(), "clean"
        elif kind < 0.23:
            name, data, where = f"odd \"name\", {i} \u00fc\u00df \U0001F4C4.txt", f"odd {i}".encode(), "clean"
        else:
            name, data, where = f"file-{i}.dat", os.urandom(rng.choice([0, 1, 100, 4096, 70000])), "clean"
        rel = os.path.join(folder, name) if folder else name
        path = os.path.join(inbox, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        expected[rel] = (where, hashlib.sha256(data).hexdigest())
    return expected


def start_emulator(binary, faults):
    # --unaccepted-types scan: the torture's clean files are plain text, which the emulator would
    # otherwise answer "unknown" (not on Sample Uploads' accepted list).
    args = [binary, "emulator", "--port", "0", "--scan-polls-until-done", "1", "--unaccepted-types", "scan",
            "--log-level", "critical"]
    for spec in faults:
        args += ["--fault", spec]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        sys.exit(f"torture: emulator did not start: {line!r}")
    return proc, line[len("listening on "):]


def run_worker(binary, config, base_url, kill_after, env):
    """Returns None when killed, else the exit code."""
    proc = subprocess.Popen([binary, "run", "--once", "--config", config, "--base-url", base_url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        code = proc.wait(timeout=kill_after)
        return code
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None


def cli_json(binary, env, *args):
    out = subprocess.run([binary, *args, "--json"], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--min-kills", type=int, default=50)
    ap.add_argument("--max-kill-delay", type=float, default=0.5, help="seconds; kills land in [0.02, this]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--api", choices=["quickscan", "quickscanpro"], default="quickscan", help="falcon.api of the worker")
    ap.add_argument("--fault", action="append", default=None, help="emulator fault spec (repeatable)")
    ap.add_argument("--binary", default=os.environ.get("QUICKSCAN_BIN", ".build/debug/quickscan"))
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    pro = a.api == "quickscanpro"
    faults = a.fault if a.fault is not None else [
        "latency:ms=3", f"lost-response:op={'LaunchScan' if pro else 'ScanSamples'},every=5", "5xx:status=503,every=23",
        f"drop:every=31,op={'UploadFileQuickScanPro' if pro else 'UploadSampleV3'}", "429:retry-after=1,every=97"]
    rng = random.Random(a.seed)
    work = tempfile.mkdtemp(prefix="quickscan-torture-")
    inbox = os.path.join(work, "inbox")
    os.makedirs(inbox)
    expected = make_inbox(inbox, a.files, rng)
    config = os.path.join(work, "config.json")
    with open(config, "w") as f:
        json.dump({"falcon": {"api": a.api}, "inboxes": [{"path": "inbox"}], "settle_seconds": 0, "database": "db.sqlite",
                   "volume": {"max_samples": 50, "max_wait_seconds": 0},
                   "scan": {"poll_interval_seconds": 0.05, "timeout_seconds": 120, "max_attempts": 5},
                   "disposition": {"clean": {"action": "move", "to": "clean"},
                                   "threat": {"action": "move", "to": "quarantine"},
                                   "not_scanned": {"action": "move", "to": "failed"}},
                   "log": {"level": "critical"}}, f)
    emulator, base_url = start_emulator(a.binary, faults)
    env = dict(os.environ, FALCON_CLIENT_ID="torture", FALCON_CLIENT_SECRET="torture-secret", FALCON_BASE_URL=base_url)
    started = time.time()
    kills, runs, final = 0, 0, None
    problems = []
    try:
        while final is None and runs < 10 * a.min_kills + 100:
            runs += 1
            if kills < a.min_kills:
                final = run_worker(a.binary, config, base_url, rng.uniform(0.02, a.max_kill_delay), env)
                if final is None:
                    kills += 1
            else:
                final = run_worker(a.binary, config, base_url, 600, env)
        elapsed = time.time() - started
        if final != 1:
            problems.append(f"final exit code {final}, expected 1")
        if kills < a.min_kills:
            problems.append(f"only {kills} kills: the run finished too early (use more files)")

        # Every file once, in its folder, byte-identical; nothing left behind.
        for rel, (where, digest) in expected.items():
            found = [d for d in ("clean", "quarantine", "failed") if os.path.lexists(os.path.join(work, d, rel))]
            if found != [where]:
                problems.append(f"{rel}: in {found or 'no folder'}, expected {where}")
                continue
            with open(os.path.join(work, where, rel), "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    problems.append(f"{rel}: bytes differ")
        left = [os.path.join(r, n) for r, _, ns in os.walk(inbox) for n in ns]
        if left:
            problems.append(f"{len(left)} files left in the inbox, e.g. {left[0]}")
        filed = sum(len(ns) for d in ("clean", "quarantine", "failed") for _, _, ns in os.walk(os.path.join(work, d)))
        if filed != len(expected):
            problems.append(f"{filed} files filed for {len(expected)} taken")
        spool = os.path.join(work, "db.sqlite.spool")
        stray = [n for n in os.listdir(spool) if n.endswith((".spool", ".journal"))] if os.path.isdir(spool) else []
        if stray:
            problems.append(f"{len(stray)} files or journals left in the custody spool, e.g. {stray[0]}")

        db = sqlite3.connect(os.path.join(work, "db.sqlite"))
        rows = db.execute("SELECT path, outcome FROM results").fetchall()
        per_path = {}
        for path, outcome in rows:
            per_path.setdefault(path, []).append(outcome)
        twice = [p for p, o in per_path.items() if len(o) != 1]
        if twice or len(per_path) != len(expected):
            problems.append(f"{len(per_path)} paths with outcomes for {len(expected)} files; {len(twice)} with several")
        open_rows = db.execute("SELECT COUNT(*) FROM files WHERE state NOT IN ('disposed','superseded')").fetchone()[0]
        if open_rows:
            problems.append(f"{open_rows} file versions not final")
        mismatched = db.execute("""SELECT COUNT(*) FROM files f WHERE f.state != (SELECT e.to_state FROM events e
                                   WHERE e.entity = 'file' AND e.entity_id = CAST(f.id AS TEXT) ORDER BY e.id DESC LIMIT 1)""").fetchone()[0]
        if mismatched:
            problems.append(f"event log disagrees with {mismatched} file states")
        outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM results GROUP BY outcome").fetchall())
        volumes = db.execute("SELECT COUNT(*) FROM volumes WHERE state = 'done'").fetchone()[0]
        adopted = db.execute("SELECT COUNT(*) FROM events WHERE entity = 'volume' AND detail LIKE 'adopted%'").fetchone()[0]

        # No sha256 in two volumes (or two Pro scans), as the API saw it.
        seen = {}
        if pro:
            ids = cli_json(a.binary, env, "pro", "query", "--filter", "", "--limit", "5000")["resources"]
            for i in range(0, len(ids), 100):
                for scan in cli_json(a.binary, env, "pro", "results", *ids[i:i + 100]).get("resources", []):
                    sha = scan.get("scan", {}).get("sha256")
                    seen[sha] = seen.get(sha, 0) + 1
        else:
            ids = cli_json(a.binary, env, "submissions", "--limit", "5000")["resources"]
            for i in range(0, len(ids), 100):
                for scan in cli_json(a.binary, env, "scans", *ids[i:i + 100]).get("resources", []):
                    for sample in scan.get("samples", []):
                        seen[sample["sha256"]] = seen.get(sample["sha256"], 0) + 1
        double = [s for s, n in seen.items() if n > 1]
        if double:
            problems.append(f"{len(double)} sha256 {'scanned twice' if pro else 'submitted in two volumes'}")
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    status = "OK" if not problems else f"FAILED ({len(problems)} problems)"
    print(f"torture: {status} api={a.api} files={len(expected)} kills={kills} runs={runs} exit={final} "
          f"clean={outcomes.get('clean', 0)} threat={outcomes.get('threat', 0)} not_scanned={outcomes.get('not_scanned', 0)} "
          f"volumes={volumes} scans_on_api={len(ids)} adopted_after_crash={adopted} elapsed={elapsed:.1f}s seed={a.seed} "
          f"faults={','.join(faults) or 'none'}")
    for p in problems[:20]:
        print("  " + p)
    if a.keep:
        print(f"  work folder: {work}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
