import FalconAPI
import FalconEmulator
import Foundation
import Hashing
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2)))
struct QuickScanClientTests {
    @Test func quotaComesFromGetScansWithoutIDs() async throws {
        try await withClient(configure: { $0.quotaTotal = 500 }) { client, emulator in
            let (quota, response) = try await client.quota()
            #expect(quota?.total == 500)
            #expect(quota?.used == 0)
            #expect(response.traceID != nil)
            #expect(emulator.violations.isEmpty)
        }
    }

    @Test func uploadScanAndPollUntilDone() async throws {
        let dir = try TemporaryDirectory()
        let files = [
            "eicar.com": Array(SampleContent.eicar.utf8),
            "image.png": SampleContent.png,
            "report.ps1": Array("quarterly numbers".utf8),
            "odd name \"quoted\".bin": Array(SampleContent.suspicious.utf8),
        ]
        try await withClient(configure: { $0.scanPollsUntilDone = 2 }) { client, emulator in
            var shas: [String: String] = [:]
            for (name, bytes) in files {
                let path = try dir.write(name, bytes)
                let result = try await client.uploadSample(path: path, expectedSHA256: SHA256Hasher.hash(bytes))
                #expect(result.sha256 == SHA256Hasher.hash(bytes))
                shas[name] = result.sha256
            }
            let (scanID, submitted) = try await client.scanSamples(Array(shas.values))
            #expect(scanID.wholeMatch(of: /[0-9a-f]{32}_[0-9a-f]{32}/) != nil)
            #expect(submitted.meta.quota?.used ?? 0 > 0)

            // A second volume, so one GetScans call covers two ids.
            let (secondID, _) = try await client.scanSamples([shas["report.ps1"]!])
            var polls = 0
            var done: [String: ScanResult] = [:]
            while done.count < 2, polls < 10 {
                polls += 1
                let response = try await client.getScans(ids: [scanID, secondID])
                for scan in response.resources where scan.isDone { done[scan.id] = scan }
            }
            #expect(polls == 3, "in progress for two polls, done on the third")
            let verdicts = Dictionary(uniqueKeysWithValues: done[scanID]!.samples.map { ($0.sha256, $0) })
            #expect(verdicts[shas["eicar.com"]!]?.verdict == "malware")
            #expect(verdicts[shas["image.png"]!]?.verdict == "unknown")
            #expect(verdicts[shas["image.png"]!]?.error?.isEmpty == false)
            #expect(verdicts[shas["report.ps1"]!]?.verdict == "no specific threat")
            #expect(verdicts[shas["odd name \"quoted\".bin"]!]?.verdict == "suspicious")
            #expect(emulator.violations.isEmpty)

            for sha in shas.values { try await client.deleteSample(sha256: sha) }
            // Deleting again is not an error: the sample is gone either way.
            try await client.deleteSample(sha256: shas["report.ps1"]!)
            #expect(emulator.stats.samplesDeleted == 4)
        }
    }

    @Test func unknownScanIDsGiveNoResources() async throws {
        try await withClient { client, _ in
            let response = try await client.getScans(ids: ["0123456789abcdef0123456789abcdef_fedcba9876543210fedcba9876543210"])
            #expect(response.resources.isEmpty)
        }
    }

    @Test func querySubmissionsEncodesPlusAndPages() async throws {
        let dir = try TemporaryDirectory()
        try await withClient(configure: { $0.scanPollsUntilDone = 0 }) { client, emulator in
            let path = try dir.write("a.txt", "hello")
            let sha = try await client.uploadSample(path: path).sha256
            let (first, _) = try await client.scanSamples([sha])
            let (second, _) = try await client.scanSamples([sha])
            // Done scans only (no polls needed), created after 2000: FQL '+' is AND.
            let response = try await client.querySubmissions(
                filter: "created_timestamp:>'2000-01-01T00:00:00Z'+status:'done'", limit: 1, sort: .asc)
            #expect(response.resources.count == 1)
            #expect(response.meta.pagination?.total == 2)
            let next = try await client.querySubmissions(
                filter: "created_timestamp:>'2000-01-01T00:00:00Z'+status:'done'", offset: "1", limit: 1, sort: .asc)
            #expect(Set(response.resources + next.resources) == [first, second])
            #expect(emulator.violations.isEmpty)
            let raw = emulator.recorded.last { $0.path == "/scanner/queries/scans/v1" }
            #expect(raw?.rawQuery.contains("%2B") == true)
        }
    }

    @Test func querySubmissionsRefusesLimitOver5000() async throws {
        try await withClient { client, emulator in
            await #expect(throws: FalconError.self) {
                _ = try await client.querySubmissions(limit: 5001)
            }
            #expect(emulator.recorded.allSatisfy { $0.path != "/scanner/queries/scans/v1" })
        }
    }

    @Test func aggregatesSendEveryFieldTheAPIDefines() async throws {
        let dir = try TemporaryDirectory()
        try await withClient { client, emulator in
            let clean = try await client.uploadSample(path: try dir.write("c.txt", "clean")).sha256
            let bad = try await client.uploadSample(path: try dir.write("e.com", SampleContent.eicar)).sha256
            _ = try await client.scanSamples([clean, bad])
            _ = try await client.scanSamples([clean])

            let terms = try await client.getScansAggregates(FalconAPI.AggregateQuery(type: "terms", field: "status", name: "by_status"))
            #expect(terms.resources.first?.name == "by_status")
            #expect(terms.resources.first?.buckets.first?.count == 2)

            var dated = FalconAPI.AggregateQuery(type: "date_range", field: "created_timestamp", name: "recent")
            dated.dateRanges = [.init(from: "2000-01-01T00:00:00Z", to: "2100-01-01T00:00:00Z")]
            dated.timeZone = "UTC"
            var verdicts = FalconAPI.AggregateQuery(type: "terms", field: "samples.verdict", name: "verdicts")
            var deepest = FalconAPI.AggregateQuery(type: "terms", field: "cid", name: "cids")
            deepest.size = 5
            deepest.minDocCount = 1
            var third = FalconAPI.AggregateQuery(type: "terms", field: "status", name: "inner_status")
            third.subAggregates = [deepest]
            verdicts.subAggregates = [third]
            dated.subAggregates = [verdicts]
            #expect(dated.depth == 4)
            let nested = try await client.getScansAggregates(dated)
            #expect(nested.resources.first?.buckets.first?.count == 2)
            #expect(nested.resources.first?.buckets.first?.subAggregates.first?.name == "verdicts")

            var ranged = FalconAPI.AggregateQuery(type: "range", field: "samples_count", name: "sizes")
            ranged.ranges = [.init(from: nil, to: 2), .init(from: 2, to: nil)]
            ranged.filter = "status:'done'"
            ranged.q = "x"
            ranged.sort = "count|desc"
            ranged.missing = "none"
            ranged.interval = "day"
            ranged.from = 0
            _ = try? await client.getScansAggregates(ranged)
            let sent = emulator.recorded.last { $0.path == "/scanner/aggregates/scans/GET/v1" }
            #expect(sent?.bodyFields.contains("ranges") == true)
            #expect(emulator.violations.isEmpty, "\(emulator.violations)")
        }
    }
}
