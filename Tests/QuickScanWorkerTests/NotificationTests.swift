import FalconAPI
import FalconEmulator
import Foundation
import Logging
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Threat notifications: written with the verdict, delivered at least once with a stable id,
/// retried through receiver faults, never blocking the scan.
@Suite(.timeLimit(.minutes(3)))
struct NotificationTests {
    func notify(_ url: String, timeout: Double = 2, notScanned: Bool = false) -> (inout WorkerConfiguration) -> Void {
        { c in
            c.notify.webhookURL = url
            c.notify.timeoutSeconds = timeout
            c.notify.backoffSeconds = 0.05
            c.notify.maxBackoffSeconds = 0.2
            c.notify.notScanned = notScanned
        }
    }

    func outbox(_ database: String) throws -> [SQLiteRow] {
        try SQLiteConnection(path: database).query("SELECT * FROM outbox ORDER BY id")
    }

    @Test func aThreatIsPostedAfterTwo500sWithTheSameIDEachTime() async throws {
        let receiver = WebhookReceiver(answers: [.status(500), .status(500)])
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        let ws = try Workspace()
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        try ws.put("ok.txt", Array("clean".utf8))
        try await withEmulator({ $0.scanPollsUntilDone = 1 }) { emulator in
            let summary = try await ws.runOnce(emulator, notify(receiver.url))
            #expect(summary.exitCode == 1)
        }
        let got = receiver.received
        #expect(got.count == 3)
        #expect(Set(got.map(\.id)).count == 1)
        #expect(got.map(\.answered) == [500, 500, 200])
        let body = try #require(got.last?.body)
        #expect(body["id"] == got[0].id)
        #expect(body["outcome"] == "threat")
        #expect(body["verdict"] == "malware")
        #expect(body["path"]?.hasSuffix("inbox/eicar.com") == true)
        #expect(body["destination"]?.hasSuffix("quarantine/eicar.com") == true)
        #expect(body["sha256"]?.count == 64)
        let rows = try outbox(ws.database)
        #expect(rows.count == 1)  // the clean file is not notified
        #expect(rows[0].double("delivered_at") != nil)
        #expect(rows[0].int("attempts") == 3)
        #expect(rows[0].string("notification_id") == got[0].id)
    }

    @Test func aReceiverThatStallsIsTimedOutAndTriedAgain() async throws {
        let receiver = WebhookReceiver(answers: [.stall(.seconds(3))])
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        let ws = try Workspace()
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        let started = Date()
        try await withEmulator({ $0.scanPollsUntilDone = 1 }) { emulator in
            _ = try await ws.runOnce(emulator, notify(receiver.url, timeout: 0.5))
        }
        #expect(Date().timeIntervalSince(started) < 60)  // the run ends although the receiver stalls
        let got = receiver.received
        #expect(got.count >= 2)
        #expect(Set(got.map(\.id)).count == 1)
        let rows = try outbox(ws.database)
        #expect(rows[0].double("delivered_at") != nil)
    }

    @Test func aReceiverDownForAWhileGetsTheNoticeWhenItComesBack() async throws {
        // A port that nobody listens on: bind, note it, stop.
        let probe = WebhookReceiver()
        try await probe.start()
        let port = probe.port
        await probe.stop()
        let url = "http://127.0.0.1:\(port)/hook?token=receiver-secret-token"
        let ws = try Workspace()
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        try ws.put("p.png", SampleContent.png)
        try await withEmulator({ $0.scanPollsUntilDone = 1 }) { emulator in
            let summary = try await ws.runOnce(emulator, notify(url, timeout: 0.5, notScanned: true))
            #expect(summary.exitCode == 1)  // the scan finished although nobody took the notices
        }
        var rows = try outbox(ws.database)
        #expect(rows.count == 2)
        #expect(rows.allSatisfy { $0.double("delivered_at") == nil && ($0.int("attempts") ?? 0) >= 1 })
        // status shows them, without the webhook's token.
        let report = try ResultsReader(path: ws.database).status()
        #expect(report.undeliveredCount == 2)
        #expect(report.undelivered.allSatisfy { $0.lastError?.contains("receiver-secret-token") == false })
        let ids = Set(rows.compactMap { $0.string("notification_id") })

        // Back up on the same port: the next run delivers both, with the ids they were given.
        let receiver = WebhookReceiver()
        try await receiver.start(port: port)
        defer { Task { await receiver.stop() } }
        try await withEmulator({ $0.scanPollsUntilDone = 1 }) { emulator in
            _ = try await ws.runOnce(emulator, notify(url, timeout: 2, notScanned: true))
        }
        #expect(Set(receiver.received.map(\.id)) == ids)
        #expect(Set(receiver.received.compactMap { $0.body["outcome"] }) == ["threat", "not_scanned"])
        rows = try outbox(ws.database)
        #expect(rows.allSatisfy { $0.double("delivered_at") != nil })
        #expect(try ResultsReader(path: ws.database).status().undeliveredCount == 0)
    }

    @Test func aCommandGetsTheNoticeInItsEnvironmentWithoutCredentials() async throws {
        let ws = try Workspace()
        let out = ws.dir.path + "/notice.env"
        let script = try ws.dir.write("notify.sh", "#!/bin/sh\nenv > '\(out)'\n")
        chmod(script, 0o755)
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        setenv("FALCON_CLIENT_SECRET", "must-not-leak", 1)
        defer { unsetenv("FALCON_CLIENT_SECRET") }
        try await withEmulator({ $0.scanPollsUntilDone = 1 }) { emulator in
            _ = try await ws.runOnce(emulator) { c in
                c.notify.command = [script]
                c.notify.backoffSeconds = 0.05
            }
        }
        let env = try String(contentsOfFile: out, encoding: .utf8)
        #expect(env.contains("QUICKSCAN_OUTCOME=threat"))
        #expect(env.contains("QUICKSCAN_VERDICT=malware"))
        #expect(env.contains("QUICKSCAN_PATH=\(ws.inbox)/eicar.com"))
        #expect(env.contains("QUICKSCAN_DESTINATION=\(ws.dir.path)/quarantine/eicar.com"))
        #expect(env.contains("QUICKSCAN_SHA256="))
        #expect(env.contains("QUICKSCAN_NOTIFICATION_ID="))
        #expect(!env.contains("must-not-leak"))
        #expect(!env.contains("FALCON_"))
        let rows = try outbox(ws.database)
        #expect(rows.count == 1 && rows[0].double("delivered_at") != nil && rows[0].string("channel") == "command")
    }

    @Test func aFailingCommandIsRetried() async throws {
        let ws = try Workspace()
        let marker = ws.dir.path + "/first-done"
        // Fails the first time, succeeds after.
        let script = try ws.dir.write("notify.sh", "#!/bin/sh\nif [ -e '\(marker)' ]; then exit 0; fi\ntouch '\(marker)'\nexit 7\n")
        chmod(script, 0o755)
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        try await withEmulator({ $0.scanPollsUntilDone = 1 }) { emulator in
            _ = try await ws.runOnce(emulator) { c in
                c.notify.command = [script]
                c.notify.backoffSeconds = 0.05
            }
        }
        let rows = try outbox(ws.database)
        #expect(rows[0].double("delivered_at") != nil)
        #expect(rows[0].int("attempts") == 2)
    }

    @Test func notifyConfigKeysAreChecked() throws {
        let base = FileManager.default.temporaryDirectory.path
        func parse(_ json: String) throws -> WorkerConfiguration { try WorkerConfiguration.parse(Data(json.utf8), relativeTo: base) }
        #expect(throws: ConfigurationError.self) { try parse(#"{"notify":{"bogus":1}}"#) }
        do { _ = try parse(#"{"notify":{"bogus":1}}"#) } catch { #expect("\(error)".contains("notify.bogus")) }
        do { _ = try parse(#"{"metrics":{"port":1}}"#) } catch { #expect("\(error)".contains("metrics.port")) }
        do { _ = try parse(#"{"retention":{"days":1}}"#) } catch { #expect("\(error)".contains("retention.days")) }
        #expect(throws: ConfigurationError.self) { try parse(#"{"notify":{"command":["relative/prog"]}}"#) }
        #expect(throws: ConfigurationError.self) { try parse(#"{"notify":{"webhook_url":"ftp://x"}}"#) }
        #expect(throws: ConfigurationError.self) { try parse(#"{"metrics":{"listen":"localhost:http"}}"#) }
        let c = try parse(#"{"notify":{"webhook_url":"https://hooks.example/T000/secret-path?token=abc","not_scanned":true},"metrics":{"listen":"9464","textfile":"q.prom"},"retention":{"older_than_days":30,"quarantine_days":90}}"#)
        #expect(c.notify.channels == ["webhook"])
        #expect(c.notify.outcomes == [.threat, .notScanned])
        let address = try MetricsConfiguration.address(c.metrics.listen!)
        #expect(address.host == "127.0.0.1" && address.port == 9464)
        #expect(c.metrics.textfile == base + "/q.prom")
        #expect(c.retention.olderThanDays == 30 && c.retention.quarantineDays == 90)
        let shown = c.effectiveJSON()
        #expect(!shown.contains("secret-path") && !shown.contains("token=abc"))
        #expect(shown.contains("https://hooks.example/…"))
    }
}
