import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat

/// The notifier: delivers the outbox — each threat (and, with `notify.not_scanned`, each file
/// not scanned) to a command and/or a webhook — at least once. Rows are written with the
/// verdict, so a crash loses none; a failed attempt waits `notify.backoff_seconds`, doubling.
/// Delivery runs beside the scanning, never in its way: `kick()` starts a pass in the
/// background when none is running.
actor Notifier {
    let context: StageContext
    let config: NotifyConfiguration
    let http: HTTPClient
    private var pass: Task<Void, Never>?

    init(context: StageContext, http: HTTPClient = .shared) {
        self.context = context
        self.config = context.config.notify
        self.http = http
    }

    var isEnabled: Bool { !config.channels.isEmpty }

    /// Starts a delivery pass unless one is running.
    func kick() {
        guard isEnabled, pass == nil else { return }
        pass = Task { [weak self] in
            await self?.deliverDue()
            await self?.passEnded()
        }
    }

    private func passEnded() { pass = nil }

    /// Waits for the running pass, then runs passes until nothing is due or `timeout` passed
    /// (`run --once` before it exits: what is left is delivered by the next run).
    func drain(timeout: Double) async {
        guard isEnabled else { return }
        let end = context.now() + timeout
        await pass?.value
        while context.now() < end, !Task.isCancelled {
            let delivered = await deliverDue()
            // A store error ends the wait: what is left stays in the outbox for the next run.
            guard let wait = try? await context.store.nextNotificationDue(now: context.now()) else { return }
            if delivered == 0 {
                guard context.now() + wait < end else { return }
                try? await Task.sleep(for: .milliseconds(Int(max(0.01, min(wait, 1)) * 1000)))  // cancelled: the loop ends
            }
        }
    }

    /// One pass over the due rows; returns how many were delivered.
    @discardableResult
    func deliverDue() async -> Int {
        let store = context.store
        let due: [PendingNotification]
        do {
            due = try await store.dueNotifications(now: context.now(), holdSeconds: config.holdSeconds)
        } catch {
            context.logger.warning("cannot read the notification outbox", metadata: ["error": "\(error)"])
            return 0
        }
        var delivered = 0
        for notice in due {
            if Task.isCancelled { break }
            CrashPoint.reach("notify-due")
            let result: Result<Void, NotifyFailure>
            switch notice.channel {
            case "command": result = await runCommand(notice)
            default: result = await post(notice)
            }
            if case .success = result { CrashPoint.reach("notify-sent") }
            do {
                switch result {
                case .success:
                    try await store.markNotificationDelivered(notice.row)
                    context.metrics.notification(channel: notice.channel, delivered: true)
                    context.logger.info("notification delivered", metadata: [
                        "notification.id": "\(notice.id)", "notification.channel": "\(notice.channel)", "file.path": "\(notice.path)",
                    ])
                    delivered += 1
                case .failure(let failure):
                    let wait = config.backoff(afterAttempts: notice.attempts + 1)
                    try await store.markNotificationFailed(notice.row, error: failure.message, retryAt: context.now() + wait)
                    context.metrics.notification(channel: notice.channel, delivered: false)
                    context.logger.warning("notification not delivered; retried later", metadata: [
                        "notification.id": "\(notice.id)", "notification.channel": "\(notice.channel)", "error": "\(failure.message)",
                        "retry.attempt": "\(notice.attempts + 1)", "retry.in_seconds": "\(wait)",
                    ])
                }
            } catch {
                context.logger.warning("cannot record a notification attempt", metadata: ["error": "\(error)"])
            }
        }
        return delivered
    }

    // MARK: the notice

    /// The webhook's JSON document (README shows one).
    static func document(_ n: PendingNotification, host: String) -> [String: Any] {
        [
            "id": n.id, "event": n.outcome.rawValue, "path": n.path, "sha256": n.sha256 ?? NSNull(),
            "verdict": n.verdict ?? NSNull(), "outcome": n.outcome.rawValue, "reason": n.reason ?? NSNull(),
            "error": n.error ?? NSNull(), "scan_id": n.scanID ?? NSNull(), "destination": n.destination ?? NSNull(),
            "decided_at": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: n.decidedAt)),
            "file_id": n.fileID, "host": host,
        ]
    }

    /// The command's environment: the notice, and PATH/LANG/TZ only (never the worker's
    /// credentials).
    static func environment(_ n: PendingNotification) -> [String: String] {
        var env: [String: String] = [
            "QUICKSCAN_NOTIFICATION_ID": n.id, "QUICKSCAN_PATH": n.path, "QUICKSCAN_SHA256": n.sha256 ?? "",
            "QUICKSCAN_VERDICT": n.verdict ?? "", "QUICKSCAN_OUTCOME": n.outcome.rawValue, "QUICKSCAN_REASON": n.reason ?? "",
            "QUICKSCAN_DESTINATION": n.destination ?? "", "QUICKSCAN_SCAN_ID": n.scanID ?? "",
            "QUICKSCAN_DECIDED_AT": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: n.decidedAt)),
        ]
        let parent = ProcessInfo.processInfo.environment
        for key in ["PATH", "LANG", "TZ"] { if let v = parent[key] { env[key] = v } }
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        return env
    }

    // MARK: channels

    private func post(_ notice: PendingNotification) async -> Result<Void, NotifyFailure> {
        guard let url = config.webhookURL else { return .failure(NotifyFailure("no webhook configured")) }
        let shown = config.webhookShown ?? "(webhook)"
        do {
            let body = try JSONSerialization.data(withJSONObject: Self.document(notice, host: ProcessInfo.processInfo.hostName),
                                                  options: [.sortedKeys, .withoutEscapingSlashes])
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: context.config.userAgent)
            request.headers.add(name: "Idempotency-Key", value: notice.id)
            request.headers.add(name: "X-Quickscan-Notification-Id", value: notice.id)
            request.body = .bytes(ByteBuffer(data: body))
            let response = try await http.execute(request, timeout: .milliseconds(Int64(config.timeoutSeconds * 1000)))
            _ = try? await response.body.collect(upTo: 64 * 1024)  // drained only to free the connection; the status decided
            guard (200..<300).contains(response.status.code) else {
                return .failure(NotifyFailure("webhook \(shown) answered \(response.status.code)"))
            }
            return .success(())
        } catch {
            // AsyncHTTPClient's errors name no URL; ours names scheme and host only.
            return .failure(NotifyFailure("webhook \(shown) failed: \(Self.describe(error))"))
        }
    }

    private func runCommand(_ notice: PendingNotification) async -> Result<Void, NotifyFailure> {
        guard let command = config.command, let program = command.first else { return .failure(NotifyFailure("no command configured")) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = Array(command.dropFirst())
        process.environment = Self.environment(notice)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.standardError
        let exited = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { p in
            exited.continuation.yield(p.terminationStatus)
            exited.continuation.finish()
        }
        do {
            try process.run()
        } catch {
            return .failure(NotifyFailure("command \(program) could not start: \(error.localizedDescription)"))
        }
        let timeout = config.timeoutSeconds
        let killer = Task {
            try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        var status: Int32 = -1
        for await code in exited.stream { status = code }
        killer.cancel()
        if process.terminationReason == .uncaughtSignal {
            return .failure(NotifyFailure("command \(program) killed by signal \(status)\(status == SIGKILL ? " (timeout \(timeout.clean) s)" : "")"))
        }
        return status == 0 ? .success(()) : .failure(NotifyFailure("command \(program) exited \(status)"))
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError { return "\(e)" }
        return String(describing: type(of: error)) + ": \(error)"
    }
}

/// Why one delivery attempt failed (shown in logs and `status`; never a secret).
struct NotifyFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
