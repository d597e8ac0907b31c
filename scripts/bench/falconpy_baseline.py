#!/usr/bin/env python3
"""The FalconPy Quick Scan sample's shape, as the throughput benchmark's baseline.

Usage: falconpy_baseline.py BASE_URL INBOX [--no-delete]

Like CrowdStrike's SDK sample (samples/quick_scan): uploads each file one at a time
(SampleUploads.upload_sample), submits one volume (QuickScan.scan_samples), polls GetScans every
second until the scan is done, then deletes each sample one at a time (delete_sample). Prints one
JSON line: files, calls, seconds, and the verdicts counted.
"""

import json
import os
import sys
import time

from falconpy import OAuth2, QuickScan, SampleUploads

CLIENT_ID = "0123456789abcdef0123456789abcdef"
CLIENT_SECRET = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"


def main():
    base_url, inbox = sys.argv[1].rstrip("/"), sys.argv[2]
    delete = "--no-delete" not in sys.argv[3:]
    started = time.perf_counter()
    auth = OAuth2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=base_url, ssl_verify=False)
    samples = SampleUploads(auth_object=auth)
    scanner = QuickScan(auth_object=auth)
    calls = 0
    shas = []
    for root, _, names in os.walk(inbox):
        for name in sorted(names):
            with open(os.path.join(root, name), "rb") as f:
                data = f.read()
            result = samples.upload_sample(file_data=data, file_name=name, is_confidential=True)
            calls += 1
            if result["status_code"] != 200:
                sys.exit(f"upload failed: {result['status_code']} {result['body'].get('errors')}")
            shas.append(result["body"]["resources"][0]["sha256"])
    # The sample submits everything as one volume (1,000 is the practical maximum, reference §5.1).
    scan_ids = []
    for start in range(0, len(shas), 1000):
        submitted = scanner.scan_samples(body={"samples": shas[start:start + 1000]})
        calls += 1
        if submitted["status_code"] != 200:
            sys.exit(f"ScanSamples failed: {submitted['status_code']} {submitted['body'].get('errors')}")
        scan_ids.append(submitted["body"]["resources"][0])
    verdicts = {}
    for scan_id in scan_ids:
        while True:
            time.sleep(1)
            scan = scanner.get_scans(ids=scan_id)
            calls += 1
            resources = scan["body"].get("resources") or []
            if resources and resources[0].get("status") == "done":
                for s in resources[0].get("samples", []):
                    verdicts[s.get("verdict")] = verdicts.get(s.get("verdict"), 0) + 1
                break
    if delete:
        for sha in shas:
            samples.delete_sample(ids=sha)
            calls += 1
    auth.revoke(auth.token_value)
    print(json.dumps({"files": len(shas), "calls": calls, "seconds": time.perf_counter() - started, "verdicts": verdicts}))


if __name__ == "__main__":
    main()
