import FalconEmulator
import Hashing
import Testing

@Suite(.timeLimit(.minutes(1)))
struct QuickScanTests {
    @Test func verdictsComeFromContent() async throws {
        try await withFalcon({ $0.scanPollsUntilDone = 0 }) { emulator, falcon in
            let token = try await falcon.token()
            let samples: [(content: [UInt8], verdict: String, error: String?)] = [
                (Samples.eicar, "malware", nil),
                (Samples.png, "unknown", "unsupported file type: image"),
                (Samples.jpeg, "unknown", "unsupported file type: image"),
                (Samples.suspicious, "suspicious", nil),
                (Samples.unknown, "unknown", nil),
                (Samples.clean(), "no specific threat", nil),
            ]
            var sha256s: [String] = []
            for sample in samples { sha256s.append(try await falcon.upload(sample.content, token: token)) }
            let scanID = try await falcon.scan(sha256s, token: token)
            let response = try await falcon.getScans(query: "ids=\(scanID)", token: token)
            #expect(response.status == 200)
            let scan = try response.json()["resources"][0]
            #expect(scan["status"].string == "done")
            #expect(scan["id"].string == scanID)
            #expect(scan["cid"].string == emulator.configuration.cid)
            #expect(scan["created_timestamp"].string?.wholeMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/#) != nil)
            let results = scan["samples"].array
            #expect(results.count == samples.count)
            for (index, sample) in samples.enumerated() {
                #expect(results[index]["sha256"].string == sha256s[index])
                #expect(results[index]["verdict"].string == sample.verdict)
                #expect(results[index]["error"].string == sample.error)
            }
            #expect(emulator.violations.isEmpty)
        }
    }

    @Test func eicarBeyondFourKiBIsNotSeen() async throws {
        try await withFalcon({ $0.scanPollsUntilDone = 0 }) { _, falcon in
            let token = try await falcon.token()
            let sha256 = try await falcon.upload(Array(repeating: 32, count: 4096) + Samples.eicar, token: token)
            let scanID = try await falcon.scan([sha256], token: token)
            let scan = try await falcon.getScans(query: "ids=\(scanID)", token: token).json()
            #expect(scan["resources"][0]["samples"][0]["verdict"].string == "no specific threat")
        }
    }

    @Test func scanSamplesReturnsVolumeIDAndQuota() async throws {
        try await withFalcon({ $0.quotaTotal = 50; $0.scanPollsUntilDone = 0 }) { emulator, falcon in
            let token = try await falcon.token()
            let a = try await falcon.upload(Samples.clean("a"), token: token)
            let b = try await falcon.upload(Samples.clean("b"), token: token)
            let response = try await falcon.scanSamples([a, b], token: token)
            #expect(response.status == 200)
            let body = try response.json()
            let scanID = try #require(body["resources"][0].string)
            #expect(scanID.wholeMatch(of: #/[0-9a-f]{32}_[0-9a-f]{32}/#) != nil)
            #expect(scanID.hasPrefix(emulator.configuration.cid + "_"))
            #expect(body["meta"]["quota"]["total"].int == 50)
            #expect(body["meta"]["quota"]["used"].int == 2)
            #expect(body["meta"]["quota"]["in_progress"].int == 0)
            #expect(body["errors"].array.isEmpty)
        }
    }

    @Test func scansStayInProgressForScriptedPolls() async throws {
        try await withFalcon({ $0.scanPollsUntilDone = 2; $0.emptyResourcesWhileInProgress = true }) { _, falcon in
            let token = try await falcon.token()
            let sha256 = try await falcon.upload(Samples.eicar, token: token)
            let submitted = try await falcon.scanSamples([sha256], token: token).json()
            #expect(submitted["meta"]["quota"]["in_progress"].int == 1)
            let scanID = try #require(submitted["resources"][0].string)
            for _ in 0..<2 {
                let polled = try await falcon.getScans(query: "ids=\(scanID)", token: token)
                #expect(polled.status == 200)
                let body = try polled.json()
                #expect(body["resources"].array.isEmpty)
                #expect(body["meta"]["quota"]["in_progress"].int == 1)
            }
            let done = try await falcon.getScans(query: "ids=\(scanID)", token: token).json()
            #expect(done["resources"][0]["status"].string == "done")
            #expect(done["resources"][0]["samples"][0]["verdict"].string == "malware")
            #expect(done["meta"]["quota"]["in_progress"].int == 0)
        }
    }

    @Test func inProgressScansCanShowWithoutVerdicts() async throws {
        try await withFalcon({
            $0.scanPollsUntilDone = 1
            $0.emptyResourcesWhileInProgress = false
        }) { _, falcon in
            let token = try await falcon.token()
            let sha256 = try await falcon.upload(Samples.clean(), token: token)
            let scanID = try await falcon.scan([sha256], token: token)
            let first = try await falcon.getScans(query: "ids=\(scanID)", token: token).json()["resources"][0]
            #expect(first["status"].string == "in_progress")
            #expect(first["samples"][0]["sha256"].string == sha256)
            #expect(!first["samples"][0]["verdict"].exists)
            let second = try await falcon.getScans(query: "ids=\(scanID)", token: token).json()["resources"][0]
            #expect(second["status"].string == "done")
        }
    }

    @Test func bothIDEncodingsAreAccepted() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let a = try await falcon.scan([try await falcon.upload(Samples.clean("1"), token: token)], token: token)
            let b = try await falcon.scan([try await falcon.upload(Samples.clean("2"), token: token)], token: token)
            let comma = try await falcon.getScans(query: "ids=\(a),\(b)", token: token).json()
            #expect(Set(comma["resources"].array.compactMap { $0["id"].string }) == [a, b])
            let repeated = try await falcon.getScans(query: "ids=\(a)&ids=\(b)", token: token).json()
            #expect(Set(repeated["resources"].array.compactMap { $0["id"].string }) == [a, b])
            let encoded = try await falcon.getScans(query: "ids=\(a)%2C\(b)", token: token).json()
            #expect(encoded["resources"].array.count == 2)
            #expect(emulator.stats.getScansCalls == 3)
        }
    }

    @Test(arguments: [nil, "ids="])
    func noIDsGiveTheQuota(query: String?) async throws {
        try await withFalcon({ $0.quotaUsed = 7 }) { emulator, falcon in
            let token = try await falcon.token()
            let response = try await falcon.getScans(query: query, token: token)
            #expect(response.status == 200)
            let body = try response.json()
            #expect(body["resources"].exists)
            #expect(body["resources"].array.isEmpty)
            #expect(body["meta"]["quota"]["total"].int == 10_000)
            #expect(body["meta"]["quota"]["used"].int == 7)
            #expect(body["meta"]["quota"]["in_progress"].int == 0)
            #expect(emulator.violations.isEmpty)
        }
    }

    @Test func unknownScanIsNotFoundOrEmpty() async throws {
        let unknown = String(repeating: "a", count: 32) + "_" + String(repeating: "b", count: 32)
        try await withFalcon { _, falcon in
            let token = try await falcon.token()
            let response = try await falcon.getScans(query: "ids=\(unknown)", token: token)
            #expect(response.status == 404)
            let body = try response.json()
            #expect(body["errors"][0]["code"].int == 404)
            #expect(body["resources"].array.isEmpty)
            #expect(body["meta"]["quota"].exists)
        }
        try await withFalcon({ $0.unknownScanBehaviour = .emptyOK }) { _, falcon in
            let token = try await falcon.token()
            let response = try await falcon.getScans(query: "ids=\(unknown)", token: token)
            #expect(response.status == 200)
            #expect(try response.json()["errors"].array.isEmpty)
        }
    }

    @Test func unknownSamplesAreRejectedOrUnknown() async throws {
        let missing = String(repeating: "c", count: 64)
        try await withFalcon({ $0.scanPollsUntilDone = 0 }) { emulator, falcon in
            let token = try await falcon.token()
            let response = try await falcon.scanSamples([missing], token: token)
            #expect(response.status == 400)
            #expect(try response.json()["errors"][0]["message"].string?.contains(missing) == true)
            #expect(emulator.stats.scansCreated == 0)
            #expect(emulator.violations.isEmpty)
        }
        try await withFalcon({ $0.unknownSampleBehaviour = .unknownVerdict; $0.scanPollsUntilDone = 0 }) { _, falcon in
            let token = try await falcon.token()
            let scanID = try await falcon.scan([missing], token: token)
            let sample = try await falcon.getScans(query: "ids=\(scanID)", token: token).json()["resources"][0]["samples"][0]
            #expect(sample["verdict"].string == "unknown")
            #expect(sample["error"].string == "sample not found")
        }
    }

    @Test func badScanBodiesAreViolations() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            #expect(try await falcon.scanSamples(["not-a-sha"], token: token).status == 400)
            let array = try await falcon.send(
                .POST, "/scanner/entities/scans/v1",
                headers: falcon.bearer(token) + [("Content-Type", "application/json")], body: Array("[]".utf8)
            )
            #expect(array.status == 400)
            #expect(try array.json()["meta"]["quota"].exists)
            let form = try await falcon.send(
                .POST, "/scanner/entities/scans/v1",
                headers: falcon.bearer(token) + [("Content-Type", "application/x-www-form-urlencoded")], body: Array("samples=a".utf8)
            )
            #expect(form.status == 400)
            #expect(try await falcon.getScans(query: "ids=nope", token: token).status == 400)
            #expect(emulator.violations.count == 4)
        }
    }

    @Test func exhaustedQuotaIsRefused() async throws {
        try await withFalcon({
            $0.quotaTotal = 2
            $0.quotaUsed = 1
        }) { emulator, falcon in
            let token = try await falcon.token()
            let a = try await falcon.upload(Samples.clean("q1"), token: token)
            let b = try await falcon.upload(Samples.clean("q2"), token: token)
            let response = try await falcon.scanSamples([a, b], token: token)
            #expect(response.status == 403)
            #expect(try response.json()["errors"][0]["message"].string == "quota exceeded")
            #expect(try await falcon.scanSamples([a], token: token).status == 200)
            #expect(emulator.stats.scansCreated == 1)
        }
    }
}
