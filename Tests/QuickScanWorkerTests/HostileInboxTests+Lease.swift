import FalconAPI
import FalconEmulator
import Foundation
import Hashing
import NIOConcurrencyHelpers
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Custody by link under a read lease: a file nobody writes and nobody else links is linked
/// into the spool and made the worker's own (no copy); anything else is copied; and whoever
/// dropped it cannot change what is filed.
extension HostileInboxTests {
    static func inode(_ path: String) -> UInt64? {
        var st = stat()
        return lstat(path, &st) == 0 ? UInt64(st.st_ino) : nil
    }

    static func statOf(_ path: String) -> stat? {
        var st = stat()
        return lstat(path, &st) == 0 ? st : nil
    }

    /// Runs the worker once in process over `ws` with custody on.
    static func runCustody(_ ws: Workspace, hooks: PipelineHooks = PipelineHooks(),
                           _ configure: @escaping (inout WorkerConfiguration) -> Void = { _ in }) async throws {
        try await withEmulator { emulator in
            let (pipeline, store, client) = try ws.pipeline(emulator, hooks: hooks) {
                $0.custody = "auto"
                configure(&$0)
            }
            _ = try await store.beginRun(mode: "once")
            let summary = try await pipeline.runOnce(deadline: Date().timeIntervalSince1970 + 60)
            try await store.finishRun(exitCode: summary.exitCode)
            await client.shutdown()
        }
    }

    /// What the spool holds once a run is over: nothing (no file, no journal).
    static func spoolLeftovers(_ ws: Workspace) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: ws.database + ".spool")) ?? []
    }

    /// A file with one link that nobody has open for writing is linked, not copied: the filed
    /// file is the dropped inode, now the worker's with the configured mode, and its bytes and
    /// results row agree.
    @Test func aFileNobodyWritesIsTakenByLinkAndBecomesOurs() async throws {
        let ws = try Workspace()
        let bytes = Array("a report nobody else holds".utf8)
        let path = try ws.put("sub/report.txt", bytes)
        if getuid() == 0 { chown(path, 65534, 65534) }
        chmod(path, 0o666)
        let dropped = try #require(Self.inode(path))
        try await Self.runCustody(ws)
        let row = try #require(try ws.results()["sub/report.txt"])
        let filed = try #require(row.string("disposed_to"))
        #expect(Self.inode(filed) == dropped, "taken by link: the filed file is the dropped inode")
        let st = try #require(Self.statOf(filed))
        #expect(st.st_uid == geteuid() && st.st_gid == getegid(), "the worker's own")
        #expect(st.st_mode & 0o7777 == 0o644 && st.st_nlink == 1)
        #expect(ws.contents(filed) == bytes)
        #expect(Self.sha256(filed) == row.string("sha256"))
        #expect(!FileManager.default.fileExists(atPath: path), "gone from the inbox")
        #expect(Self.spoolLeftovers(ws).isEmpty, "\(Self.spoolLeftovers(ws))")
        try Self.checkFiledMatchResults(ws.database)
    }

    /// `custody: copy` never links: the filed file is a new inode.
    @Test func custodyCopyNeverLinks() async throws {
        let ws = try Workspace()
        let path = try ws.put("a.txt", Array("copied, never linked".utf8))
        let dropped = try #require(Self.inode(path))
        try await Self.runCustody(ws) { $0.custody = "copy" }
        let filed = try #require(try ws.results()["a.txt"]?.string("disposed_to"))
        #expect(Self.inode(filed) != dropped)
        #expect(ws.contents(filed) == Array("copied, never linked".utf8))
        #expect(!FileManager.default.fileExists(atPath: path))
        try Self.checkFiledMatchResults(ws.database)
    }

    /// A file that another process holds open for writing cannot be leased: it is copied,
    /// and what that writer writes afterwards never reaches the filed file.
    @Test func aFileHeldOpenForWritingIsCopied() async throws {
        let ws = try Workspace()
        let benign = Array("benign bytes, held open by a writer".utf8)
        let path = try ws.put("held.txt", benign)
        let dropped = try #require(Self.inode(path))
        let marker = ws.dir.path + "/go"
        let script = try ws.dir.write("writer.py", """
            import os, sys, time
            f = open(sys.argv[1], "r+b")
            print("ready", flush=True)
            end = time.time() + 60
            while not os.path.exists(sys.argv[2]) and time.time() < end:
                time.sleep(0.02)
            f.seek(0)
            f.write(sys.argv[3].encode())
            f.flush()
            os.fsync(f.fileno())
            print("wrote", flush=True)
            """)
        let writer = try await Self.startHelper(["/usr/bin/python3", script, path, marker, SampleContent.eicar])
        try await Self.waitForLine(writer, "ready")
        try await Self.runCustody(ws)
        FileManager.default.createFile(atPath: marker, contents: nil)
        let output = try await Self.finish(writer)
        #expect(output.contains("wrote"), "\(output)")
        let row = try #require(try ws.results()["held.txt"])
        let filed = try #require(row.string("disposed_to"))
        #expect(Self.inode(filed) != dropped, "copied: the writer's inode is not the filed one")
        #expect(ws.contents(filed) == benign, "the writer's later write never reaches the filed file")
        #expect(Self.sha256(filed) == row.string("sha256"))
        #expect(Self.spoolLeftovers(ws).isEmpty)
        try Self.checkFiledMatchResults(ws.database)
    }

    /// A file with a second hard link (outside the inbox) is copied, not linked, and the
    /// outside link keeps its owner and mode: nothing outside the inbox is touched.
    @Test func aFileWithASecondLinkIsCopiedAndItsOtherNameUntouched() async throws {
        let ws = try Workspace()
        let path = try ws.put("twice.txt", Array("two names".utf8))
        chmod(path, 0o640)
        if getuid() == 0 { chown(path, 65534, 65534) }
        let outside = ws.dir.path + "/outside.txt"
        #expect(link(path, outside) == 0)
        let before = try #require(Self.statOf(outside))
        try await Self.runCustody(ws)
        let filed = try #require(try ws.results()["twice.txt"]?.string("disposed_to"))
        let after = try #require(Self.statOf(outside))
        #expect(Self.inode(filed) != UInt64(before.st_ino), "copied, not linked")
        #expect(after.st_uid == before.st_uid && after.st_gid == before.st_gid && after.st_mode == before.st_mode,
                "the outside name's file kept its owner and mode")
        #expect(after.st_nlink == 1, "only the inbox name was removed")
        #expect(ws.contents(filed) == Array("two names".utf8))
        try Self.checkFiledMatchResults(ws.database)
    }

    /// Someone opens the file for writing while it is being taken (after it was hashed, under
    /// the lease): the lease breaks, the take is undone (the file goes back as it was, with its
    /// owner and mode), and its next version is taken later; what is filed matches its row.
    @Test func aWriterArrivingDuringTheTakeUndoesIt() async throws {
        let ws = try Workspace()
        let bytes = Array("opened for writing mid-take".utf8)
        let path = try ws.put("mid.txt", bytes)
        chmod(path, 0o640)
        let seen = NIOLockedValueBox<[(uid: uid_t, mode: mode_t, broke: Bool)]>([])
        var hooks = PipelineHooks()
        hooks.afterHash = { hashed in
            guard hashed == path, seen.withLockedValue({ $0.isEmpty }) else { return }
            // Non-blocking: the open fails with EWOULDBLOCK, but the break has begun.
            let fd = open(path, O_WRONLY | O_NONBLOCK)
            let broke = fd < 0 && errno == EWOULDBLOCK
            if fd >= 0 { close(fd) }
            seen.withLockedValue { $0.append((0, 0, broke)) }
        }
        hooks.beforeHash = { next in
            // The second attempt: the file is back in the inbox as it was dropped.
            guard next == path, !seen.withLockedValue({ $0.isEmpty }), let st = Self.statOf(path) else { return }
            seen.withLockedValue { $0.append((st.st_uid, st.st_mode & 0o7777, false)) }
        }
        try await Self.runCustody(ws, hooks: hooks)
        let attempts = seen.withLockedValue { $0 }
        #expect(attempts.first?.broke == true, "the open for writing found our lease and broke it")
        #expect(attempts.count >= 2, "taken again after the undone take")
        if attempts.count >= 2 { #expect(attempts[1].uid == getuid() && attempts[1].mode == 0o640, "given back as it was") }
        let row = try #require(try ws.results()["mid.txt"])
        let filed = try #require(row.string("disposed_to"))
        #expect(ws.contents(filed) == bytes)
        #expect(Self.sha256(filed) == row.string("sha256"))
        #expect(Self.spoolLeftovers(ws).isEmpty)
        try Self.checkFiledMatchResults(ws.database)
    }

    /// The dropper (nobody) keeps a read-only descriptor to the file it dropped and waits
    /// until it is filed, then tries everything a kept descriptor or path allows: reopen it
    /// for writing through /proc, change its mode, write through the old path, make a hard
    /// link to it. Nothing works; the filed file (the dropped inode, taken by link) is intact.
    @Test func theDropperCannotChangeAFileTakenByLink() async throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return }
        let ws = try Workspace()
        chmod(ws.dir.path, 0o755)
        chmod(ws.inbox, 0o1777)
        let filedPath = ws.dir.path + "/clean/dropped.txt"
        let script = try ws.dir.write("dropper.py", """
            import json, os, sys, time
            inbox, filed, keep = sys.argv[1], sys.argv[2], sys.argv[3]
            path = inbox + "/dropped.txt"
            with open(path, "wb") as f:
                f.write(b"the dropper's benign bytes")
            os.chmod(path, 0o666)
            fd = os.open(path, os.O_RDONLY)
            print("ready %d" % os.fstat(fd).st_ino, flush=True)
            end = time.time() + 90
            while not os.path.exists(filed) and time.time() < end:
                time.sleep(0.02)
            time.sleep(0.2)
            tried = {}
            def attempt(name, fn):
                try:
                    fn()
                    tried[name] = "succeeded"
                except OSError as e:
                    tried[name] = e.strerror
            attempt("reopen for writing", lambda: os.close(os.open("/proc/self/fd/%d" % fd, os.O_WRONLY)))
            attempt("fchmod", lambda: os.fchmod(fd, 0o666))
            attempt("write the old path", lambda: os.close(os.open(path, os.O_WRONLY)))
            attempt("link the descriptor", lambda: os.link("/proc/self/fd/%d" % fd, keep, follow_symlinks=True))
            attempt("truncate", lambda: os.truncate("/proc/self/fd/%d" % fd, 0))
            print(json.dumps(tried), flush=True)
            """)
        chmod(script, 0o644)
        let keep = ws.dir.path + "/keep"
        try FileManager.default.createDirectory(atPath: keep, withIntermediateDirectories: true)
        chown(keep, 65534, 65534)
        let dropper = try await Self.startHelper(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                                  "/usr/bin/python3", script, ws.inbox, filedPath, keep + "/kept.txt"])
        let ready = try await Self.waitForLine(dropper, "ready")
        let dropped = UInt64(ready.split(separator: " ").last ?? "") ?? 0
        try await Self.runCustody(ws)
        let output = try await Self.finish(dropper)
        let line = try #require(output.split(separator: "\n").last.map(String.init))
        let tried = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String], "\(output)")
        #expect(tried.count == 5)
        for (name, result) in tried { #expect(result != "succeeded", "\(name): \(result)") }
        #expect(Self.inode(filedPath) == dropped, "taken by link")
        #expect(ws.contents(filedPath) == Array("the dropper's benign bytes".utf8))
        let st = try #require(Self.statOf(filedPath))
        #expect(st.st_uid == 0 && st.st_nlink == 1)
        #expect(!FileManager.default.fileExists(atPath: keep + "/kept.txt"))
        try Self.checkFiledMatchResults(ws.database)
    }

    // MARK: helper processes

    final class Helper: @unchecked Sendable {
        let process = Process()
        let out = Pipe()
        var buffer = Data()
    }

    static func startHelper(_ argv: [String]) async throws -> Helper {
        let helper = Helper()
        helper.process.executableURL = URL(fileURLWithPath: argv[0])
        helper.process.arguments = Array(argv.dropFirst())
        helper.process.environment = ["PATH": "/usr/bin:/bin"]
        helper.process.standardOutput = helper.out
        helper.process.standardError = FileHandle.nullDevice
        try await onDedicatedThread { try helper.process.run() }
        return helper
    }

    /// Waits (at most 30 s) for a stdout line starting with `prefix`; returns it.
    @discardableResult
    static func waitForLine(_ helper: Helper, _ prefix: String) async throws -> String {
        try await onDedicatedThread {
            let end = Date().addingTimeInterval(30)
            while Date() < end {
                if let text = String(data: helper.buffer, encoding: .utf8),
                   let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                    return String(line)
                }
                let chunk = helper.out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                helper.buffer.append(chunk)
            }
            throw CocoaError(.fileReadUnknown)
        }
    }

    /// Waits for the helper to exit; returns everything it printed.
    static func finish(_ helper: Helper) async throws -> String {
        try await onDedicatedThread {
            helper.buffer.append(helper.out.fileHandleForReading.readDataToEndOfFile())
            helper.process.waitUntilExit()
            return String(decoding: helper.buffer, as: UTF8.self)
        }
    }
}
