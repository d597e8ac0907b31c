import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The Falcon API over HTTP: OAuth2, retries, the shared rate-limit cooldown, Sample Uploads v3
/// and the four Quick Scan operations.
///
/// Create one per process, call `shutdown()` when done (it revokes the token).
public final class HTTPFalconClient: Sendable {
    public let configuration: FalconClientConfiguration
    public let rateLimit: RateLimitGate
    /// Concurrency and pacing of every authenticated request (one per client; a process makes
    /// one client per CID, so one limiter per CID).
    public let limiter: RequestLimiter
    let http: HTTPClient
    let clock: any FalconClock
    let logger: Logger
    let tokens: TokenStore
    let observer: (any FalconCallObserver)?

    /// - Parameters:
    ///   - rateLimitCooldownUntil: a cooldown (epoch seconds) remembered from an earlier run.
    ///   - limiter: a limiter shared with other clients of the same CID (default: its own).
    ///   - observer: told of every exchange, retry and 429 (metrics).
    public init(
        configuration: FalconClientConfiguration, clock: any FalconClock = SystemFalconClock(),
        logger: Logger = Logger(label: "falcon-client"), httpClient: HTTPClient? = nil,
        rateLimitCooldownUntil: Double? = nil, limiter: RequestLimiter? = nil, observer: (any FalconCallObserver)? = nil
    ) throws(FalconError) {
        try configuration.validate()
        self.configuration = configuration
        self.observer = observer
        self.clock = clock
        self.logger = logger
        if let httpClient {
            self.http = httpClient
        } else if configuration.verifyTLSCertificates {
            self.http = Self.sharedHTTPClient
        } else {
            logger.warning("TLS certificate verification is OFF: any server can impersonate the Falcon API; use only with a lab proxy")
            self.http = Self.unverifiedHTTPClient
        }
        self.rateLimit = RateLimitGate(clock: clock, cooldownUntil: rateLimitCooldownUntil)
        self.limiter = limiter ?? RequestLimiter(clock: clock, ceiling: configuration.maxConcurrentRequests, window: configuration.rateLimitWindow)
        self.tokens = TokenStore(baseURL: configuration.initialBaseURL)
    }

    /// The base URL requests go to now (after any region discovery).
    public var currentBaseURL: String {
        get async { await tokens.baseURL }
    }

    /// One HTTP client for the process, like `HTTPClient.shared` but with our settings: it is
    /// never shut down, so a client that is dropped without `shutdown()` cannot crash the
    /// process (AsyncHTTPClient traps when an unshut client is deinitialised).
    static let sharedHTTPClient = makeHTTPClient(verifyingCertificates: true)
    /// The same without certificate verification (`--insecure-skip-tls-verify`).
    static let unverifiedHTTPClient = makeHTTPClient(verifyingCertificates: false)

    static func makeHTTPClient(verifyingCertificates: Bool) -> HTTPClient {
        var config = HTTPClient.Configuration()
        if !verifyingCertificates {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            config.tlsConfiguration = tls
        }
        config.redirectConfiguration = .disallow
        config.timeout = .init(connect: .seconds(15))
        config.httpVersion = .http1Only
        // Our retry policy decides about retries; the pool would otherwise keep retrying a
        // refused connection until the request deadline.
        config.connectionPool.retryConnectionEstablishment = false
        // One connection per request in flight: the limiter, not the pool, bounds concurrency.
        config.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    /// Revokes the token (best effort).
    public func shutdown() async {
        if let token = await tokens.take() {
            do {
                try await revoke(token: token.value)
            } catch {
                logger.debug("token revoke failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

// MARK: - Requests

/// How a request authenticates.
enum FalconAuth: Sendable {
    case none
    case bearer
    case basic
}

/// One API call, rebuilt for every attempt.
struct FalconRequest: Sendable {
    var operation: String
    var method: HTTPMethod
    var path: String
    var query: [(String, String)] = []
    var auth: FalconAuth = .bearer
    /// Safe to repeat after an answer was lost (reads, uploads by content, deletes).
    var idempotent: Bool
    var contentType: String?
    /// Error statuses whose well-formed JSON reply is returned for the caller to decode instead
    /// of thrown (GetScans' 404 still lists the scans it found, reference §5.2).
    var returnedStatuses: Set<Int> = []
    var body: @Sendable () throws(FalconError) -> HTTPClientRequest.Body? = { nil }

    static func json<T: Encodable>(_ value: T) -> @Sendable () throws(FalconError) -> HTTPClientRequest.Body? {
        let data = (try? JSONEncoder.falcon.encode(value)) ?? Data("{}".utf8)
        return { .bytes(ByteBuffer(bytes: data)) }
    }

    static func form(_ items: [(String, String)]) -> @Sendable () throws(FalconError) -> HTTPClientRequest.Body? {
        let text = encodeQuery(items)
        return { .bytes(ByteBuffer(string: text)) }
    }
}

/// A reply read in full.
struct RawReply: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    var traceID: String? { headers.first(name: "X-Cs-Traceid") }

    /// The body parses as JSON (a 2xx maintenance page or a truncated body does not).
    ///
    /// Checked by decoding `WellFormedJSON`, which takes nothing from the document:
    /// `JSONDecoder` scans all of it first (and refuses what follows the top-level value), but
    /// builds no objects. `JSONSerialization` built the whole tree instead, several megabytes
    /// for a GetScans reply of 1,000 samples, only to throw it away (found with heaptrack in
    /// the watch-mode soak). A decoding error of any kind means the body is not well-formed:
    /// this type cannot fail for any other reason.
    var isWellFormedJSON: Bool {
        guard isJSON else { return false }
        do {
            _ = try JSONDecoder().decode(WellFormedJSON.self, from: Data(body))
            return true
        } catch {
            return false
        }
    }

    var isJSON: Bool {
        let type = headers.first(name: "Content-Type")?.lowercased() ?? ""
        if type.contains("json") { return true }
        let first = body.first { !($0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09) }
        return type.isEmpty && (first == UInt8(ascii: "{") || first == UInt8(ascii: "["))
    }
}

/// Any JSON value, ignored: decoding it only proves the document is well-formed.
struct WellFormedJSON: Decodable {
    init(from decoder: any Decoder) throws {}
}

extension JSONEncoder {
    static let falcon: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()
}

extension HTTPFalconClient {
    static let maxResponseBytes = 64 * 1024 * 1024

    /// Sends `request` with the retry policy; returns the first non-retryable reply.
    ///
    /// 2xx and non-retryable statuses are returned to the caller to decode; 401 (once, after
    /// re-authenticating), 429, 5xx, non-JSON error pages and transport errors are retried
    /// here as the policy allows. A non-idempotent request is never repeated once it may have
    /// reached the server (a 429 or a 401 proves it did not take effect).
    func send(_ request: FalconRequest) async throws(FalconError) -> RawReply {
        let policy = configuration.retry
        let started = clock.now().timeIntervalSince1970
        var attempt = 0
        var reauthentications = 0
        var staleTokens = 0

        func wait(_ seconds: Double, reason: FalconError) async throws(FalconError) {
            let elapsed = clock.now().timeIntervalSince1970 - started
            if elapsed + seconds > policy.deadline {
                throw reason
            }
            observer?.retrying(operation: request.operation)
            if seconds > 0 {
                logger.debug("waiting before retry", metadata: ["falcon.operation": "\(request.operation)", "wait_seconds": "\(seconds)", "reason": "\(reason.message)"])
                do { try await clock.sleep(for: .seconds(seconds)) } catch {
                    throw FalconError(kind: .transport, message: "cancelled while waiting to retry", operation: request.operation)
                }
            }
        }

        /// A reply that may come after the work was done (5xx, error page, unreadable 200):
        /// repeated after a backoff only when the call is idempotent and attempts remain.
        func backOffOrThrow(_ reason: FalconError) async throws(FalconError) {
            var failure = reason
            failure.isRetryable = true
            if !request.idempotent {
                failure.mayHaveTakenEffect = true
                throw failure
            }
            guard attempt < policy.maxAttempts else { throw failure }
            try await wait(policy.backoff(afterAttempt: attempt, random: Double.random(in: 0..<1)), reason: failure)
        }

        while true {
            attempt += 1
            // The shared cooldown after a 429, and the slowdown when few requests remain.
            let gateDelay = await rateLimit.delayBeforeNextRequest()
            if gateDelay > 0 {
                let until = clock.now().timeIntervalSince1970 + gateDelay
                try await wait(gateDelay, reason: FalconError(
                    kind: .rateLimited, message: "rate limited by the API: retry after \(Self.formatEpoch(until))",
                    operation: request.operation, status: 429, isRetryable: true, retryAfter: until))
            }
            var token: String?
            if request.auth == .bearer {
                token = try await bearerToken()
            }
            // Authenticated calls share the CID's window (token calls have their own limit, and
            // must not wait behind calls that wait for the token).
            let permit = request.auth == .bearer
                ? try await acquirePermit(request.operation, notAfter: started + policy.deadline) : nil
            let reply: RawReply
            let sentAt = ContinuousClock.now
            do {
                reply = try await execute(request, token: token)
                observer?.exchanged(operation: request.operation, status: reply.status, seconds: Self.seconds(since: sentAt))
            } catch let failure {
                if let permit { await limiter.complete(permit, failure.kind == .transport ? .noReply : .notSent) }
                observer?.exchanged(operation: request.operation, status: nil, seconds: Self.seconds(since: sentAt))
                let notSent = failure.kind == .transport && !failure.mayHaveTakenEffect
                let canRepeat = failure.isRetryable && (request.idempotent || notSent)
                var final = failure
                if !request.idempotent && !notSent && failure.kind == .transport { final.mayHaveTakenEffect = true }
                guard canRepeat, attempt < policy.maxAttempts else { throw final }
                try await wait(policy.backoff(afterAttempt: attempt, random: Double.random(in: 0..<1)), reason: final)
                continue
            }
            let limit = reply.headers.first(name: "X-Ratelimit-Limit").flatMap { Int($0) }
            let remaining = reply.headers.first(name: "X-Ratelimit-Remaining").flatMap { Int($0) }
            if let permit {
                await limiter.complete(permit, .reply(status: reply.status, limit: limit, remaining: remaining))
                if reply.status != 401 { await rateLimit.observe(limit: limit, remaining: remaining) }
            }
            warnAboutDeprecation(reply.headers, operation: request.operation)
            logger.debug("falcon reply", metadata: [
                "falcon.operation": "\(request.operation)", "http.status": "\(reply.status)",
                "falcon.trace_id": "\(reply.traceID ?? "-")", "attempt": "\(attempt)",
            ])

            switch reply.status {
            case 200..<300 where reply.isWellFormedJSON:
                return reply
            case _ where request.returnedStatuses.contains(reply.status) && reply.isWellFormedJSON:
                return reply
            case 200..<300:
                // A maintenance page or a body cut short: handled like an error page.
                try await backOffOrThrow(FalconError(
                    kind: .decoding, message: "unreadable \(reply.status) reply (\(reply.isJSON ? "truncated or invalid JSON" : "not JSON"))",
                    operation: request.operation, status: reply.status, traceID: reply.traceID))
                continue
            case 401 where request.auth == .bearer && reauthentications < 3 && staleTokens < 10:
                // An expired or revoked token: re-authenticate and repeat (reference §1.4). A
                // token a concurrent call already replaced costs no re-authentication of ours
                // (bounded all the same), so many calls in flight survive one expiry.
                attempt -= 1
                if let token, await tokens.invalidate(token) {
                    reauthentications += 1
                } else {
                    staleTokens += 1
                }
                continue
            case 429:
                observer?.rateLimited(operation: request.operation)
                let now = clock.now().timeIntervalSince1970
                let until = reply.headers.first(name: "X-Ratelimit-Retryafter").flatMap(parseRetryAfter)
                    .map { max($0, now + 1) } ?? now + policy.defaultRateLimitWait
                await rateLimit.coolDown(until: until)
                let failure = error(for: reply, operation: request.operation, kind: .rateLimited, retryAfter: until)
                // Past the deadline or the attempts: fail now, with the API's trace id, so the
                // caller can defer the work instead of waiting.
                guard attempt < policy.maxAttempts, until - started <= policy.deadline else { throw failure }
                continue  // the gate waits at the top of the loop, bounded by the deadline
            case 500..<600, _ where !reply.isJSON && reply.status >= 400:
                try await backOffOrThrow(error(for: reply, operation: request.operation, kind: .http))
                continue
            default:
                throw error(for: reply, operation: request.operation, kind: request.auth == .none && request.path == "/oauth2/token" ? .authentication : .http)
            }
        }
    }

    /// A limiter permit; a wait past the call's deadline is a rate-limit error the caller can
    /// defer on, a cancelled wait a transport error (nothing was sent).
    private func acquirePermit(_ operation: String, notAfter: Double) async throws(FalconError) -> RequestLimiter.Permit {
        do {
            return try await limiter.acquire(operation: operation, notAfter: notAfter)
        } catch let error as FalconError {
            throw error
        } catch {
            throw FalconError(kind: .transport, message: "cancelled while waiting for the rate-limit window", operation: operation)
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Headers that announce an API's retirement (PSFalcon warns on any `X-Api-Deprecation*`,
    /// reference §3.1); each distinct header and value is logged once per process.
    static let deprecationNoticesSeen = NIOLockedValueBox<Set<String>>([])

    /// Logs a warning for each `X-Api-Deprecation*` header not seen before in this process.
    func warnAboutDeprecation(_ headers: HTTPHeaders, operation: String) {
        for header in headers where header.name.lowercased().hasPrefix("x-api-deprecation") {
            let notice = header.name.lowercased() + ": " + header.value
            let isNew = Self.deprecationNoticesSeen.withLockedValue { $0.insert(notice).inserted }
            guard isNew else { continue }
            logger.warning("the Falcon API announces a deprecation", metadata: [
                "falcon.operation": "\(operation)", "http.header": "\(header.name)", "http.header_value": "\(header.value)",
            ])
        }
    }

    /// One HTTP exchange; transport failures become `FalconError(.transport)`.
    private func execute(_ request: FalconRequest, token: String?) async throws(FalconError) -> RawReply {
        let base = await tokens.baseURL
        var url = base + request.path
        if !request.query.isEmpty { url += "?" + encodeQuery(request.query) }
        var http = HTTPClientRequest(url: url)
        http.method = request.method
        http.headers.add(name: "User-Agent", value: configuration.userAgent)
        http.headers.add(name: "Accept", value: "application/json")
        switch request.auth {
        case .none: break
        case .bearer: if let token { http.headers.add(name: "Authorization", value: "Bearer \(token)") }
        case .basic:
            let pair = "\(configuration.credentials.clientID):\(configuration.credentials.clientSecret)"
            http.headers.add(name: "Authorization", value: "Basic " + Data(pair.utf8).base64EncodedString())
        }
        if let contentType = request.contentType { http.headers.add(name: "Content-Type", value: contentType) }
        if let body = try request.body() { http.body = body }

        var sent = false
        do {
            let response = try await self.http.execute(http, timeout: .milliseconds(Int64(configuration.requestTimeout * 1000)), logger: nil)
            sent = true
            let body = try await response.body.collect(upTo: Self.maxResponseBytes)
            return RawReply(status: Int(response.status.code), headers: response.headers, body: Array(buffer: body))
        } catch let error as FalconError {
            throw error
        } catch {
            let notSent = !sent && Self.isConnectFailure(error)
            throw FalconError(
                kind: .transport,
                message: "cannot reach \(base): \(Self.describeTransport(error))",
                operation: request.operation, isRetryable: true, mayHaveTakenEffect: !notSent)
        }
    }

    /// True when the connection was never made, so the request cannot have reached the server.
    static func isConnectFailure(_ error: any Error) -> Bool {
        if let e = error as? HTTPClientError, e == .connectTimeout { return true }
        if error is NIOConnectionError { return true }
        if let e = error as? IOError, [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, ECONNRESET].contains(e.errnoCode) {
            return e.errnoCode != ECONNRESET
        }
        let text = String(describing: error)
        return text.contains("connectTimeout") || text.contains("Connection refused") || text.contains("NIOConnectionError")
    }

    static func describeTransport(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .remoteConnectionClosed: return "the connection was closed before the reply arrived"
            case .readTimeout, .deadlineExceeded: return "no reply within the request timeout"
            case .connectTimeout: return "connect timed out"
            default: return "\(e)"
            }
        }
        if error is NIOConnectionError { return "connection refused or host unreachable" }
        return "\(error)"
    }

    /// A `FalconError` from an error reply: status, the API's `errors[]` and trace id.
    func error(for reply: RawReply, operation: String, kind: FalconError.Kind, retryAfter: Double? = nil) -> FalconError {
        var apiErrors: [FalconAPIErrorItem] = []
        var trace = reply.traceID
        if reply.isJSON, let envelope = try? JSONDecoder().decode(FalconEnvelope<JSONValue>.self, from: Data(reply.body)) {
            apiErrors = envelope.errors
            trace = trace ?? envelope.meta.traceID
        }
        var message: String
        if let first = apiErrors.first?.message, !first.isEmpty {
            message = apiErrors.map(\.message).joined(separator: "; ")
            if apiErrors.count == 1 { message = first }
        } else if !reply.isJSON {
            let text = String(decoding: reply.body.prefix(200), as: UTF8.self)
            let title = text.range(of: "<title>").flatMap { start in
                text.range(of: "</title>", range: start.upperBound..<text.endIndex).map { String(text[start.upperBound..<$0.lowerBound]) }
            }
            message = "non-JSON error page" + (title.map { ": \($0)" } ?? "")
        } else {
            message = HTTPResponseStatus(statusCode: reply.status).reasonPhrase
        }
        if kind == .rateLimited, let retryAfter {
            message += " (retry after \(Self.formatEpoch(retryAfter)))"
        }
        return FalconError(kind: kind, message: message, operation: operation, status: reply.status, apiErrors: apiErrors, traceID: trace, retryAfter: retryAfter)
    }

    static func formatEpoch(_ seconds: Double) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date(timeIntervalSince1970: seconds.rounded(.up)))
    }

    /// Decodes a 2xx JSON reply's envelope.
    func decode<Resource: Decodable & Sendable>(_ reply: RawReply, as _: Resource.Type, operation: String) throws(FalconError) -> FalconResponse<Resource> {
        do {
            let envelope = try JSONDecoder().decode(FalconEnvelope<Resource>.self, from: Data(reply.body))
            var meta = envelope.meta
            // QuickScan Pro may carry the quota at the top level instead (quickscan-pro.md §3).
            if meta.quota == nil { meta.quota = envelope.quota }
            return FalconResponse(resources: envelope.resources, meta: meta, errors: envelope.errors,
                                  status: reply.status, traceID: reply.traceID ?? envelope.meta.traceID, rawBody: reply.body)
        } catch {
            throw FalconError(kind: .decoding, message: "unreadable reply: \(error)", operation: operation,
                              status: reply.status, traceID: reply.traceID)
        }
    }
}
