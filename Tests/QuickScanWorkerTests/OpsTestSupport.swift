import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// A webhook receiver on 127.0.0.1 for the notification tests: records every POST (also the
/// ones it fails on purpose) and answers as `behaviour` says for each request, by count.
final class WebhookReceiver: Sendable {
    enum Answer: Sendable { case ok, status(Int), stall(Duration) }

    struct Received: Sendable {
        var id: String
        var body: [String: String]
        var answered: Int
    }

    private let state = NIOLockedValueBox<(received: [Received], answers: [Answer])>(([], []))
    private let group = NIOLockedValueBox<(ServiceGroup?, Task<Void, Never>?)>((nil, nil))
    private(set) var port: Int {
        get { portBox.withLockedValue { $0 } }
        set { portBox.withLockedValue { $0 = newValue } }
    }
    private let portBox = NIOLockedValueBox(0)

    /// - Parameter answers: one per request in order; after the last, `ok`.
    init(answers: [Answer] = []) {
        state.withLockedValue { $0.answers = answers }
    }

    var received: [Received] { state.withLockedValue { $0.received } }
    var url: String { "http://127.0.0.1:\(port)/hook?token=receiver-secret-token" }

    /// Starts listening on `port` (0: an ephemeral one).
    func start(port: Int = 0) async throws {
        let router = Router()
        let state = state
        router.post("/hook") { request, context -> Response in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let object = (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] ?? [:]
            let body = object.compactMapValues { $0 is NSNull ? nil : "\($0)" }
            let answer: Answer = state.withLockedValue { s in
                let a = s.answers.isEmpty ? .ok : s.answers.removeFirst()
                let status: Int
                switch a {
                case .ok, .stall: status = 200
                case .status(let code): status = code
                }
                s.received.append(Received(id: request.headers[.init("X-Quickscan-Notification-Id")!] ?? "", body: body, answered: status))
                return a
            }
            switch answer {
            case .ok: return Response(status: .ok)
            case .status(let code): return Response(status: .init(code: code))
            case .stall(let duration):
                try? await Task.sleep(for: duration)
                return Response(status: .ok)
            }
        }
        var logger = Logger(label: "webhook-receiver")
        logger.logLevel = .critical
        let (events, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: nil),
                              onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task {
            try? await serviceGroup.run()
            continuation.finish()
        }
        group.withLockedValue { $0 = (serviceGroup, task) }
        for await bound in events {
            self.port = bound
            return
        }
        throw CancellationError()
    }

    func stop() async {
        let (serviceGroup, task) = group.withLockedValue { $0 }
        await serviceGroup?.triggerGracefulShutdown()
        await task?.value
        group.withLockedValue { $0 = (nil, nil) }
    }
}

/// Prometheus text exposition format, parsed into samples keyed by `name{labels}` (labels
/// sorted) — enough to check that a scrape is well formed and read its values.
enum PrometheusText {
    struct ParseError: Error, CustomStringConvertible {
        let line: String
        var description: String { "not a Prometheus sample line: \(line)" }
    }

    static func parse(_ text: String) throws -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("#") {
                guard line.hasPrefix("# TYPE ") || line.hasPrefix("# HELP ") else { throw ParseError(line: String(line)) }
                continue
            }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw ParseError(line: String(line))
            }
            var key = String(line[..<space])
            if let open = key.firstIndex(of: "{") {
                guard key.hasSuffix("}") else { throw ParseError(line: String(line)) }
                let name = key[..<open]
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }) else { throw ParseError(line: String(line)) }
                let inner = key[key.index(after: open)..<key.index(before: key.endIndex)]
                let labels = inner.split(separator: ",").map(String.init).sorted()
                for label in labels {
                    guard let eq = label.firstIndex(of: "="), label[label.index(after: eq)...].hasPrefix("\""), label.hasSuffix("\"") else {
                        throw ParseError(line: String(line))
                    }
                }
                key = "\(name){\(labels.joined(separator: ","))}"
            } else {
                guard key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }) else { throw ParseError(line: String(line)) }
            }
            samples[key] = value
        }
        return samples
    }
}

/// GET `url`'s body as text.
func httpGet(_ url: String) async throws -> (status: Int, contentType: String?, body: String) {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
    let body = try await response.body.collect(upTo: 16 << 20)
    return (Int(response.status.code), response.headers.first(name: "Content-Type"), String(buffer: body))
}
