import FalconAPI
import FalconEmulator
import Foundation
import Hashing
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport
import NIOConcurrencyHelpers
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// An inbox whose users race the worker (issue: custody). The worker runs as root (CI runs
/// the tests as root); the attacker runs as `nobody` through setpriv. After each attack:
/// nothing outside the inbox was read, changed or moved; every filed file's sha256 equals its
/// results row; nothing the attacker writes afterwards changes a filed file.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct HostileInboxTests {
    static func sha256(_ path: String) -> String? { try? FileHasher().hashFile(atPath: path).sha256 }

    /// Every filed file holds exactly the bytes its results row records.
    static func checkFiledMatchResults(_ database: String) throws {
        let db = try SQLiteConnection(path: database)
        for row in try db.query("SELECT path, sha256, disposed_to FROM results WHERE disposed_to IS NOT NULL AND disposed_to != '(deleted)'") {
            let to = row.string("disposed_to")!
            guard let expected = row.string("sha256") else { continue }
            #expect(sha256(to) == expected, "\(to) holds other bytes than its results row says")
        }
    }

    /// A root-only folder outside the inbox with a secret file; returns (folder, file, sha256).
    static func secret(_ ws: Workspace) throws -> (folder: String, file: String, sha: String) {
        let folder = ws.dir.path + "/root-only"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        chmod(folder, 0o700)
        let file = folder + "/d"  // the same name as the attacker's folder's files
        try Data("TOP SECRET: not for the cloud".utf8).write(to: URL(fileURLWithPath: file))
        return (folder, file, sha256(file)!)
    }

    func config(_ ws: Workspace, extra: String = "") throws -> String {
        try ws.dir.write("config.json", """
            {"inboxes":[{"path":"inbox"}],"settle_seconds":0,"poll_interval_seconds":0.05,"database":"db.sqlite",
             "volume":{"max_samples":50,"max_wait_seconds":0},"scan":{"poll_interval_seconds":0.05},
             "disposition":{"clean":{"action":"move","to":"clean"},"threat":{"action":"move","to":"quarantine"},"not_scanned":{"action":"move","to":"failed"}},
             \(extra)"log":{"level":"error"}}
            """)
    }

    /// The attacker swaps a subfolder with a symlink to a root-only folder, in a loop
    /// (`renameat2(RENAME_EXCHANGE)`), for 20 s while a watch-mode worker runs as root.
    @Test func aFolderSwappedWithASymlinkLeadsNowhereOutside() async throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return }
        let ws = try Workspace()
        chmod(ws.inbox, 0o1777)
        let (folder, secretFile, secretSHA) = try Self.secret(ws)
        let config = try config(ws)
        let script = """
            import ctypes, os, time, sys
            libc = ctypes.CDLL(None, use_errno=True)
            inbox = sys.argv[1]
            os.makedirs(inbox + "/d", exist_ok=True)
            os.symlink(sys.argv[2], inbox + "/x")
            end = time.time() + float(sys.argv[3])
            n = 0
            while time.time() < end:
                n += 1
                try:
                    with open(inbox + "/d/f%d" % n, "w") as f:
                        f.write("attacker file %d\\n" % n)
                except OSError:
                    pass
                # RENAME_EXCHANGE = 2: d <-> x, atomically
                libc.renameat2(-100, (inbox + "/d").encode(), -100, (inbox + "/x").encode(), 2)
            print(n)
            """
        let scriptPath = try ws.dir.write("attacker.py", script)
        chmod(scriptPath, 0o644)
        chmod(ws.dir.path, 0o755)
        try await withEmulator { emulator in
            let baseURL = emulator.baseURL
            let bin = quickscanExecutable()
            let worker = try await onDedicatedThread { () -> Process in
                let p = Process()
                p.executableURL = URL(fileURLWithPath: bin)
                p.arguments = ["run", "--config", config, "--base-url", baseURL]
                p.environment = ["FALCON_CLIENT_ID": "a", "FALCON_CLIENT_SECRET": "b", "PATH": "/usr/bin:/bin"]
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                try p.run()
                return p
            }
            let attack = try await runProcess("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                                   "/usr/bin/python3", scriptPath, ws.inbox, folder, "20"])
            #expect(attack.status == 0, "\(attack.stderr)")
            #expect((Int(attack.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 100, "the race flipped many times")
            try await Task.sleep(for: .seconds(2))
            let status = try await onDedicatedThread { () -> Int32 in
                worker.terminate()
                worker.waitUntilExit()
                return worker.terminationStatus
            }
            #expect(status == 0)
            #expect(!emulator.storedSamples.contains(secretSHA), "the root-only file was uploaded")
        }
        #expect(Self.sha256(secretFile) == secretSHA, "the root-only file is intact and in place")
        let db = try SQLiteConnection(path: ws.database)
        #expect(try db.queryOne("SELECT COUNT(*) AS n FROM files WHERE sha256 = ?", [secretSHA])?.int("n") == 0)
        #expect(try db.queryOne("SELECT COUNT(*) AS n FROM files WHERE path LIKE ?", ["%root-only%"])?.int("n") == 0)
        #expect(try db.queryOne("SELECT COUNT(*) AS n FROM results")?.int("n") ?? 0 > 0, "the attacker's own files were scanned")
        try Self.checkFiledMatchResults(ws.database)
    }

    /// A folder replaced by a symlink between the walk and the hash, and a file replaced by a
    /// FIFO: nothing outside is read, nothing blocks.
    @Test func aFolderOrFileSwappedAfterTheWalkIsNotFollowed() async throws {
        let ws = try Workspace()
        let (folder, _, secretSHA) = try Self.secret(ws)
        try ws.put("d/d", Array("inside".utf8))
        let fifoPath = try ws.put("pipe.txt", Array("a file for now".utf8))
        var hooks = PipelineHooks()
        let inbox = ws.inbox
        hooks.beforeHash = { path in
            if path == inbox + "/d/d" {
                rename(inbox + "/d", inbox + "/d.real")
                symlink(folder, inbox + "/d")
            }
            if path == fifoPath {
                unlink(fifoPath)
                mkfifo(fifoPath, 0o666)
            }
        }
        try await withEmulator { emulator in
            let (pipeline, store, client) = try ws.pipeline(emulator, hooks: hooks) { $0.custody = "auto" }
            _ = try await store.beginRun(mode: "once")
            let summary = try await pipeline.runOnce(deadline: Date().timeIntervalSince1970 + 60)
            try await store.finishRun(exitCode: summary.exitCode)
            await client.shutdown()
            #expect(!emulator.storedSamples.contains(secretSHA))
        }
        let db = try SQLiteConnection(path: ws.database)
        #expect(try db.queryOne("SELECT COUNT(*) AS n FROM files WHERE sha256 = ?", [secretSHA])?.int("n") == 0)
        var st = stat()
        #expect(lstat(folder + "/d", &st) == 0, "the outside file was not moved")
        try Self.checkFiledMatchResults(ws.database)
    }

    /// Benign bytes written through a shared mapping, EICAR written into the same page after
    /// hashing (neither mtime nor ctime need change), and a hard link kept outside the inbox:
    /// the filed file holds the bytes scanned, and later writes never reach it.
    @Test func writesThroughAMappingOrAKeptHardLinkNeverReachAFiledFile() async throws {
        let ws = try Workspace()
        let benign = Array("invoice total 42.00 EUR".utf8) + [UInt8](repeating: 0x20, count: 68 - 23)
        let eicar = Array(SampleContent.eicar.utf8)
        #expect(benign.count == eicar.count)
        let invoice = try ws.put("invoice.txt", benign)
        let report = try ws.put("report.txt", Array("quarterly report".utf8))
        try FileManager.default.createDirectory(atPath: ws.dir.path + "/keep", withIntermediateDirectories: true)
        #expect(link(report, ws.dir.path + "/keep/report.txt") == 0)
        let fd = open(invoice, O_RDWR)
        #expect(fd >= 0)
        let map = mmap(nil, benign.count, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)!
        defer { munmap(map, benign.count); close(fd) }
        // The dropper writes the benign bytes through the mapping: the page stays dirty, so a
        // later write into it changes neither mtime nor ctime.
        benign.withUnsafeBytes { _ = memcpy(map, $0.baseAddress!, benign.count) }
        var hooks = PipelineHooks()
        let address = UInt(bitPattern: map)
        let written = NIOLockedValueBox(false)
        hooks.afterHash = { path in
            // Once, after hashing: the threat goes into the still-dirty page.
            guard path == invoice, !written.withLockedValue({ let was = $0; $0 = true; return was }),
                  let page = UnsafeMutableRawPointer(bitPattern: address) else { return }
            eicar.withUnsafeBytes { _ = memcpy(page, $0.baseAddress!, eicar.count) }
        }
        try await withEmulator { emulator in
            let (pipeline, store, client) = try ws.pipeline(emulator, hooks: hooks) { $0.custody = "auto" }
            _ = try await store.beginRun(mode: "once")
            let summary = try await pipeline.runOnce(deadline: Date().timeIntervalSince1970 + 60)
            try await store.finishRun(exitCode: summary.exitCode)
            await client.shutdown()
        }
        try Self.checkFiledMatchResults(ws.database)
        let rows = try ws.results()
        // Whatever verdict each file got, the filed bytes are the scanned bytes, now and after
        // the attacker writes again.
        for name in ["invoice.txt", "report.txt"] {
            let row = try #require(rows[name])
            let filed = try #require(row.string("disposed_to"))
            #expect(Self.sha256(filed) == row.string("sha256"))
        }
        try Data(eicar).write(to: URL(fileURLWithPath: ws.dir.path + "/keep/report.txt"))
        eicar.withUnsafeBytes { _ = memcpy(map, $0.baseAddress!, eicar.count) }
        msync(map, eicar.count, MS_SYNC)
        try Self.checkFiledMatchResults(ws.database)
        let filedReport = try #require(rows["report.txt"]?.string("disposed_to"))
        #expect(ws.contents(filedReport) == Array("quarterly report".utf8))
        var a = stat(), b = stat()
        #expect(stat(filedReport, &a) == 0 && stat(ws.dir.path + "/keep/report.txt", &b) == 0 && a.st_ino != b.st_ino,
                "the filed file shares no inode with the dropper's link")
        #expect(a.st_uid == geteuid() && a.st_mode & 0o777 == 0o644)
    }

    /// Destinations planted as symlinks, inside an inbox, or in a folder others can write are
    /// refused at start, naming the key (exit 3).
    @Test func unsafeDestinationsAreRefusedAtStart() async throws {
        let ws = try Workspace()
        try ws.put("a.txt", Array("a".utf8))
        try FileManager.default.createDirectory(atPath: ws.dir.path + "/loot", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: ws.dir.path + "/clean", withDestinationPath: ws.dir.path + "/loot")
        try await withEmulator { emulator in
            let symlinked = try await runProcess(quickscanExecutable(), ["run", "--once", "--config", try config(ws), "--base-url", emulator.baseURL],
                                                 environment: ["FALCON_CLIENT_ID": "a", "FALCON_CLIENT_SECRET": "b"])
            #expect(symlinked.status == 3)
            #expect(symlinked.stderr.contains("disposition.clean.to") && symlinked.stderr.contains("symbolic link"), "\(symlinked.stderr)")
            try FileManager.default.removeItem(atPath: ws.dir.path + "/clean")
            try FileManager.default.createDirectory(atPath: ws.dir.path + "/shared/clean", withIntermediateDirectories: true)
            chmod(ws.dir.path + "/shared", 0o777)
            let shared = try await runProcess(quickscanExecutable(), ["run", "--once", "--config",
                                                                      try ws.dir.write("c2.json", #"{"inboxes":[{"path":"inbox"}],"database":"db.sqlite","disposition":{"clean":{"action":"move","to":"shared/clean"}}}"#),
                                                                      "--base-url", emulator.baseURL],
                                              environment: ["FALCON_CLIENT_ID": "a", "FALCON_CLIENT_SECRET": "b"])
            #expect(shared.status == 3)
            #expect(shared.stderr.contains("disposition.clean.to") && shared.stderr.contains("writable by others"), "\(shared.stderr)")
            let inside = try await runProcess(quickscanExecutable(), ["run", "--once", "--config",
                                                                      try ws.dir.write("c3.json", #"{"inboxes":[{"path":"inbox/"}],"database":"db.sqlite","disposition":{"threat":{"action":"move","to":"inbox/./q"}}}"#),
                                                                      "--base-url", emulator.baseURL],
                                              environment: ["FALCON_CLIENT_ID": "a", "FALCON_CLIENT_SECRET": "b"])
            #expect(inside.status == 3)
            #expect(inside.stderr.contains("disposition.threat.to") && inside.stderr.contains("inside an inbox"), "\(inside.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: ws.dir.path + "/loot").isEmpty)
    }

    /// A file name never forges a line or a column: text logs escape control and bidi
    /// characters.
    @Test func fileNamesNeverForgeOutput() {
        let lines = NIOLockedValueBox<[String]>([])
        let handler = TextLogHandler(label: "t") { line in lines.withLockedValue { $0.append(line) } }
        handler.log(level: .warning, message: "file taken", metadata: ["file.path": "/in/a\nFAKE LINE \u{202E}txt.exe\u{85}"],
                    source: "test", file: #file, function: #function, line: #line)
        let out = lines.withLockedValue { $0 }
        #expect(out.count == 1)
        #expect(out[0].filter { $0 == "\n" }.count == 1 && out[0].hasSuffix("\n"))
        #expect(!out[0].unicodeScalars.contains { $0.value == 0x202E || $0.value == 0x85 })
        #expect(out[0].contains("\\u{a}FAKE LINE \\u{202e}"))
    }

    /// The client secret never travels in clear to another host.
    @Test func plainHTTPToAnotherHostIsRefused() {
        func check(_ url: String, allow: Bool = false) -> Bool {
            var c = FalconClientConfiguration(credentials: FalconCredentials(clientID: "a", clientSecret: "b"), baseURL: url)
            c.allowPlainHTTP = allow
            do { try c.validate(); return true } catch { return false }
        }
        #expect(!check("http://api.example.com"))
        #expect(!check("http://10.0.0.5:8080/"))
        #expect(check("http://127.0.0.1:8999"))
        #expect(check("http://localhost:8999"))
        #expect(check("http://[::1]:8999"))
        #expect(check("https://api.example.com"))
        #expect(check("http://api.example.com", allow: true))
    }
}
