import Foundation
import QuickScanWorker
import Testing
import TestSupport

@Suite struct ConfigurationTests {
    func parse(_ json: String) throws -> WorkerConfiguration {
        try WorkerConfiguration.parse(Data(json.utf8), relativeTo: "/base")
    }

    func message(_ json: String) -> String {
        do {
            _ = try parse(json)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func sampleConfigParses() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let config = try WorkerConfiguration.load(path: root.appendingPathComponent("sample-config.json").path)
        #expect(!config.inboxes.isEmpty)
        #expect(config.disposition[.threat]?.action == .move)
    }

    @Test func theScanningAPIAndItsLimits() throws {
        let legacy = try parse(#"{}"#)
        #expect(legacy.api == .quickscan)
        #expect(legacy.fileSizeLimit == (36_700_160, "scan.max_file_bytes"))
        let pro = try parse(#"{"falcon":{"api":"quickscanpro"},"scan":{"likely_benign":"threat"},"delete_scan_results_after_scan":true}"#)
        #expect(pro.api == .quickscanpro)
        #expect(pro.fileSizeLimit == (268_435_456, "scan.max_file_bytes"))
        #expect(pro.likelyBenign == .threat)
        #expect(pro.deleteScanResultsAfterScan)
        let small = try parse(#"{"falcon":{"api":"quickscanpro"},"max_file_bytes":1000}"#)
        #expect(small.fileSizeLimit == (1000, "max_file_bytes"))
        #expect(pro.effectiveJSON().contains(#""api" : "quickscanpro""#))
    }

    @Test func relativePathsResolveAgainstTheConfigFolder() throws {
        let c = try parse(#"{"inboxes":[{"path":"in"}],"database":"q.sqlite","disposition":{"clean":{"action":"move","to":"ok"}}}"#)
        #expect(c.inboxes.first?.path == "/base/in")
        #expect(c.database == "/base/q.sqlite")
        #expect(c.disposition[.clean]?.to == "/base/ok")
    }

    @Test(arguments: [
        (#"{"inboxs":[]}"#, "unknown config key inboxs"),
        (#"{"volume":{"max_sample":3}}"#, "unknown config key volume.max_sample"),
        (#"{"settle_seconds":"5"}"#, "settle_seconds must be a number"),
        (#"{"settle_seconds":-1}"#, "settle_seconds must be at least 0"),
        (#"{"volume":{"max_samples":5000}}"#, "volume.max_samples must be at most 1000"),
        (#"{"delete_samples_after_scan":1}"#, "delete_samples_after_scan must be true or false"),
        (#"{"disposition":{"threat":{"action":"move"}}}"#, "disposition.threat.to is required"),
        (#"{"disposition":{"threat":{"action":"shred"}}}"#, "disposition.threat.action must be one of"),
        (#"{"falcon":{"cloud":"mars"}}"#, "falcon.cloud: mars"),
        (#"{"falcon":{"api":"quickscan2"}}"#, "falcon.api: quickscan2 is not one of quickscan, quickscanpro"),
        (#"{"scan":{"likely_benign":"maybe"}}"#, "scan.likely_benign: maybe is not one of clean, threat"),
        (#"{"scan":{"max_file_bytes":0}}"#, "scan.max_file_bytes must be at least 1"),
        (#"{"inboxes":[{"recursive":true}]}"#, "inboxes[0].path is required"),
        (#"{"log":{"format":"xml"}}"#, "log.format must be text or json"),
        (#"[1]"#, "config must be a JSON object"),
        (#"{"#, "not valid JSON"),
    ])
    func badConfigsNameTheKey(json: String, expected: String) {
        #expect(message(json).contains(expected), "\(message(json))")
    }

    @Test func aSecretInAReadableConfigIsRefused() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("c.json", #"{"falcon":{"client_id":"a","client_secret":"b"},"inboxes":[{"path":"x"}]}"#)
        chmod(path, 0o644)
        #expect {
            _ = try WorkerConfiguration.load(path: path)
        } throws: { "\($0)".contains("chmod 600") && !"\($0)".contains("\"b\"") }
        chmod(path, 0o600)
        #expect(throws: Never.self) { _ = try WorkerConfiguration.load(path: path) }
    }
}
