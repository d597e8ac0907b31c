import FalconAPI
import FalconEmulator
import Foundation
import Hashing
import Logging
import NIOConcurrencyHelpers
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

/// An inbox, its destination folders and a store in one temp directory.
struct Workspace {
    let dir: TemporaryDirectory
    var inbox: String { dir.path + "/inbox" }
    var database: String { dir.path + "/db.sqlite" }

    init() throws {
        dir = try TemporaryDirectory(prefix: "quickscan-pipeline")
        try FileManager.default.createDirectory(atPath: dir.path + "/inbox", withIntermediateDirectories: true)
    }

    func config(_ configure: (inout WorkerConfiguration) -> Void = { _ in }) -> WorkerConfiguration {
        var c = WorkerConfiguration()
        c.inboxes = [InboxConfiguration(path: inbox)]
        c.settleSeconds = 0
        c.scanPollIntervalSeconds = 0.02
        c.volumeMaxWaitSeconds = 0
        c.database = database
        // These suites test the in-place path (the file stays in the inbox until it is filed);
        // custody has its own (CustodyTests, HostileInboxTests, the crash tests, the torture).
        c.custody = "off"
        c.disposition = [
            .clean: .init(action: .move, to: dir.path + "/clean"),
            .threat: .init(action: .move, to: dir.path + "/quarantine"),
            .notScanned: .init(action: .move, to: dir.path + "/failed"),
        ]
        configure(&c)
        return c
    }

    @discardableResult
    func put(_ relative: String, _ bytes: [UInt8]) throws -> String {
        try dir.write("inbox/" + relative, bytes)
    }

    /// The worker over this workspace's store, talking to `emulator`.
    func pipeline(_ emulator: FalconEmulator, hooks: PipelineHooks = PipelineHooks(), fileSystem: (any FileSystem)? = nil,
                  once: Bool = true, _ configure: (inout WorkerConfiguration) -> Void = { _ in }) throws
        -> (pipeline: ScanPipeline, store: WorkerStore, client: HTTPFalconClient) {
        let store = try WorkerStore(path: database)
        let client = try HTTPFalconClient(configuration: FalconClientConfiguration(
            credentials: FalconCredentials(clientID: "id", clientSecret: "secret"), baseURL: emulator.baseURL, retry: RetryPolicy(maxAttempts: 3, deadline: 30)))
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return (ScanPipeline(config: config(configure), store: store, client: client, logger: logger, fileSystem: fileSystem,
                             hooks: hooks, once: once), store, client)
    }

    /// Runs the pipeline once against `emulator`.
    func runOnce(_ emulator: FalconEmulator, fileSystem: (any FileSystem)? = nil,
                 _ configure: (inout WorkerConfiguration) -> Void = { _ in }) async throws -> RunSummary {
        let (pipeline, store, client) = try pipeline(emulator, fileSystem: fileSystem, configure)
        _ = try await store.beginRun(mode: "once")
        do {
            let summary = try await pipeline.runOnce(deadline: Date().timeIntervalSince1970 + 60)
            try await store.finishRun(exitCode: summary.exitCode)
            await client.shutdown()
            return summary
        } catch {
            await client.shutdown()
            throw error
        }
    }

    func results() throws -> [String: SQLiteRow] {
        try Self.results(database: database, inbox: inbox)
    }

    /// The `results` view keyed by path relative to `inbox`.
    static func results(database: String, inbox: String) throws -> [String: SQLiteRow] {
        let db = try SQLiteConnection(path: database)
        var out: [String: SQLiteRow] = [:]
        for row in try db.query("SELECT * FROM results") { out[String(row.string("path")!.dropFirst(inbox.count + 1))] = row }
        return out
    }

    func contents(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { Array($0) }
    }
}

@Suite(.timeLimit(.minutes(3)))
struct PipelineTests {
    @Test func mixedInboxReachesTheRightOutcomesAndFolders() async throws {
        let ws = try Workspace()
        let inputs: [String: [UInt8]] = [
            "eicar.com": Array(SampleContent.eicar.utf8),
            "photo.png": SampleContent.png,
            "report.txt": Array("quarterly".utf8),
            "nested/deeper/copy of report.txt": Array("quarterly".utf8),
            "odd \"name\" ümlaut.doc": Array("odd".utf8),
            "line\nbreak.txt": Array("newline in name".utf8),
            "suspicious.bin": Array(SampleContent.suspicious.utf8),
            "big.iso": [UInt8](repeating: 7, count: 300),
            "empty.txt": [],
        ]
        for (name, bytes) in inputs { try ws.put(name, bytes) }
        try ws.put(".hidden", Array("h".utf8))
        try ws.put("download.part", Array("p".utf8))
        symlink("/etc/hostname", ws.inbox + "/link")

        try await withEmulator { emulator in
            let summary = try await ws.runOnce(emulator) { $0.maxFileBytes = 200 }
            #expect(summary.exitCode == 1)
            #expect(summary.pending == 0)
            let results = try ws.results()
            let expected: [String: (String, String)] = [
                "eicar.com": ("threat", "quarantine"), "photo.png": ("not_scanned", "failed"), "report.txt": ("clean", "clean"),
                "nested/deeper/copy of report.txt": ("clean", "clean"), "odd \"name\" ümlaut.doc": ("clean", "clean"),
                "line\nbreak.txt": ("clean", "clean"), "suspicious.bin": ("threat", "quarantine"), "big.iso": ("not_scanned", "failed"),
                "empty.txt": ("clean", "clean"), "link": ("not_scanned", "failed"),
            ]
            #expect(results.count == expected.count, "\(results.keys.sorted())")
            for (name, (outcome, folder)) in expected {
                let row = try #require(results[name], "\(name)")
                #expect(row.string("outcome") == outcome, "\(name)")
                #expect(row.string("disposed_to") == ws.dir.path + "/\(folder)/\(name)", "\(name)")
                if let bytes = inputs[name] { #expect(ws.contents(ws.dir.path + "/\(folder)/\(name)") == bytes, "\(name) moved intact") }
            }
            #expect(results["photo.png"]?.string("error")?.hasPrefix("unscannable") == true)
            #expect(results["big.iso"]?.string("error")?.hasPrefix("too_large") == true)
            // Hidden and partial files are not taken; the quarantine is private.
            #expect(FileManager.default.fileExists(atPath: ws.inbox + "/.hidden"))
            #expect(FileManager.default.fileExists(atPath: ws.inbox + "/download.part"))
            let mode = try FileManager.default.attributesOfItem(atPath: ws.dir.path + "/quarantine")[.posixPermissions] as? Int
            #expect(mode == 0o700)
            let fileMode = try FileManager.default.attributesOfItem(atPath: ws.dir.path + "/quarantine/eicar.com")[.posixPermissions] as? Int
            #expect(fileMode == 0o600)
            // Identical content: one upload, and each sha256 in exactly one volume.
            #expect(emulator.stats.uploads == 7)
            #expect(emulator.stats.scanSamplesCalls == 1)
        }
    }

    /// A database from before files were recorded already hashed can hold `discovered` rows
    /// (or a crash between recording and deciding an unscannable file could): they are hashed
    /// and scanned, and one whose file changed since is superseded by its new version.
    @Test func filesLeftDiscoveredAreHashedAndScanned() async throws {
        let ws = try Workspace()
        let kept = try ws.put("kept.txt", Array("kept".utf8))
        let changed = try ws.put("changed.com", Array("before".utf8))
        do {
            let store = try WorkerStore(path: ws.database)
            _ = try await store.beginRun(mode: "once")
            let entries = try [kept, changed].map { path in
                (path: path, inbox: ws.inbox, identity: try #require(FileStat.of(path)).identity)
            }
            #expect(try await store.insertDiscovered(entries).count == 2)
            try await store.finishRun(exitCode: 4)
        }
        try ws.put("changed.com", Array(SampleContent.eicar.utf8))
        try await withEmulator { emulator in
            let summary = try await ws.runOnce(emulator)
            #expect(summary.exitCode == 1)
            #expect(summary.pending == 0)
        }
        let results = try ws.results()
        #expect(results["kept.txt"]?.string("outcome") == "clean")
        #expect(results["changed.com"]?.string("outcome") == "threat")
        let db = try SQLiteConnection(path: ws.database)
        let steps = try db.query("SELECT from_state, to_state FROM events WHERE entity = 'file' AND entity_id = '1' ORDER BY id")
            .map { "\($0.string("from_state") ?? "")>\($0.string("to_state") ?? "")" }
        #expect(steps.prefix(2) == [">discovered", "discovered>hashed"])
        #expect(try db.queryOne("SELECT state FROM files WHERE id = 2")?.string("state") == "superseded")
    }

    /// A watcher stopped while it takes a large inbox stops between batches: what was read
    /// (the first batch, and the next one, already read while the first was recorded: under
    /// custody its files may have left the inbox) is recorded, nothing is read again, and the
    /// next run takes only what is left.
    @Test func aStopWhileTakingALargeInboxEndsBetweenBatches() async throws {
        let ws = try Workspace()
        let total = ScanPipeline.ingestBatch + 50
        for i in 0..<total { try ws.put("d\(i % 10)/f\(i)", Array("file \(i)".utf8)) }
        try await withEmulator { emulator in
            let hashed = NIOLockedValueBox(0)
            let watcher = NIOLockedValueBox<(task: Task<Void, any Error>?, stopped: Bool)>((nil, false))
            // Stop the watcher as the first batch's last file is hashed: that batch is still
            // recorded, the next one is not.
            var hooks = PipelineHooks()
            hooks.afterHash = { _ in
                guard hashed.withLockedValue({ $0 += 1; return $0 }) == ScanPipeline.ingestBatch else { return }
                watcher.withLockedValue { $0.stopped = true; $0.task?.cancel() }
            }
            let (pipeline, store, client) = try ws.pipeline(emulator, hooks: hooks, once: false)
            let task = Task { try await pipeline.runForever() }
            watcher.withLockedValue { $0.task = task; if $0.stopped { task.cancel() } }
            let ended = await task.result
            // Asked to stop, watch mode returns (it never ends by itself).
            #expect((try? ended.get()) != nil)
            let recorded = try await store.stateCounts().values.reduce(0, +)
            #expect(recorded == total)
            #expect(emulator.stats.uploads == 0)
            // The next run takes the rest, and only the rest.
            let next = try ws.pipeline(emulator).pipeline
            #expect(try await next.ingestOnly() == total)
            let versions = try await store.stateCounts()
            #expect(versions == ["hashed": total])
            await client.shutdown()
        }
    }

    @Test func aFreshVerdictIsReusedWithoutUploadOrScan() async throws {
        let ws = try Workspace()
        try await withEmulator { emulator in
            try ws.put("first.txt", Array("same".utf8))
            #expect(try await ws.runOnce(emulator).exitCode == 0)
            try ws.put("again.txt", Array("same".utf8))
            #expect(try await ws.runOnce(emulator).exitCode == 0)
            #expect(emulator.stats.uploads == 1)
            #expect(emulator.stats.scanSamplesCalls == 1)
            #expect(try ws.results()["again.txt"]?.int("cached") == 1)
        }
    }

    @Test func quotaUsedUpDefersWithNothingLost() async throws {
        let ws = try Workspace()
        try await withEmulator({ $0.quotaTotal = 0 }) { emulator in
            try ws.put("a.txt", Array("a".utf8))
            try ws.put("b.txt", Array("b".utf8))
            let summary = try await ws.runOnce(emulator)
            #expect(summary.exitCode == 4)
            #expect(summary.pending == 2)
            #expect(emulator.stats.scanSamplesCalls == 0)
            #expect(FileManager.default.fileExists(atPath: ws.inbox + "/a.txt"))
            emulator.update { $0.quotaTotal = 100 }
            let next = try await ws.runOnce(emulator)
            #expect(next.exitCode == 0)
            #expect(try ws.results().count == 2)
        }
    }

    @Test func aLostScanSamplesAnswerIsReconciledNotResubmitted() async throws {
        let ws = try Workspace()
        try await withEmulator({ $0.faults = [try! FaultRule.parse("lost-response:op=ScanSamples,count=1")] }) { emulator in
            for i in 0..<5 { try ws.put("f\(i).txt", Array("content \(i)".utf8)) }
            let summary = try await ws.runOnce(emulator)
            #expect(summary.exitCode == 0)
            #expect(emulator.stats.scanSamplesCalls == 1, "the volume the API created was adopted")
            #expect(try ws.results().count == 5)
        }
    }

    @Test func aFileChangedBeforeDisposalIsNotFiledUnderTheOldVerdict() async throws {
        let ws = try Workspace()
        try await withEmulator({ $0.scanPollsUntilDone = 1 }) { emulator in
            let path = try ws.put("doc.txt", Array("harmless".utf8))
            // First pass: uploaded and submitted, the scan still in progress.
            let store = try WorkerStore(path: ws.database)
            _ = try await store.beginRun(mode: "test")
            let client = try HTTPFalconClient(configuration: FalconClientConfiguration(
                credentials: FalconCredentials(clientID: "id", clientSecret: "secret"), baseURL: emulator.baseURL))
            let pipeline = ScanPipeline(config: ws.config(), store: store, client: client, logger: Logger(label: "t"))
            try await pipeline.prepare()
            try await pipeline.step(takeNew: true, firstPoll: true, once: true)
            #expect(try await store.files(in: [.uploaded]).count == 1)
            await client.shutdown()
            // The file is replaced with EICAR while its scan runs.
            try Data(SampleContent.eicar.utf8).write(to: URL(fileURLWithPath: path))
            let summary = try await ws.runOnce(emulator)
            #expect(summary.exitCode == 1)
            #expect(ws.contents(ws.dir.path + "/quarantine/doc.txt") == Array(SampleContent.eicar.utf8))
            #expect(!FileManager.default.fileExists(atPath: ws.dir.path + "/clean/doc.txt"))
        }
    }
}
