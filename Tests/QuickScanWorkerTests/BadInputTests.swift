import FalconAPI
import FalconEmulator
import Foundation
import Logging
import NIOConcurrencyHelpers
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Bad input of every kind: each gets its own outcome and a message that names it; nothing
/// stops the pipeline and nothing is lost.
@Suite(.timeLimit(.minutes(3)))
struct BadInputTests {
    /// Runs the pipeline in-process with hooks; returns the summary.
    func run(_ ws: Workspace, _ emulator: FalconEmulator, hooks: PipelineHooks = PipelineHooks(),
             _ configure: (inout WorkerConfiguration) -> Void = { _ in }) async throws -> RunSummary {
        let store = try WorkerStore(path: ws.database)
        _ = try await store.beginRun(mode: "once")
        let client = try HTTPFalconClient(configuration: FalconClientConfiguration(
            credentials: FalconCredentials(clientID: "id", clientSecret: "secret"), baseURL: emulator.baseURL))
        var logger = Logger(label: "bad-input")
        logger.logLevel = .critical
        let pipeline = ScanPipeline(config: ws.config(configure), store: store, client: client, logger: logger, hooks: hooks)
        let summary = try await pipeline.runOnce(deadline: Date().timeIntervalSince1970 + 60)
        try await store.finishRun(exitCode: summary.exitCode)
        await client.shutdown()
        return summary
    }

    func expectResult(_ ws: Workspace, _ name: String, outcome: String, errorContains: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let row = try ws.results()[name]
        #expect(row?.string("outcome") == outcome, "\(name)", sourceLocation: sourceLocation)
        if let errorContains {
            #expect(row?.string("error")?.contains(errorContains) == true, "\(name): \(row?.string("error") ?? "no error")", sourceLocation: sourceLocation)
        }
    }

    // MARK: files that change under the pipeline

    @Test func vanishesBeforeHashing() async throws {
        let ws = try Workspace()
        let path = try ws.put("gone.txt", Array("x".utf8))
        var hooks = PipelineHooks()
        hooks.beforeHash = { if $0 == path { unlink($0) } }
        try await withEmulator { emulator in
            let summary = try await run(ws, emulator, hooks: hooks)
            #expect(summary.exitCode == 2, "\(summary)")
        }
        try expectResult(ws, "gone.txt", outcome: "not_scanned", errorContains: "vanished: vanished before it was hashed")
    }

    @Test func vanishesWhileHashed() async throws {
        let ws = try Workspace()
        let path = try ws.put("gone.txt", Array("x".utf8))
        var hooks = PipelineHooks()
        hooks.afterHash = { if $0 == path { unlink($0) } }
        try await withEmulator { emulator in
            let summary = try await run(ws, emulator, hooks: hooks)
            #expect(summary.exitCode == 2, "\(summary)")
        }
        try expectResult(ws, "gone.txt", outcome: "not_scanned", errorContains: "vanished while being hashed")
    }

    @Test func vanishesBeforeDisposal() async throws {
        let ws = try Workspace()
        let path = try ws.put("gone.txt", Array("x".utf8))
        var hooks = PipelineHooks()
        hooks.beforeDisposal = { if $0 == path { unlink($0) } }
        try await withEmulator { emulator in
            let summary = try await run(ws, emulator, hooks: hooks)
            #expect(summary.exitCode == 0, "\(summary)")
        }
        // Its verdict stands; there was nothing left to file.
        try expectResult(ws, "gone.txt", outcome: "clean")
        #expect(try ws.results()["gone.txt"]?.string("disposed_to") == nil)
    }

    @Test(arguments: ["grows", "truncated", "replaced"])
    func changesWhileHashed(change: String) async throws {
        let ws = try Workspace()
        let path = try ws.put("moving.txt", Array("original content".utf8))
        let done = NIOLockedValueBox(false)
        var hooks = PipelineHooks()
        hooks.afterHash = { p in
            guard p == path, done.withLockedValue({ done in defer { done = true }; return !done }) else { return }
            switch change {
            case "grows":
                let h = FileHandle(forWritingAtPath: p)!
                h.seekToEndOfFile()
                h.write(Data(SampleContent.eicar.utf8))
                try? h.close()
            case "truncated":
                truncate(p, 3)
            default:
                unlink(p)
                FileManager.default.createFile(atPath: p, contents: Data(SampleContent.eicar.utf8))
            }
        }
        try await withEmulator { emulator in
            let summary = try await run(ws, emulator, hooks: hooks)
            #expect(summary.exitCode == (change == "truncated" ? 0 : 1))
        }
        // Only the final version has an outcome, and it is the verdict of its own bytes.
        let results = try ws.results()
        #expect(results.count == 1)
        let expectedSize = change == "truncated" ? 3 : (change == "grows" ? 16 + 68 : 68)
        #expect(results["moving.txt"]?.int("size") == Int64(expectedSize))
        // The version that changed while it was read was never recorded (hashing has no
        // persisted in-progress state): the file's only row is its final version.
        let db = try SQLiteConnection(path: ws.database)
        #expect(try db.queryOne("SELECT COUNT(*) AS n FROM files")?.int("n") == 1)
        #expect(try db.queryOne("SELECT size FROM files")?.int("size") == Int64(expectedSize))
    }

    // MARK: kinds of files

    @Test func specialFilesAreNotScannedWithTheirReason() async throws {
        let ws = try Workspace()
        mkfifo(ws.inbox + "/pipe", 0o644)
        let sock = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let socketPath = ws.inbox + "/socket"
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in socketPath.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        defer { close(sock) }
        let isRoot = getuid() == 0
        if isRoot { mknod(ws.inbox + "/device", S_IFCHR | 0o600, dev_t((1 << 8) | 3)) }
        symlink("/etc/hostname", ws.inbox + "/outside-link")
        symlink(ws.inbox + "/loop-b", ws.inbox + "/loop-a")
        symlink(ws.inbox + "/loop-a", ws.inbox + "/loop-b")
        try ws.put("target.txt", Array("t".utf8))
        symlink(ws.inbox + "/target.txt", ws.inbox + "/inside-link")
        try await withEmulator { emulator in
            let summary = try await run(ws, emulator)
            #expect(summary.exitCode == 2, "\(summary)")
        }
        try expectResult(ws, "pipe", outcome: "not_scanned", errorContains: "unreadable: not a regular file")
        if bound == 0 { try expectResult(ws, "socket", outcome: "not_scanned", errorContains: "not a regular file") }
        if isRoot { try expectResult(ws, "device", outcome: "not_scanned", errorContains: "not a regular file") }
        for link in ["outside-link", "loop-a", "loop-b", "inside-link"] {
            try expectResult(ws, link, outcome: "not_scanned", errorContains: "symbolic link: not followed")
        }
        try expectResult(ws, "target.txt", outcome: "clean")
        // Links are filed as links: the target outside the inbox is untouched.
        #expect(FileManager.default.fileExists(atPath: "/etc/hostname"))
    }

    @Test func overTheUploadLimitIsNotUploaded() async throws {
        let ws = try Workspace()
        let path = ws.inbox + "/huge.bin"
        FileManager.default.createFile(atPath: path, contents: nil)
        truncate(path, off_t(FalconClientConfiguration.defaultMaxUploadBytes + 1))
        try await withEmulator { emulator in
            let summary = try await run(ws, emulator) { $0.scanMaxFileBytesSetting = 1 << 40 }
            #expect(summary.exitCode == 2)
            #expect(emulator.stats.uploads == 0)
        }
        try expectResult(ws, "huge.bin", outcome: "not_scanned", errorContains: "too_large: 268435457 bytes, over max_file_bytes 268435456")
    }

    /// The scan limit is separate from the upload limit: legacy Quick Scan stops at 36,700,160
    /// bytes (where CrowdStrike's own integrations stop), QuickScan Pro at 256 MiB.
    @Test func overTheScanLimitIsNotUploaded() async throws {
        let ws = try Workspace()
        FileManager.default.createFile(atPath: ws.inbox + "/big.bin", contents: nil)
        truncate(ws.inbox + "/big.bin", 36_700_161)
        FileManager.default.createFile(atPath: ws.inbox + "/fits.txt", contents: Data("just at the limit".utf8))
        try await withEmulator { emulator in
            let summary = try await run(ws, emulator)
            #expect(summary.exitCode == 2)
            #expect(emulator.stats.uploads == 1)
        }
        try expectResult(ws, "big.bin", outcome: "not_scanned", errorContains: "too_large: 36700161 bytes, over scan.max_file_bytes 36700160")
        try expectResult(ws, "fits.txt", outcome: "clean")
        var pro = WorkerConfiguration()
        pro.api = .quickscanpro
        #expect(pro.fileSizeLimit.bytes == 256 * 1024 * 1024)
        pro.scanMaxFileBytesSetting = 1000
        #expect(pro.fileSizeLimit == (1000, "scan.max_file_bytes"))
    }

    @Test func emptyAndOddlyNamedFiles() async throws {
        let ws = try Workspace()
        let long = String(repeating: "n", count: 251) + ".txt"  // 255 bytes
        let names = ["empty.txt", "with spaces.txt", "new\nline.txt", long, "quote\"and,comma.txt", "tab\there.txt", "émoji 📄.txt"]
        for name in names { try ws.put(name, name == "empty.txt" ? [] : Array(name.utf8)) }
        try await withEmulator { emulator in
            let summary = try await run(ws, emulator)
            #expect(summary.exitCode == 0, "\(summary)")
        }
        for name in names {
            try expectResult(ws, name, outcome: "clean")
            #expect(FileManager.default.fileExists(atPath: ws.dir.path + "/clean/" + name), "\(name)")
        }
    }

    @Test func invalidUTF8NameIsReportedAndLeftInPlace() async throws {
        let ws = try Workspace()
        var raw = Array((ws.inbox + "/bad-").utf8) + [0xff, 0xfe] + Array(".txt".utf8) + [0]
        let fd = raw.withUnsafeMutableBufferPointer { open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_CREAT | O_WRONLY, 0o644) }
        #expect(fd >= 0)
        close(fd)
        try await withEmulator { emulator in
            let first = try await run(ws, emulator)
            #expect(first.exitCode == 2)
            let second = try await run(ws, emulator)
            #expect(second.exitCode == 0, "not taken twice")
        }
        let rows = try ws.results().filter { $0.key.hasPrefix("bad-") }
        #expect(rows.count == 1)
        #expect(rows.first?.value.string("error")?.contains("not valid UTF-8") == true)
        let left = try FileManager.default.contentsOfDirectory(atPath: ws.inbox)
        #expect(left.count == 1, "the file stays in the inbox: \(left)")
    }

    // MARK: inboxes, destinations, database

    @Test(arguments: ["missing", "file"])
    func badInboxIsAConfigurationError(kind: String) async throws {
        let ws = try Workspace()
        let inbox = ws.dir.path + "/not-there"
        if kind == "file" { FileManager.default.createFile(atPath: inbox, contents: Data("x".utf8)) }
        let result = try await runProcess(quickscanExecutable(), ["run", "--once", "--emulator", "--inbox", inbox, "--database", ws.database])
        #expect(result.status == 3)
        #expect(result.stderr.contains("inbox \(inbox) \(kind == "file" ? "is not a folder" : "does not exist")"), "\(result.stderr)")
    }

    @Test func unwritableDestinationDefersAndKeepsTheFile() async throws {
        let ws = try Workspace()
        try ws.put("a.txt", Array("a".utf8))
        let blocker = ws.dir.path + "/blocker"
        FileManager.default.createFile(atPath: blocker, contents: Data())
        try await withEmulator { emulator in
            let summary = try await run(ws, emulator) { $0.disposition[.clean] = .init(action: .move, to: blocker + "/clean") }
            #expect(summary.exitCode == 4)
            #expect(summary.deferredReason?.contains(blocker) == true, "\(summary)")
        }
        #expect(FileManager.default.fileExists(atPath: ws.inbox + "/a.txt"))
    }

    @Test(arguments: ["garbage", "truncated", "newer"])
    func unusableDatabaseIsAClearError(kind: String) async throws {
        let ws = try Workspace()
        try ws.put("a.txt", Array("a".utf8))
        switch kind {
        case "garbage":
            FileManager.default.createFile(atPath: ws.database, contents: Data(repeating: 0x42, count: 8192))
        case "truncated":
            let store = try WorkerStore(path: ws.database)
            _ = try await store.beginRun(mode: "x")
            let db = try SQLiteConnection(path: ws.database)
            try db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            let data = try Data(contentsOf: URL(fileURLWithPath: ws.database))
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: ws.database))
            try? FileManager.default.removeItem(atPath: ws.database + "-wal")
            try? FileManager.default.removeItem(atPath: ws.database + "-shm")
        default:
            let db = try SQLiteConnection(path: ws.database)
            try WorkerStore.migrations.migrate(db)
            try db.run("INSERT INTO schema_migrations (name, applied_at) VALUES ('999-from-the-future', 0)")
        }
        let result = try await runProcess(quickscanExecutable(), ["run", "--once", "--emulator", "--inbox", ws.inbox, "--database", ws.database])
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains(ws.database), "\(result.stderr)")
        if kind == "newer" { #expect(result.stderr.contains("newer version")) }
        #expect(FileManager.default.fileExists(atPath: ws.inbox + "/a.txt"))
    }

    @Test func unreadableConfigFileIsExit3() async throws {
        let result = try await runProcess(quickscanExecutable(), ["run", "--once", "--emulator", "--config", "/nonexistent/quickscan.json"])
        #expect(result.status == 3)
        #expect(result.stderr.contains("cannot read config file /nonexistent/quickscan.json"))
    }
}

/// Unreadable files and inboxes: root reads everything, so the worker runs as `nobody` here
/// (via setpriv) when the tests run as root; as another user, plain permissions do.
@Suite(.timeLimit(.minutes(2)))
struct UnreadableInputTests {
    /// The command line that runs the worker without root's powers.
    func unprivileged(_ arguments: [String]) -> (String, [String])? {
        if getuid() != 0 { return (quickscanExecutable(), arguments) }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return nil }
        return ("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", quickscanExecutable()] + arguments)
    }

    /// A workspace every user may enter and write (the worker runs as nobody; its parent, the
    /// system temp folder, is world-searchable).
    func openWorkspace() throws -> Workspace {
        let ws = try Workspace()
        for path in [ws.dir.path, ws.inbox] { chmod(path, 0o777) }
        return ws
    }

    @Test func anUnreadableFileIsNotScannedAndKept() async throws {
        let ws = try openWorkspace()
        let secret = try ws.put("locked.txt", Array("private".utf8))
        chmod(secret, 0o000)
        try ws.put("open.py", Array("public".utf8))
        chmod(ws.inbox + "/open.py", 0o644)
        guard let (command, arguments) = unprivileged(["run", "--once", "--emulator", "--inbox", ws.inbox, "--database", ws.dir.path + "/db.sqlite", "--settle-seconds", "0"]) else { return }
        let result = try await runProcess(command, arguments)
        #expect(result.status == 2, "\(result.stderr)")
        let rows = try Workspace.results(database: ws.dir.path + "/db.sqlite", inbox: ws.inbox)
        #expect(rows["locked.txt"]?.string("outcome") == "not_scanned")
        #expect(rows["locked.txt"]?.string("error")?.contains("unreadable: cannot open") == true, "\(String(describing: rows["locked.txt"]?.string("error")))")
        #expect(rows["locked.txt"]?.string("error")?.contains("Permission denied") == true)
        #expect(rows["open.py"]?.string("outcome") == "clean")
        #expect(FileManager.default.fileExists(atPath: secret))
    }

    @Test func anUnreadableInboxIsAConfigurationError() async throws {
        let ws = try openWorkspace()
        try ws.put("a.txt", Array("a".utf8))
        chmod(ws.inbox, 0o000)
        defer { chmod(ws.inbox, 0o755) }
        guard let (command, arguments) = unprivileged(["run", "--once", "--emulator", "--inbox", ws.inbox, "--database", ws.dir.path + "/db.sqlite"]) else { return }
        let result = try await runProcess(command, arguments)
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("inbox \(ws.inbox): Permission denied"), "\(result.stderr)")
    }
}
