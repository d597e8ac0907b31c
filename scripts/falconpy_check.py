#!/usr/bin/env python3
"""Drive the quickscan Falcon emulator with the real FalconPy SDK and check every reply.

Usage: falconpy_check.py BASE_URL [EMULATOR_STDERR_LOG]

Every Falcon operation the emulator serves is called through FalconPy's service classes
(OAuth2, SampleUploads, QuickScan, QuickScanPro) and through the Uber class (APIHarnessV2). Each check prints
one PASS/FAIL line; the last line is "N passed, M failed". Exit status 1 on any failure.

With the emulator's stderr log (run with --log-level warning), the wire-contract violations it
logged are checked too: FalconPy must cause none besides the one provoked on purpose (limit 5001).

The emulator is expected to run with --credential CLIENT_ID:CLIENT_SECRET (the constants below)
and --scan-polls-until-done 1 (the default): the first GetScans (GetScanResult) of a new scan
lists it in progress without verdicts (result), the next one sees it done.
"""
import hashlib
import re
import sys
import time
import uuid

from falconpy import APIHarnessV2, OAuth2, QuickScan, QuickScanPro, SampleUploads

CLIENT_ID = "0123456789abcdef0123456789abcdef"
CLIENT_SECRET = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
SCAN_ID = re.compile(r"^[0-9a-f]{32}_[0-9a-f]{32}$")
PRO_SCAN_ID = re.compile(r"^[0-9a-f]{32}$")
SUSPICIOUS = b"QUICKSCAN-EMULATOR-SUSPICIOUS from falconpy-check"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

passed = 0
failed = 0


def check(name, condition, detail=""):
    """Record and print one check."""
    global passed, failed  # pylint: disable=global-statement
    if condition:
        passed += 1
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))
    return bool(condition)


def header(response, name):
    """Case-insensitive header lookup in a FalconPy result dict."""
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def short(response):
    """A compact description of a result for failure messages."""
    if isinstance(response, dict):
        return f"status {response.get('status_code')} body {str(response.get('body'))[:300]}"
    return f"{type(response).__name__} {str(response)[:200]}"


def envelope(name, response, status=200, quota=False, resources=True):
    """Status, envelope shape, trace id and rate-limit headers of a JSON reply."""
    body = response.get("body") if isinstance(response, dict) else None
    ok = check(f"{name}: status {status}", isinstance(body, dict) and response.get("status_code") == status, short(response))
    if not ok:
        return None
    meta = body.get("meta", {})
    trace = meta.get("trace_id")
    check(f"{name}: meta.trace_id is a UUID and matches X-Cs-Traceid",
          isinstance(trace, str) and UUID_RE.match(trace) and header(response, "X-Cs-Traceid") == trace,
          f"meta {meta}, header {header(response, 'X-Cs-Traceid')}")
    check(f"{name}: meta.query_time is a number", isinstance(meta.get("query_time"), (int, float)), str(meta))
    check(f"{name}: errors is a list", isinstance(body.get("errors"), list), str(body)[:200])
    check(f"{name}: X-Ratelimit-Limit and X-Ratelimit-Remaining",
          str(header(response, "X-Ratelimit-Limit") or "").isdigit()
          and str(header(response, "X-Ratelimit-Remaining") or "").isdigit(),
          str(response.get("headers")))
    if resources:
        check(f"{name}: resources is a list", isinstance(body.get("resources"), list), str(body)[:200])
    if quota:
        q = meta.get("quota", {})
        check(f"{name}: meta.quota has total, used, in_progress",
              all(isinstance(q.get(k), int) for k in ("total", "used", "in_progress")), str(meta))
    return body


def poll_scan(name, get, scan_id, attempts=5):
    """GetScans until the volume is done; the first call must see it in progress."""
    first = get(scan_id)
    body = envelope(f"{name} (first poll)", first, quota=True)
    if body is not None:
        running = (body["resources"] or [{}])[0]
        check(f"{name}: first poll lists the volume in progress, without verdicts",
              running.get("id") == scan_id and running.get("status") == "in_progress"
              and all("verdict" not in sample for sample in running.get("samples", [])), str(body)[:300])
    for _ in range(attempts):
        response = get(scan_id)
        body = response.get("body", {}) if isinstance(response, dict) else {}
        for scan in body.get("resources", []):
            if scan.get("id") == scan_id and scan.get("status") == "done":
                envelope(f"{name} (done)", response, quota=True)
                return scan
        time.sleep(0.2)
    check(f"{name}: volume done", False, short(response))
    return None


def verdicts(name, scan, expected):
    """Check per-sample verdicts: expected maps sha256 -> (verdict substring, error expected)."""
    check(f"{name}: scan fields id, cid, status, created_timestamp, samples",
          scan is not None and {"id", "cid", "status", "created_timestamp", "samples"} <= set(scan)
          and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", scan.get("created_timestamp", "")), str(scan)[:300])
    if scan is None:
        return
    check(f"{name}: scan id starts with the cid", scan["id"].startswith(scan["cid"] + "_"), str(scan)[:200])
    by_sha = {sample.get("sha256"): sample for sample in scan.get("samples", [])}
    for sha, (verdict, has_error) in expected.items():
        sample = by_sha.get(sha, {})
        check(f"{name}: verdict of {sha[:12]}… contains '{verdict}'", verdict in str(sample.get("verdict")), str(sample))
        check(f"{name}: error of {sha[:12]}… {'present' if has_error else 'absent'}",
              ("error" in sample) == has_error, str(sample))


def pro_poll(name, get, scan_ids, attempts=5):
    """GetScanResult until every scan is done; the first call must list them in progress."""
    first = get(scan_ids)
    body = envelope(f"{name} (first poll)", first)
    if body is not None:
        check(f"{name}: first poll lists each scan in progress without a result",
              [r.get("id") for r in body["resources"]] == scan_ids
              and all(r.get("scan", {}).get("status") == "in_progress" and "result" not in r for r in body["resources"]),
              str(body)[:300])
        check(f"{name}: GetScanResult meta carries no quota (msa.MetaInfo)", "quota" not in body["meta"] and "quota" not in body,
              str(body)[:200])
    for _ in range(attempts):
        response = get(scan_ids)
        body = response.get("body", {}) if isinstance(response, dict) else {}
        resources = body.get("resources", [])
        if resources and all(r.get("scan", {}).get("status") == "done" for r in resources):
            envelope(f"{name} (done)", response)
            return {r["id"]: r for r in resources}
        time.sleep(0.2)
    check(f"{name}: scans done", False, short(response))
    return {}


def pro_quota(name, body):
    """QuickScan Pro's QuotaResource in meta (upload, launch, query). The top-level copy is not
    checked here: FalconPy's result keeps only meta, resources and errors of the body."""
    quota = body.get("meta", {}).get("quota")
    check(f"{name}: meta.quota has total and used", isinstance(quota, dict)
          and all(isinstance(quota.get(k), int) for k in ("total", "used")), str(body)[:300])


def pro_results(name, results, expected):
    """Check each scan's verdict: expected maps scan id -> (sha256, verdict, scan.errors expected)."""
    for scan_id, (sha, verdict, has_errors) in expected.items():
        resource = results.get(scan_id, {})
        result = resource.get("result", {})
        scan = resource.get("scan", {})
        check(f"{name}: {scan_id[:8]}… scan.sha256, timestamps", scan.get("sha256") == sha
              and "created_timestamp" in scan and "updated_timestamp" in scan, str(resource)[:300])
        check(f"{name}: {scan_id[:8]}… verdict {verdict}", result.get("verdict") == verdict, str(resource)[:300])
        check(f"{name}: {scan_id[:8]}… malicious_confidence, verdict_reason, file_type_short, file_artifacts",
              isinstance(result.get("malicious_confidence"), int) and isinstance(result.get("verdict_reason"), str)
              and isinstance(result.get("file_type_short"), str)
              and (result.get("file_artifacts") or [{}])[0].get("sha256") == sha, str(result)[:300])
        check(f"{name}: {scan_id[:8]}… scan.errors {'present' if has_errors else 'empty'}",
              bool(scan.get("errors")) == has_errors, str(scan)[:300])


def pro_checks(base_url, auth, tag):
    """Every QuickScan Pro operation through the service class and the Uber class."""
    pro = QuickScanPro(auth_object=auth)
    clean = f"pro clean from falconpy-check {tag}\n".encode()
    files = {"eicar": (EICAR, "eicar.com"), "png": (PNG, "image.png"), "suspicious": (SUSPICIOUS, "odd.bin"),
             "clean": (clean, "notes.txt")}
    shas = {label: hashlib.sha256(data).hexdigest() for label, (data, _) in files.items()}

    for label, (data, name) in files.items():
        uploaded = pro.upload_file(file=data, file_name=name, scan=False)
        body = envelope(f"UploadFileQuickScanPro {label}", uploaded)
        if body is not None:
            resource = (body.get("resources") or [{}])[0]
            check(f"UploadFileQuickScanPro {label}: sha256, no scan_id", resource.get("sha256") == shas[label]
                  and "scan_id" not in resource, str(resource))
            pro_quota(f"UploadFileQuickScanPro {label}", body)

    scan_ids = {}
    for label in ("eicar", "png", "clean"):
        launched = pro.launch_scan(sha256=shas[label])
        body = envelope(f"LaunchScan {label}", launched)
        if body is not None:
            resource = (body.get("resources") or [{}])[0]
            scan_ids[label] = resource.get("id")
            check(f"LaunchScan {label}: id (32 hex), sha256, created_timestamp",
                  bool(PRO_SCAN_ID.match(resource.get("id") or "")) and resource.get("sha256") == shas[label]
                  and isinstance(resource.get("created_timestamp"), str), str(resource))
            pro_quota(f"LaunchScan {label}", body)
    launched = pro.launch_scan(body={"resources": [{"sha256": shas["suspicious"]}]})
    body = envelope("LaunchScan (body=)", launched)
    if body is not None:
        scan_ids["suspicious"] = (body.get("resources") or [{}])[0].get("id")

    ids = [scan_ids.get(label) for label in ("eicar", "png", "suspicious", "clean")]
    if all(ids):
        results = pro_poll("GetScanResult (list of ids)", lambda i: pro.get_scan_result(ids=i), ids)
        pro_results("GetScanResult", results, {
            scan_ids["eicar"]: (shas["eicar"], "malicious", False),
            scan_ids["png"]: (shas["png"], "unknown", True),
            scan_ids["suspicious"]: (shas["suspicious"], "suspicious", False),
            scan_ids["clean"]: (shas["clean"], "clean", False),
        })
        comma = pro.get_scan_result(ids=",".join(ids[:2]))
        body = envelope("GetScanResult (comma string → repeated ids)", comma)
        if body is not None:
            check("GetScanResult (comma string): both scans", [r.get("id") for r in body["resources"]] == ids[:2], str(body)[:300])

    query = pro.query_scan_results(filter=f"sha256:'{shas['eicar']}'+verdict:'malicious'", sort="created_timestamp.desc",
                                   limit=10, offset=0)
    body = envelope("QueryScanResults (filter with +, sort, limit, offset)", query)
    if body is not None:
        check("QueryScanResults: finds the EICAR scan by sha256", body["resources"] == [scan_ids.get("eicar")], str(body)[:300])
        pagination = body["meta"].get("pagination", {})
        check("QueryScanResults: meta.pagination offset, limit, total",
              pagination.get("offset") == 0 and pagination.get("limit") == 10 and pagination.get("total") == 1, str(pagination))
        pro_quota("QueryScanResults", body)
    every = pro.query_scan_results(filter="", sort="created_timestamp.asc")
    body = envelope("QueryScanResults (empty filter)", every)
    if body is not None:
        check("QueryScanResults: empty filter lists every scan, oldest first, default limit 50",
              body["resources"][:4] == [scan_ids.get(label) for label in ("eicar", "png", "clean", "suspicious")]
              and body["meta"].get("pagination", {}).get("limit") == 50, str(body)[:300])

    scanned = pro.upload_file(file=EICAR, file_name="again.com", scan=True)
    body = envelope("UploadFileQuickScanPro scan=True", scanned)
    if body is not None:
        resource = (body.get("resources") or [{}])[0]
        check("UploadFileQuickScanPro scan=True: scan_id", bool(PRO_SCAN_ID.match(resource.get("scan_id") or "")), str(resource))
        if resource.get("scan_id"):
            results = pro_poll("GetScanResult (upload with scan)", lambda i: pro.get_scan_result(ids=i), [resource["scan_id"]])
            pro_results("GetScanResult (upload with scan)", results, {resource["scan_id"]: (shas["eicar"], "malicious", False)})

    # --- Uber class --------------------------------------------------------------------------
    uber = APIHarnessV2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=base_url, ssl_verify=False)
    uber_data = f"uber pro upload {tag}\n".encode()
    uber_sha = hashlib.sha256(uber_data).hexdigest()
    uploaded = uber.command("UploadFileMixin0Mixin94", files=[("file", ("uber.txt", uber_data))], data={"scan": True})
    body = envelope("Uber UploadFileMixin0Mixin94 (scan=True)", uploaded)
    uber_scan = None
    if body is not None:
        resource = (body.get("resources") or [{}])[0]
        uber_scan = resource.get("scan_id")
        check("Uber UploadFileMixin0Mixin94: sha256 and scan_id", resource.get("sha256") == uber_sha
              and bool(PRO_SCAN_ID.match(uber_scan or "")), str(resource))
    uploaded = uber.command("UploadFileQuickScanPro", files=[("file", ("uber2.bin", SUSPICIOUS))], data={"scan": False})
    envelope("Uber UploadFileQuickScanPro (scan=False)", uploaded)
    launched = uber.command("LaunchScan", body={"resources": [{"sha256": shas["suspicious"]}]})
    body = envelope("Uber LaunchScan", launched)
    uber_launch = (body or {}).get("resources", [{}])[0].get("id") if body else None
    if uber_scan and uber_launch:
        results = pro_poll("Uber GetScanResult", lambda i: uber.command("GetScanResult", ids=i), [uber_scan, uber_launch])
        pro_results("Uber GetScanResult", results, {uber_scan: (uber_sha, "clean", False),
                                                    uber_launch: (shas["suspicious"], "suspicious", False)})
    query = uber.command("QueryScanResults", filter=f"id:'{uber_launch}'", limit=5, sort="created_timestamp.desc")
    body = envelope("Uber QueryScanResults", query)
    if body is not None:
        check("Uber QueryScanResults: finds the scan by id", body["resources"] == [uber_launch], str(body)[:300])
    deleted = uber.command("DeleteScanResult", ids=[uber_scan, uber_launch])
    body = envelope("Uber DeleteScanResult", deleted)
    if body is not None:
        check("Uber DeleteScanResult: resources are the ids", body["resources"] == [uber_scan, uber_launch], str(body))
    deleted = uber.command("DeleteFile", ids=[uber_sha])
    body = envelope("Uber DeleteFile", deleted)
    if body is not None:
        check("Uber DeleteFile: resources is the sha256", body["resources"] == [uber_sha], str(body))
    uber.logout()

    # --- Cleanup (service class) ---------------------------------------------------------------
    removed = pro.delete_scan_result(ids=ids)
    body = envelope("DeleteScanResult (many ids)", removed)
    if body is not None:
        check("DeleteScanResult: resources are the ids", body["resources"] == ids, str(body)[:300])
    gone = pro.get_scan_result(ids=ids[0])
    body = envelope("GetScanResult after DeleteScanResult", gone)
    if body is not None:
        check("GetScanResult after delete: no resources, errors name the id",
              body["resources"] == [] and (body["errors"] or [{}])[0].get("id") == ids[0], str(body)[:300])
    all_shas = [shas[label] for label in files]
    removed = pro.delete_file(ids=all_shas)
    body = envelope("DeleteFile (many sha256s)", removed)
    if body is not None:
        check("DeleteFile: resources are the sha256s", body["resources"] == all_shas, str(body)[:300])


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 2
    base_url = sys.argv[1].rstrip("/")
    emulator_log = sys.argv[2] if len(sys.argv) == 3 else None
    tag = uuid.uuid4().hex
    clean = f"plain text from falconpy-check {tag}\n".encode()
    shas = {
        "eicar": hashlib.sha256(EICAR).hexdigest(),
        "png": hashlib.sha256(PNG).hexdigest(),
        "clean": hashlib.sha256(clean).hexdigest(),
    }

    # --- OAuth2 -------------------------------------------------------------------------------
    auth = OAuth2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=base_url, ssl_verify=False)
    token_result = auth.token()
    token_body = token_result.get("body", {})
    check("oauth2AccessToken: status 201", token_result.get("status_code") == 201, short(token_result))
    check("oauth2AccessToken: access_token, token_type bearer, expires_in",
          isinstance(token_body.get("access_token"), str) and token_body.get("token_type") == "bearer"
          and isinstance(token_body.get("expires_in"), int), str(token_body)[:200])
    check("oauth2AccessToken: X-Cs-Traceid and rate-limit headers",
          header(token_result, "X-Cs-Traceid") and header(token_result, "X-Ratelimit-Limit"), str(token_result.get("headers")))
    check("oauth2AccessToken: FalconPy keeps the emulator as its base URL", auth.base_url == base_url, auth.base_url)
    bad = OAuth2(client_id=CLIENT_ID, client_secret="x" * 40, base_url=base_url, ssl_verify=False).token()
    check("oauth2AccessToken: wrong secret is 403 access denied, authorization failed",
          bad.get("status_code") == 403
          and bad.get("body", {}).get("errors", [{}])[0].get("message") == "access denied, authorization failed",
          short(bad))

    samples = SampleUploads(auth_object=auth)
    scanner = QuickScan(auth_object=auth)

    # --- Sample Uploads (service class) ----------------------------------------------------------
    for label, data, name in (("eicar", EICAR, "eicar.com"), ("png", PNG, "image.png"), ("clean", clean, "notes.ps1")):
        result = samples.upload_sample(file_data=data, file_name=name, comment="falconpy-check", is_confidential=True)
        body = envelope(f"UploadSampleV3 {label}", result)
        if body is not None:
            resource = (body.get("resources") or [{}])[0]
            check(f"UploadSampleV3 {label}: sha256 and file_name",
                  resource.get("sha256") == shas[label] and resource.get("file_name") == name, str(resource))

    got = samples.get_sample(ids=shas["clean"])
    check("GetSampleV3: returns the uploaded bytes", got == clean, short(got))
    missing = samples.get_sample(ids="0" * 64)
    check("GetSampleV3: unknown sha256 is 404", isinstance(missing, dict) and missing.get("status_code") == 404, short(missing))

    # --- Quick Scan (service class) --------------------------------------------------------------
    before = envelope("GetScans without ids (quota)", scanner.get_scans(), quota=True)
    used_before = (before or {}).get("meta", {}).get("quota", {}).get("used", 0)

    submitted = scanner.scan_samples(samples=[shas["eicar"], shas["png"], shas["clean"]])
    body = envelope("ScanSamples", submitted, quota=True)
    scan_id = None
    if body is not None:
        scan_id = (body.get("resources") or [None])[0]
        check("ScanSamples: resources[0] is a <32 hex>_<32 hex> volume id", bool(scan_id and SCAN_ID.match(scan_id)), str(body))
        check("ScanSamples: meta.quota.used counts the samples", body["meta"]["quota"]["used"] == used_before + 3, str(body["meta"]))
        check("ScanSamples: meta.quota.in_progress counts the volume", body["meta"]["quota"]["in_progress"] >= 3, str(body["meta"]))

    if scan_id:
        scan = poll_scan("GetScans (list of ids)", lambda sid: scanner.get_scans(ids=[sid]), scan_id)
        verdicts("GetScans", scan, {shas["eicar"]: ("malware", False), shas["png"]: ("unknown", True),
                                    shas["clean"]: ("no specific threat", False)})

    second = scanner.scan_samples(body={"samples": [shas["clean"]]})
    second_id = (second.get("body", {}).get("resources") or [None])[0]
    check("ScanSamples (body=): volume id", bool(second_id and SCAN_ID.match(second_id)), short(second))
    if scan_id and second_id:
        both = scanner.get_scans(ids=f"{scan_id},{second_id}")  # FalconPy splits into ids=a&ids=b
        body = envelope("GetScans (comma string → repeated ids)", both, quota=True)
        if body is not None:
            check("GetScans (repeated ids): the done volume and the new one in progress are both listed",
                  [(scan.get("id"), scan.get("status")) for scan in body["resources"]]
                  == [(scan_id, "done"), (second_id, "in_progress")], str(body)[:300])
        both = scanner.get_scans(ids=[scan_id, second_id])
        body = envelope("GetScans (second poll of both)", both, quota=True)
        if body is not None:
            check("GetScans (list): both volumes done",
                  sorted(scan.get("id") for scan in body["resources"]) == sorted([scan_id, second_id])
                  and all(scan.get("status") == "done" for scan in body["resources"]), str(body)[:300])

    query = scanner.query_submissions(filter="created_timestamp:>'2020-01-01T00:00:00Z'+status:'done'",
                                      sort="created_timestamp.desc", limit=10, offset="0")
    body = envelope("QuerySubmissionsMixin0 (filter with +, sort, limit, offset)", query, quota=True)
    if body is not None:
        pagination = body["meta"].get("pagination", {})
        check("QuerySubmissionsMixin0: meta.pagination offset, limit, total",
              pagination.get("offset") == 0 and pagination.get("limit") == 10 and pagination.get("total", 0) >= 2, str(pagination))
        check("QuerySubmissionsMixin0: newest first",
              body["resources"][:2] == [second_id, scan_id], str(body["resources"]))
    page = scanner.query_submissions(sort="asc", limit=1, offset="1")
    body = envelope("QuerySubmissionsMixin0 (second page)", page, quota=True)
    if body is not None:
        check("QuerySubmissionsMixin0: offset=1 limit=1 gives the second volume", body["resources"] == [second_id], str(body["resources"]))
    too_many = scanner.query_submissions(limit=5001)
    check("QuerySubmissionsMixin0: limit 5001 is refused with 400", too_many.get("status_code") == 400, short(too_many))

    terms = scanner.get_scans_aggregates(body={
        "name": "by_status", "type": "terms", "field": "status", "size": 10,
        "sub_aggregates": [{"name": "verdicts", "type": "terms", "field": "samples.verdict"}],
    })
    body = envelope("GetScansAggregates (terms + sub_aggregates)", terms, quota=True)
    if body is not None:
        result = (body["resources"] or [{}])[0]
        bucket = (result.get("buckets") or [{}])[0]
        check("GetScansAggregates: terms bucket done has 2 volumes",
              result.get("name") == "by_status" and bucket.get("label") == "done" and bucket.get("count") == 2, str(result)[:300])
        sub = (bucket.get("sub_aggregates") or [{}])[0]
        labels = {b.get("label"): b.get("count") for b in sub.get("buckets", [])}
        check("GetScansAggregates: verdict sub-aggregation per bucket",
              labels.get("no specific threat") == 2 and labels.get("malware") == 1 and labels.get("unknown") == 1, str(sub)[:300])

    dated = scanner.get_scans_aggregates(
        name="recent", type="date_range", field="created_timestamp",
        date_ranges=[{"from": "now-1d", "to": "now+1d"}, {"from": "2000-01-01T00:00:00Z", "to": "2001-01-01T00:00:00Z"}],
        sub_aggregates=[{"name": "sizes", "type": "range", "field": "samples_count",
                         "ranges": [{"From": 0, "To": 2}, {"From": 2, "To": 100}]}],
    )
    body = envelope("GetScansAggregates (date_ranges + ranges From/To via keywords)", dated, quota=True)
    if body is not None:
        buckets = (body["resources"] or [{}])[0].get("buckets", [])
        check("GetScansAggregates: date_range counts", [b.get("count") for b in buckets] == [2, 0], str(buckets)[:300])
        sizes = (buckets[0].get("sub_aggregates") or [{}])[0].get("buckets", []) if buckets else []
        check("GetScansAggregates: range sub-aggregation counts", [b.get("count") for b in sizes] == [1, 1], str(sizes)[:300])

    # --- Uber class ------------------------------------------------------------------------------
    uber = APIHarnessV2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=base_url, ssl_verify=False)
    uber_token = uber.command("oauth2AccessToken")
    check("Uber oauth2AccessToken: status 201", uber_token.get("status_code") == 201, short(uber_token))
    uber_data = f"uber upload {tag}\n".encode()
    uber_sha = hashlib.sha256(uber_data).hexdigest()
    uploaded = uber.command("UploadSampleV3", files=[("sample", ("uber.py", uber_data))], data={"file_name": "uber.py"})
    body = envelope("Uber UploadSampleV3", uploaded)
    if body is not None:
        check("Uber UploadSampleV3: sha256", (body["resources"] or [{}])[0].get("sha256") == uber_sha, str(body)[:200])
    check("Uber GetSampleV3: bytes", uber.command("GetSampleV3", ids=uber_sha) == uber_data)
    body = envelope("Uber GetScans without ids", uber.command("GetScans"), quota=True)
    uber_scan = uber.command("ScanSamples", body={"samples": [uber_sha, shas["eicar"]]})
    body = envelope("Uber ScanSamples", uber_scan, quota=True)
    uber_scan_id = (body or {}).get("resources", [None])[0] if body else None
    if uber_scan_id:
        scan = poll_scan("Uber GetScans", lambda sid: uber.command("GetScans", ids=[sid]), uber_scan_id)
        verdicts("Uber GetScans", scan, {uber_sha: ("no specific threat", False), shas["eicar"]: ("malware", False)})
    uber_query = uber.command("QuerySubmissionsMixin0", filter=f"id:'{uber_scan_id}'+status:'done'", limit=5, sort="desc")
    body = envelope("Uber QuerySubmissionsMixin0", uber_query, quota=True)
    if body is not None:
        check("Uber QuerySubmissionsMixin0: finds the volume by id", body["resources"] == [uber_scan_id], str(body)[:300])
    uber_aggregate = uber.command("GetScansAggregates", body={
        "name": "volumes", "type": "terms", "field": "status",
        "sub_aggregates": [{"name": "when", "type": "date_range", "field": "created_timestamp",
                            "date_ranges": [{"from": "now-1h", "to": "now+1h"}]}],
    })
    body = envelope("Uber GetScansAggregates", uber_aggregate, quota=True)
    if body is not None:
        bucket = ((body["resources"] or [{}])[0].get("buckets") or [{}])[0]
        check("Uber GetScansAggregates: 3 done volumes, all in the last hour",
              bucket.get("count") == 3 and (bucket.get("sub_aggregates") or [{}])[0].get("buckets", [{}])[0].get("count") == 3,
              str(body)[:400])
    deleted = uber.command("DeleteSampleV3", ids=uber_sha)
    body = envelope("Uber DeleteSampleV3", deleted)
    if body is not None:
        check("Uber DeleteSampleV3: resources is the sha256", body["resources"] == [uber_sha], str(body))
    revoked = uber.command("oauth2RevokeToken", token_value=uber_token.get("body", {}).get("access_token", ""))
    envelope("Uber oauth2RevokeToken", revoked, resources=False)
    check("Uber logout (revokes its token)", uber.logout() is True)

    # --- Plain text is not an accepted type: unknown with an error --------------------------------
    text = f"plain text {tag}\n".encode()
    text_sha = hashlib.sha256(text).hexdigest()
    samples.upload_sample(file_data=text, file_name="notes.txt")
    text_scan = (scanner.scan_samples(samples=[text_sha]).get("body", {}).get("resources") or [None])[0]
    if text_scan:
        scan = poll_scan("GetScans (plain text)", lambda sid: scanner.get_scans(ids=sid), text_scan)
        verdicts("GetScans (plain text)", scan, {text_sha: ("unknown", True)})
    samples.delete_sample(ids=text_sha)

    pro_checks(base_url, auth, tag)

    # --- Cleanup and revoke (service classes) ----------------------------------------------------
    for label in ("eicar", "png", "clean"):
        result = samples.delete_sample(ids=shas[label])
        body = envelope(f"DeleteSampleV3 {label}", result)
        if body is not None:
            check(f"DeleteSampleV3 {label}: resources is the sha256", body["resources"] == [shas[label]], str(body))
    again = samples.delete_sample(ids=shas["clean"])
    check("DeleteSampleV3: second delete is 404", again.get("status_code") == 404, short(again))

    token = token_body.get("access_token", "")
    revoke = auth.revoke(token=token)
    body = envelope("oauth2RevokeToken", revoke, resources=False)
    if body is not None:
        check("oauth2RevokeToken: msa.ReplyMetaOnly (no resources)", "resources" not in body and body["errors"] == [], str(body))
    stale = QuickScan(access_token=token, base_url=base_url, ssl_verify=False).get_scans()
    stale_body = stale.get("body", {})
    check("revoked token: 401 access denied, invalid bearer token",
          stale.get("status_code") == 401
          and stale_body.get("errors") == [{"code": 401, "message": "access denied, invalid bearer token"}]
          and "resources" not in stale_body
          and stale_body.get("meta", {}).get("powered_by") == "crowdstrike-api-gateway"
          and header(stale, "X-Ratelimit-Limit") == "15", short(stale))

    if emulator_log:
        time.sleep(0.2)
        with open(emulator_log, encoding="utf-8", errors="replace") as log:
            logged = [line.strip() for line in log if "wire contract violation" in line]
        provoked = ("limit 5001",)
        unexpected = [line for line in logged if not any(reason in line for reason in provoked)]
        check("emulator: no wire-contract violations from FalconPy besides the provoked ones",
              not unexpected, "; ".join(unexpected))
        check("emulator: the provoked violations were noticed",
              all(any(reason in line for line in logged) for reason in provoked), "; ".join(logged))

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
