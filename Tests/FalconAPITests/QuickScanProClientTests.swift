import FalconAPI
import FalconEmulator
import Foundation
import Hashing
import Logging
import NIOConcurrencyHelpers
import Testing
import TestSupport

/// Keeps every log record, for tests that check what was logged.
struct CapturingLogHandler: LogHandler {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    let records: NIOLockedValueBox<[Record]>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let flat = (event.metadata ?? [:]).mapValues { "\($0)" }
        records.withLockedValue { $0.append(Record(level: event.level, message: "\(event.message)", metadata: flat)) }
    }
}

@Suite(.timeLimit(.minutes(2)))
struct QuickScanProClientTests {
    @Test func uploadLaunchPollQueryAndDelete() async throws {
        let dir = try TemporaryDirectory()
        let files: [(name: String, bytes: [UInt8], verdict: QuickScanProVerdict)] = [
            ("eicar.com", Array(SampleContent.eicar.utf8), .malicious),
            ("image.png", SampleContent.png, .unknown),
            ("odd.bin", Array(SampleContent.suspicious.utf8), .suspicious),
            ("notes.txt", Array("quarterly numbers".utf8), .clean),
        ]
        try await withClient { client, emulator in
            var shas: [String] = []
            var scanIDs: [String] = []
            for file in files {
                let path = try dir.write(file.name, file.bytes)
                let uploaded = try await client.uploadQuickScanProFile(path: path, expectedSHA256: SHA256Hasher.hash(file.bytes))
                #expect(uploaded.sha256 == SHA256Hasher.hash(file.bytes))
                #expect(uploaded.scanID == nil)
                #expect(uploaded.response.meta.quota?.total == 10_000)
                shas.append(uploaded.sha256)
            }
            let launched = try await client.launchQuickScanProScans(shas)
            #expect(launched.resources.map(\.sha256) == shas)
            #expect(launched.meta.quota?.used == files.count)
            scanIDs = launched.resources.map(\.id)
            let (single, _) = try await client.launchQuickScanProScan(sha256: shas[0])
            #expect(single.count == 32)

            // The default emulator keeps a scan running for one poll.
            let running = try await client.getQuickScanProResults(ids: scanIDs)
            #expect(running.resources.count == files.count)
            #expect(running.resources.allSatisfy { !$0.isDone && !$0.isFailed && $0.result == nil && $0.verdict == nil })
            let done = try await client.getQuickScanProResults(ids: scanIDs)
            for (index, file) in files.enumerated() {
                let scan = try #require(done.resources.first { $0.id == scanIDs[index] })
                #expect(scan.isDone)
                #expect(!scan.isFailed)
                #expect(scan.scan.sha256 == shas[index])
                #expect(scan.verdict == file.verdict, "\(file.name)")
                #expect(scan.result?.fileArtifacts.first?.sha256 == shas[index])
                #expect(scan.scan.createdTimestamp != nil)
            }
            let malicious = try #require(done.resources.first)
            #expect(malicious.result?.maliciousConfidence == 100)
            #expect(malicious.result?.verdictReason?.isEmpty == false)
            #expect(malicious.result?.mitreAttacks.map { if case .array(let a) = $0 { a.count } else { 0 } } == 1)
            #expect(malicious.result?.yaraRules != nil)
            let image = done.resources[1]
            #expect(image.scan.errors == [QuickScanProScanError(code: "unsupported_file_type", message: "unsupported file type: image")])
            #expect(image.result?.fileTypeShort == "png")

            let query = try await client.queryQuickScanProResults(filter: "sha256:'\(shas[0])'+status:'done'", limit: 10, sort: .newestFirst)
            #expect(query.resources == [scanIDs[0]], "the single launch is still running")
            #expect(query.meta.pagination?.total == 1)
            #expect(query.meta.quota?.used == files.count + 1)
            let all = try await client.queryQuickScanProResults(offset: 1, limit: 2, sort: .oldestFirst)
            #expect(all.resources == Array(scanIDs[1...2]))

            let deleted = try await client.deleteQuickScanProFiles(sha256s: shas)
            #expect(deleted.resources == shas)
            let again = try await client.deleteQuickScanProFiles(sha256s: [shas[0]])
            #expect(again.resources.isEmpty)
            #expect(again.errors.first?.code == 404)
            let removed = try await client.deleteQuickScanProResults(ids: scanIDs)
            #expect(removed.resources == scanIDs)
            #expect(emulator.violations.isEmpty, "\(emulator.violations)")
        }
    }

    @Test func uploadWithScanReturnsTheScanID() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("eicar.com", SampleContent.eicar)
        try await withClient(configure: { $0.scanPollsUntilDone = 0; $0.proQuotaPlacement = .topLevel }) { client, emulator in
            let uploaded = try await client.uploadQuickScanProFile(path: path, scan: true)
            let scanID = try #require(uploaded.scanID)
            #expect(uploaded.response.meta.quota?.used == 1, "read from the top-level quota")
            let result = try await client.getQuickScanProResults(ids: [scanID])
            #expect(result.resources.first?.verdict == .malicious)
            #expect(emulator.stats.scansCreated == 1)
        }
    }

    @Test func manyIDsAreSplitIntoCallsOf100() async throws {
        try await withClient(configure: { $0.scanPollsUntilDone = 0 }) { client, emulator in
            let dir = try TemporaryDirectory()
            let sha = try await client.uploadQuickScanProFile(path: try dir.write("a.txt", "hello")).sha256
            let launched = try await client.launchQuickScanProScans(Array(repeating: sha, count: 150))
            #expect(launched.resources.count == 150)
            emulator.clearRecord()
            let results = try await client.getQuickScanProResults(ids: launched.resources.map(\.id))
            #expect(results.resources.count == 150)
            #expect(results.resources.allSatisfy { $0.verdict == .clean })
            let calls = emulator.recorded.filter { $0.operation == .getScanResult }
            #expect(calls.map { $0.queryItems.count } == [100, 50])
            let deleted = try await client.deleteQuickScanProResults(ids: launched.resources.map(\.id))
            #expect(deleted.resources.count == 150)
            #expect(emulator.recorded.filter { $0.operation == .deleteScanResult }.count == 2)
        }
    }

    @Test func launchScanIsNotRepeatedAfterALostAnswer() async throws {
        let dir = try TemporaryDirectory()
        try await withClient(configure: { $0.faults = [FaultRule(.lostResponse, operation: .launchScan, count: 1)] }) { client, emulator in
            let sha = try await client.uploadQuickScanProFile(path: try dir.write("a.txt", "hello")).sha256
            do {
                _ = try await client.launchQuickScanProScan(sha256: sha)
                Issue.record("the lost answer must fail the call")
            } catch let error as FalconError {
                #expect(error.mayHaveTakenEffect)
            }
            #expect(emulator.recorded.filter { $0.operation == .launchScan }.count == 1)
            #expect(emulator.stats.scansCreated == 1)
            // Reconciled by sha256 instead of launching again.
            let found = try await client.queryQuickScanProResults(filter: "sha256:'\(sha)'")
            #expect(found.resources.count == 1)
        }
    }

    @Test func uploadWithScanIsNotRepeatedAfterA5xx() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("a.txt", "hello")
        try await withClient(configure: { $0.faults = [FaultRule(.serverError(status: 503), operation: .uploadFileQuickScanPro, count: 1)] }) { client, emulator in
            do {
                _ = try await client.uploadQuickScanProFile(path: path, scan: true)
                Issue.record("a 503 on a scanning upload must not be retried")
            } catch let error as FalconError {
                #expect(error.mayHaveTakenEffect)
                #expect(error.status == 503)
            }
            // Without scan the upload is idempotent and retried through the same fault.
            emulator.setFaults([FaultRule(.serverError(status: 503), operation: .uploadFileQuickScanPro, count: 1)])
            _ = try await client.uploadQuickScanProFile(path: path)
            #expect(emulator.recorded.filter { $0.operation == .uploadFileQuickScanPro }.count == 3)
        }
    }

    @Test func verdictsAreReadLeniently() throws {
        #expect(QuickScanProVerdict(rawValue: "Likely Benign") == .likelyBenign)
        #expect(QuickScanProVerdict(rawValue: "MALICIOUS") == .malicious)
        #expect(QuickScanProVerdict(rawValue: "weird") == .other("weird"))
        #expect(QuickScanProVerdict(rawValue: "weird").rawValue == "weird")
        let json = #"""
            {"meta":{"MetaInfo":{"trace_id":"t","query_time":0.1},"quota":{"total":5,"used":1}},"resources":[
              {"id":"a","scan":{"sha256":"AB","status":"failed","errors":[{"code":7,"message":"x"}]},"result":{}},
              {"id":"b","scan":{"sha256":"ab","status":"weird","errors":[{"code":"e","message":"m"}]}},
              {"id":"c","scan":{"sha256":"ab","status":"Done"},"result":{"verdict":"Suspicious","malicious_confidence":"60","extra":{"k":1}}}]}
            """#
        struct Envelope: Decodable { var meta: FalconMeta; var resources: [QuickScanProScan] }
        let decoded = try JSONDecoder().decode(Envelope.self, from: Data(json.utf8))
        #expect(decoded.meta.traceID == "t")
        #expect(decoded.meta.quota?.inProgress == 0)
        #expect(decoded.resources[0].isFailed && decoded.resources[0].result == nil)
        #expect(decoded.resources[0].scan.errors.first?.code == "7")
        #expect(decoded.resources[1].isFailed, "an unknown status with errors is a failure")
        #expect(decoded.resources[2].isDone && decoded.resources[2].verdict == .suspicious)
        #expect(decoded.resources[2].result?.maliciousConfidence == 60)
        if case .object(let raw) = decoded.resources[2].result?.raw { #expect(raw["extra"] != nil) } else { Issue.record("raw kept") }
    }

    @Test(arguments: [("failed", true), ("ERROR", true), ("canceled", true), ("Cancelled", true), ("done", false), ("in_progress", false), ("", false)])
    func legacyScanFailureStatuses(status: String, failed: Bool) {
        let scan = ScanResult(id: "x", status: status, samples: [])
        #expect(scan.isFailed == failed)
        #expect(scan.isDone == (status == "done"))
    }

    @Test func getScans404StillReturnsTheScansFound() async throws {
        let dir = try TemporaryDirectory()
        try await withClient(configure: { $0.unknownScanBehaviour = .notFoundIfAny; $0.scanPollsUntilDone = 0 }) { client, _ in
            let sha = try await client.uploadSample(path: try dir.write("a.ps1", "hello")).sha256
            let (scanID, _) = try await client.scanSamples([sha])
            let unknown = "0123456789abcdef0123456789abcdef_fedcba9876543210fedcba9876543210"
            let response = try await client.getScans(ids: [scanID, unknown])
            #expect(response.status == 404)
            #expect(response.resources.map(\.id) == [scanID])
            #expect(response.resources.first?.isDone == true)
            #expect(response.errors.first?.id == unknown)
        }
    }

    @Test func deprecationHeadersAreLoggedOncePerValue() async throws {
        let value = "sunset-\(UUID().uuidString)"
        try await withEmulator({ $0.extraResponseHeaders = [("X-Api-Deprecation-Date", value)] }) { emulator in
            let records = NIOLockedValueBox<[CapturingLogHandler.Record]>([])
            let logger = Logger(label: "test") { _ in CapturingLogHandler(records: records) }
            let config = FalconClientConfiguration(credentials: testCredentials, baseURL: emulator.baseURL, requestTimeout: 20)
            let client = try HTTPFalconClient(configuration: config, clock: ManualFalconClock(), logger: logger)
            _ = try await client.quota()
            _ = try await client.quota()
            emulator.update { $0.extraResponseHeaders = [("X-Api-Deprecation-Date", value + "-later")] }
            _ = try await client.quota()
            await client.shutdown()
            let warnings = records.withLockedValue { $0 }.filter { $0.level == .warning && $0.message.contains("deprecation") }
            #expect(warnings.map { $0.metadata["http.header_value"] } == [value, value + "-later"])
        }
    }
}
