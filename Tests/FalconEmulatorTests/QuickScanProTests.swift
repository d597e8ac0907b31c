import FalconEmulator
import Foundation
import Hashing
import NIOHTTP1
import Testing

/// Raw HTTP helpers for the QuickScan Pro routes.
extension RawFalconClient {
    func proUpload(
        _ content: [UInt8], fileName: String, scan: Bool? = nil, token: String, query: String? = nil
    ) async throws -> RawResponse {
        let boundary = "----quickscan-pro-\(UUID().uuidString)"
        var body: [UInt8] = []
        func text(_ string: String) { body.append(contentsOf: Array(string.utf8)) }
        if let scan { text("--\(boundary)\r\nContent-Disposition: form-data; name=\"scan\"\r\n\r\n\(scan ? "True" : "False")\r\n") }
        text("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(fileName)\"\r\n\r\n")
        body.append(contentsOf: content)
        text("\r\n--\(boundary)--\r\n")
        return try await send(
            .POST, "/quickscanpro/entities/files/v1", query: query,
            headers: bearer(token) + [("Content-Type", "multipart/form-data; boundary=\(boundary)")], body: body)
    }

    func proLaunch(_ sha256s: [String], token: String) async throws -> RawResponse {
        let items = sha256s.map { "{\"sha256\":\"\($0)\"}" }.joined(separator: ",")
        return try await send(
            .POST, "/quickscanpro/entities/scans/v1",
            headers: bearer(token) + [("Content-Type", "application/json")], body: Array("{\"resources\":[\(items)]}".utf8))
    }

    func proResults(_ ids: [String], token: String) async throws -> RawResponse {
        try await send(.GET, "/quickscanpro/entities/scans/v1", query: ids.map { "ids=\($0)" }.joined(separator: "&"), headers: bearer(token))
    }

    /// Uploads (scan=false) and launches one scan per file; returns the scan ids in order.
    func proScan(_ contents: [(content: [UInt8], name: String)], token: String) async throws -> (sha256s: [String], scanIDs: [String]) {
        var sha256s: [String] = []
        for item in contents {
            let uploaded = try await proUpload(item.content, fileName: item.name, scan: false, token: token)
            try #require(uploaded.status == 200, "upload failed: \(uploaded.text)")
            sha256s.append(try #require(try uploaded.json()["resources"][0]["sha256"].string))
        }
        let launched = try await proLaunch(sha256s, token: token)
        try #require(launched.status == 200, "launch failed: \(launched.text)")
        return (sha256s, try launched.json()["resources"].array.compactMap { $0["id"].string })
    }
}

@Suite(.timeLimit(.minutes(1)))
struct QuickScanProTests {
    @Test func uploadLaunchPollQueryAndDelete() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let files: [(content: [UInt8], name: String, verdict: String, error: Bool)] = [
                (Samples.eicar, "eicar.com", "malicious", false),
                (Samples.png, "photo.png", "unknown", true),
                (Samples.suspicious, "odd.bin", "suspicious", false),
                (Array("QUICKSCAN-EMULATOR-LIKELY-BENIGN".utf8), "tool.bin", "likely_benign", false),
                (Samples.clean(), "notes.txt", "clean", false),
            ]
            let first = try await falcon.proUpload(files[0].content, fileName: files[0].name, token: token)
            #expect(first.status == 200)
            let firstBody = try first.json()
            #expect(firstBody["resources"][0]["sha256"].string == SHA256Hasher.hash(files[0].content))
            #expect(!firstBody["resources"][0]["scan_id"].exists)
            #expect(firstBody["meta"]["quota"]["total"].int == 10_000)
            #expect(firstBody["quota"]["used"].int == 0)
            #expect(first.header("X-Ratelimit-Limit") == "6000")
            #expect(first.header("X-Cs-Traceid") == firstBody["meta"]["trace_id"].string)

            let (sha256s, ids) = try await falcon.proScan(files.map { ($0.content, $0.name) }, token: token)
            #expect(ids.count == files.count)
            #expect(ids.allSatisfy { $0.wholeMatch(of: #/[0-9a-f]{32}/#) != nil })

            // One poll in progress (listed, no result), then done.
            let running = try await falcon.proResults(ids, token: token).json()
            #expect(running["resources"].array.count == files.count)
            #expect(running["resources"].array.allSatisfy { $0["scan"]["status"].string == "in_progress" && !$0["result"].exists })
            #expect(!running["meta"]["quota"].exists, "GetScanResult's meta is plain msa.MetaInfo")
            let done = try await falcon.proResults(ids, token: token).json()
            let resources = done["resources"].array
            #expect(resources.count == files.count)
            for (index, file) in files.enumerated() {
                let resource = resources[index]
                #expect(resource["id"].string == ids[index])
                #expect(resource["scan"]["status"].string == "done")
                #expect(resource["scan"]["sha256"].string == sha256s[index])
                #expect(resource["scan"]["created_timestamp"].exists && resource["scan"]["updated_timestamp"].exists)
                #expect(resource["result"]["verdict"].string == file.verdict, "\(file.name)")
                #expect(resource["result"]["file_artifacts"][0]["sha256"].string == sha256s[index])
                #expect(resource["scan"]["errors"].array.isEmpty == !file.error, "\(file.name)")
            }
            #expect(resources[0]["result"]["malicious_confidence"].int == 100)
            #expect(resources[0]["result"]["mitre_attacks"].array.count == 1)
            #expect(resources[1]["scan"]["errors"][0]["code"].string == "unsupported_file_type")
            #expect(resources[1]["result"]["file_type_short"].string == "png")

            let query = try await falcon.send(
                .GET, "/quickscanpro/queries/scans/v1",
                query: "filter=sha256:'\(sha256s[0])'%2Bstatus:'done'&sort=created_timestamp.desc&limit=10&offset=0",
                headers: falcon.bearer(token))
            #expect(query.status == 200)
            let queryBody = try query.json()
            #expect(queryBody["resources"].strings == [ids[0]])
            #expect(queryBody["meta"]["pagination"]["total"].int == 1)
            #expect(queryBody["meta"]["quota"]["used"].int == files.count)
            #expect(queryBody["quota"]["used"].int == files.count)
            let verdicts = try await falcon.send(
                .GET, "/quickscanpro/queries/scans/v1", query: "filter=verdict:['malicious','suspicious']&sort=created_timestamp.asc",
                headers: falcon.bearer(token)).json()
            #expect(verdicts["resources"].strings == [ids[0], ids[2]])

            let deleted = try await falcon.send(
                .DELETE, "/quickscanpro/entities/files/v1", query: sha256s.map { "ids=\($0)" }.joined(separator: "&"),
                headers: falcon.bearer(token))
            #expect(deleted.status == 200)
            #expect(try deleted.json()["resources"].strings == sha256s)
            let again = try await falcon.send(.DELETE, "/quickscanpro/entities/files/v1", query: "ids=\(sha256s[0])", headers: falcon.bearer(token))
            #expect(try again.json()["errors"][0]["code"].int == 404)

            let removed = try await falcon.send(
                .DELETE, "/quickscanpro/entities/scans/v1", query: "ids=\(ids[0])&ids=\(ids[1])", headers: falcon.bearer(token))
            #expect(try removed.json()["resources"].strings == [ids[0], ids[1]])
            let gone = try await falcon.proResults([ids[0], ids[2]], token: token).json()
            #expect(gone["resources"].array.map { $0["id"].string } == [ids[2]])
            #expect(gone["errors"][0]["id"].string == ids[0])
            #expect(emulator.violations.isEmpty, "\(emulator.violations)")
        }
    }

    @Test func uploadWithScanTrueStartsTheScan() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            // FalconPy also repeats scan and file_name in the query string: accepted.
            let uploaded = try await falcon.proUpload(Samples.eicar, fileName: "e.com", scan: true, token: token, query: "scan=True&file_name=e.com")
            #expect(uploaded.status == 200)
            let body = try uploaded.json()
            let scanID = try #require(body["resources"][0]["scan_id"].string)
            #expect(body["quota"]["used"].int == 1)
            #expect(body["quota"]["in_progress"].int == 1)
            _ = try await falcon.proResults([scanID], token: token)
            let done = try await falcon.proResults([scanID], token: token).json()
            #expect(done["resources"][0]["result"]["verdict"].string == "malicious")

            let octet = try await falcon.send(
                .POST, "/quickscanpro/entities/files/v1", query: "file_name=raw.txt",
                headers: falcon.bearer(token) + [("Content-Type", "application/octet-stream"), ("X-File-Password", "pw")],
                body: Samples.clean("octet"))
            #expect(octet.status == 200)
            #expect(try octet.json()["resources"][0]["sha256"].string == SHA256Hasher.hash(Samples.clean("octet")))
            #expect(emulator.violations.isEmpty, "\(emulator.violations)")
        }
    }

    @Test(arguments: [EmulatorConfiguration.QuotaPlacement.meta, .topLevel])
    func quotaPlacementIsConfigurable(_ placement: EmulatorConfiguration.QuotaPlacement) async throws {
        try await withFalcon({ $0.proQuotaPlacement = placement }) { _, falcon in
            let token = try await falcon.token()
            let body = try await falcon.proUpload(Samples.clean(), fileName: "a.txt", token: token).json()
            #expect(body["meta"]["quota"].exists == (placement == .meta))
            #expect(body["quota"].exists == (placement == .topLevel))
        }
    }

    @Test func hiddenWhileInProgressAndUnknownFiles() async throws {
        try await withFalcon({ $0.emptyResourcesWhileInProgress = true; $0.scanPollsUntilDone = 2 }) { emulator, falcon in
            let token = try await falcon.token()
            let (_, ids) = try await falcon.proScan([(Samples.clean(), "a.txt")], token: token)
            for _ in 0..<2 {
                #expect(try await falcon.proResults(ids, token: token).json()["resources"].array.isEmpty)
            }
            #expect(try await falcon.proResults(ids, token: token).json()["resources"][0]["scan"]["status"].string == "done")

            let missing = try await falcon.proLaunch([String(repeating: "ab", count: 32)], token: token)
            #expect(missing.status == 400)
            #expect(!(try missing.json()["resources"].exists), "QuickScan Pro errors are msa.ReplyMetaOnly")
            emulator.update { $0.unknownSampleBehaviour = .unknownVerdict }
            let accepted = try await falcon.proLaunch([String(repeating: "ab", count: 32)], token: token)
            #expect(accepted.status == 200)
        }
    }

    @Test func faultsTargetProOperations() async throws {
        let sha256 = SHA256Hasher.hash(Samples.eicar)
        let rules = [
            try FaultRule.parse("5xx:op=LaunchScan,count=1"),
            try FaultRule.parse("refuse-sample:sha256=\(sha256),op=LaunchScan,count=1"),
            try FaultRule.parse("429:op=UploadFileMixin0Mixin94,count=1"),
        ]
        try await withFalcon({ $0.faults = rules }) { emulator, falcon in
            let token = try await falcon.token()
            let limited = try await falcon.proUpload(Samples.eicar, fileName: "e.com", token: token)
            #expect(limited.status == 429)
            #expect(try await falcon.proUpload(Samples.eicar, fileName: "e.com", token: token).status == 200)
            let failed = try await falcon.proLaunch([sha256], token: token)
            #expect(failed.status == 503)
            #expect(!(try failed.json()["resources"].exists))
            let refused = try await falcon.proLaunch([sha256], token: token)
            #expect(refused.status == 400)
            #expect(refused.text.contains(sha256))
            #expect(try await falcon.proLaunch([sha256], token: token).status == 200)
            #expect(emulator.stats.faultsInjected["refuse-sample"] == 1)
            #expect(emulator.stats.scansCreated == 1)
        }
    }

    @Test func filesScansAndRateLimitsArePerCID() async throws {
        try await withFalcon({ $0.rateLimitPerMinute = 3 }) { _, falcon in
            let otherCID = "fedcba9876543210fedcba9876543210"
            let mine = try await falcon.token()
            let theirs = try #require(try await falcon.requestToken(extra: [("member_cid", otherCID)]).json()["access_token"].string)
            let (sha256s, ids) = try await falcon.proScan([(Samples.clean(), "a.txt")], token: mine)  // 2 calls of 3
            let foreign = try await falcon.proResults(ids, token: theirs)
            #expect(foreign.status == 200)
            #expect(try foreign.json()["resources"].array.isEmpty)
            #expect(foreign.header("X-Ratelimit-Remaining") == "2", "the other CID has its own window")
            let notTheirs = try await falcon.proLaunch(sha256s, token: theirs)
            #expect(notTheirs.status == 400, "the file is in the first CID's store only")

            let last = try await falcon.proResults(ids, token: mine)
            #expect(last.status == 200)
            #expect(last.header("X-Ratelimit-Remaining") == "0")
            let limited = try await falcon.proResults(ids, token: mine)
            #expect(limited.status == 429)
            #expect(limited.header("X-Ratelimit-Limit") == "3")
            #expect(limited.header("X-Ratelimit-Remaining") == "0")
            let retryAfter = try #require(limited.header("X-Ratelimit-Retryafter").flatMap(Int.init))
            #expect(retryAfter > Int(Date().timeIntervalSince1970))
            #expect(try await falcon.proResults(ids, token: theirs).status == 200)
        }
    }

    @Test func queryNeedsFilterAndKnownFields() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let missing = try await falcon.send(.GET, "/quickscanpro/queries/scans/v1", headers: falcon.bearer(token))
            #expect(missing.status == 400)
            let empty = try await falcon.send(.GET, "/quickscanpro/queries/scans/v1", query: "filter=", headers: falcon.bearer(token))
            #expect(empty.status == 200)
            #expect(try empty.json()["meta"]["pagination"]["limit"].int == 50)
            let documented = try await falcon.send(
                .GET, "/quickscanpro/queries/scans/v1", query: "filter=mitre_attacks.tactic:'Execution'", headers: falcon.bearer(token))
            #expect(documented.status == 200)
            let unknown = try await falcon.send(
                .GET, "/quickscanpro/queries/scans/v1", query: "filter=samples.sha256:'x'", headers: falcon.bearer(token))
            #expect(unknown.status == 400)
            #expect(emulator.violations.count == 2)
        }
    }
}

/// The legacy Quick Scan edges of issue 13.
@Suite(.timeLimit(.minutes(1)))
struct QuickScanEdgeTests {
    @Test func unacceptedTypesAreUnknownByDefault() async throws {
        try await withFalcon { _, falcon in
            let token = try await falcon.token()
            let text = try await falcon.upload(Samples.clean("t"), fileName: "notes.txt", token: token)
            let script = try await falcon.upload(Samples.clean("s"), fileName: "tool.PS1", token: token)
            let pe = try await falcon.upload(Array("MZ\u{90}\u{00}".utf8) + Samples.clean("pe"), fileName: "noext", token: token)
            let scanID = try await falcon.scan([text, script, pe], token: token)
            _ = try await falcon.getScans(query: "ids=\(scanID)", token: token)
            let samples = try await falcon.getScans(query: "ids=\(scanID)", token: token).json()["resources"][0]["samples"].array
            #expect(samples[0]["verdict"].string == "unknown")
            #expect(samples[0]["error"].string == "unsupported file type")
            #expect(samples[1]["verdict"].string == "no specific threat")
            #expect(samples[2]["verdict"].string == "no specific threat")
        }
    }

    @Test func unacceptedTypesCanBeScannedAsBefore() async throws {
        try await withFalcon({ $0.unacceptedTypeBehaviour = .scan; $0.scanPollsUntilDone = 0 }) { _, falcon in
            let token = try await falcon.token()
            let text = try await falcon.upload(Samples.clean(), fileName: "notes.txt", token: token)
            let scanID = try await falcon.scan([text], token: token)
            let sample = try await falcon.getScans(query: "ids=\(scanID)", token: token).json()["resources"][0]["samples"][0]
            #expect(sample["verdict"].string == "no specific threat")
        }
    }

    @Test func runningScansAreListedByDefault() async throws {
        try await withFalcon { _, falcon in
            let token = try await falcon.token()
            let scanID = try await falcon.scan([try await falcon.upload(Samples.eicar, token: token)], token: token)
            let running = try await falcon.getScans(query: "ids=\(scanID)", token: token).json()["resources"][0]
            #expect(running["status"].string == "in_progress")
            #expect(running["samples"][0]["sha256"].exists)
            #expect(!running["samples"][0]["verdict"].exists)
            let done = try await falcon.getScans(query: "ids=\(scanID)", token: token).json()["resources"][0]
            #expect(done["status"].string == "done")
        }
    }

    @Test func serverErrorsOnQuickScanCarryTheScannerEnvelope() async throws {
        try await withFalcon({ $0.faults = [FaultRule(.serverError(status: 500), operation: .getScans, count: 1)] }) { _, falcon in
            let token = try await falcon.token()
            let failed = try await falcon.getScans(query: nil, token: token)
            #expect(failed.status == 500)
            let body = try failed.json()
            #expect(body["resources"].exists && body["resources"].array.isEmpty)
            #expect(body["meta"]["quota"]["total"].int == 10_000)
            #expect(body["errors"][0]["code"].int == 500)
            #expect(body["meta"]["powered_by"].string == "mlscannerapi")
        }
    }

    @Test func refuseSampleFaultRefusesOneSHA256() async throws {
        let bad = SHA256Hasher.hash(Samples.eicar)
        try await withFalcon({ $0.faults = [try! FaultRule.parse("refuse-sample:sha256=\(bad.uppercased()),count=1")] }) { emulator, falcon in
            let token = try await falcon.token()
            let good = try await falcon.upload(Samples.clean(), fileName: "a.ps1", token: token)
            _ = try await falcon.upload(Samples.eicar, fileName: "e.com", token: token)
            #expect(try await falcon.scanSamples([good], token: token).status == 200)
            let refused = try await falcon.scanSamples([good, bad], token: token)
            #expect(refused.status == 400)
            let body = try refused.json()
            #expect(body["errors"][0]["message"].string?.contains(bad) == true)
            #expect(body["resources"].exists)
            #expect(body["meta"]["quota"].exists)
            #expect(try await falcon.scanSamples([good, bad], token: token).status == 200)
            #expect(emulator.stats.scansCreated == 2)
            #expect(emulator.violations.isEmpty)
        }
    }

    @Test func extraResponseHeadersAreSent() async throws {
        try await withFalcon({ $0.extraResponseHeaders = [("X-Api-Deprecation", "2027-01-01")] }) { _, falcon in
            let token = try await falcon.token()
            #expect(try await falcon.getScans(query: nil, token: token).header("X-Api-Deprecation") == "2027-01-01")
        }
    }

    @Test func notFoundIfAnyListsTheScansFound() async throws {
        try await withFalcon({ $0.unknownScanBehaviour = .notFoundIfAny; $0.scanPollsUntilDone = 0 }) { _, falcon in
            let token = try await falcon.token()
            let scanID = try await falcon.scan([try await falcon.upload(Samples.eicar, token: token)], token: token)
            let unknown = "0123456789abcdef0123456789abcdef_fedcba9876543210fedcba9876543210"
            let response = try await falcon.getScans(query: "ids=\(scanID)&ids=\(unknown)", token: token)
            #expect(response.status == 404)
            let body = try response.json()
            #expect(body["resources"][0]["id"].string == scanID)
            #expect(body["errors"][0]["id"].string == unknown)
        }
    }
}
