import FalconEmulator
import Foundation
import SQLiteKit
import Testing
import TestSupport

/// SIGKILLs the real `quickscan run --once` between the verdict and the notification's
/// delivery (and between the delivery and its record): the next run delivers it, with the
/// same id.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct NotificationCrashTests {
    func writeConfig(_ ws: Workspace, webhook: String) throws -> String {
        try ws.dir.write("config.json", """
            {"inboxes":[{"path":"inbox"}],"settle_seconds":0,"database":"db.sqlite",
             "volume":{"max_samples":4,"max_wait_seconds":0},"scan":{"poll_interval_seconds":0.05},
             "disposition":{"clean":{"action":"move","to":"clean"},"threat":{"action":"move","to":"quarantine"},"not_scanned":{"action":"move","to":"failed"}},
             "notify":{"webhook_url":"\(webhook)","timeout_seconds":2,"backoff_seconds":0.05},
             "log":{"level":"error"}}
            """)
    }

    func run(_ config: String, _ baseURL: String, crashAt: String?) async throws -> Int32? {
        try await onDedicatedThread { try CrashTests.runWorker(config: config, baseURL: baseURL, killAfter: nil, crashAt: crashAt) }
    }

    @Test(arguments: ["notify-due", "notify-sent"])
    func aKillBetweenVerdictAndDeliveryLosesNoNotification(point: String) async throws {
        let receiver = WebhookReceiver()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        let ws = try Workspace()
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        try ws.put("fine.txt", Array("fine".utf8))
        let config = try writeConfig(ws, webhook: receiver.url)
        try await withEmulator({ $0.scanPollsUntilDone = 1 }) { emulator in
            let killed = try await run(config, emulator.baseURL, crashAt: point)
            #expect(killed == nil)  // SIGKILLed at the point
            let db = try SQLiteConnection(path: ws.database)
            let rows = try db.query("SELECT notification_id, delivered_at FROM outbox")
            #expect(rows.count == 1)
            #expect(rows.first?.double("delivered_at") == nil)
            let id = try #require(rows.first?.string("notification_id"))
            #expect(receiver.received.count == (point == "notify-sent" ? 1 : 0))

            let status = try await run(config, emulator.baseURL, crashAt: nil)
            #expect(status == 1)  // the threat is reported by the run after the kill
            let got = receiver.received
            #expect(got.count == (point == "notify-sent" ? 2 : 1))
            #expect(got.allSatisfy { $0.id == id })  // at least once, same id
            #expect(got.last?.body["outcome"] == "threat")
            #expect(try db.query("SELECT 1 FROM outbox WHERE delivered_at IS NULL").isEmpty)
        }
    }
}
