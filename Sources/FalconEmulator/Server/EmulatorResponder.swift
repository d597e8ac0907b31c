import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Serves every request: routing, fault injection, bearer auth, rate-limit headers, the
/// envelope, and the record of what was asked and answered.
struct EmulatorResponder: HTTPResponder {
    typealias Context = EmulatorRequestContext

    let state: Locked<EmulatorState>
    let logger: Logger

    /// Which `X-Ratelimit-*` numbers a response carries (§3.2).
    enum RateBucket {
        /// Calls with a valid token: ``EmulatorConfiguration/rateLimitPerMinute`` per CID (nil:
        /// the configured CID, for replies decided before the token was read).
        case authenticated(cid: String?)
        /// The OAuth2 endpoints: 300 per minute per IP.
        case oauth2
        /// Missing or bad tokens: 15 per minute per IP.
        case unauthenticated
    }

    static let oauth2Limit = 300
    static let unauthenticatedLimit = 15

    func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        let now = Date().timeIntervalSince1970
        let traceID = UUID().uuidString.lowercased()
        let path = request.uri.path
        let method = request.method.rawValue
        let rawQuery = request.uri.query
        let queryItems = URLEncoding.parse(rawQuery ?? "")
        let operations = FalconOperation.operations(onPath: path)
        let operation = operations.first { $0.method == method }

        var record = RecordedRequest(
            method: method,
            path: path,
            operation: operation,
            rawQuery: rawQuery ?? "",
            queryItems: queryItems,
            contentType: request.headers[.contentType],
            authorizationScheme: request.headers[.authorization].flatMap {
                $0.trimmingSpaces.split(separator: " ").first.map(String.init)
            },
            bodyFields: [],
            status: nil,
            fault: nil,
            traceID: traceID
        )

        let decision = state.withLock { state -> FaultDecision in
            state.stats.requests += 1
            return state.decideFaults(operation: operation, path: path, method: method)
        }
        if !decision.applied.isEmpty { record.fault = decision.applied.joined(separator: ",") }
        if decision.latencyMilliseconds > 0 {
            try? await Task.sleep(for: .milliseconds(decision.latencyMilliseconds))
        }

        var bucket = operation?.isOAuth2 == true ? RateBucket.oauth2 : .authenticated(cid: nil)
        var reply: Reply
        var loseResponse = false
        var violation: String?

        switch decision.fault {
        case .dropConnection:
            // The request has no effect: nothing is read, nothing is answered.
            context.channel.close(promise: nil)
            state.withLock { $0.record(record) }
            return Response(status: .internalServerError)
        case .rateLimit(let seconds):
            reply = Reply.metaOnly(429, "API rate limit exceeded", poweredBy: PoweredBy.gateway)
            reply.headers.append(("X-Ratelimit-Retryafter", String(Int(now.rounded(.down)) + seconds)))
            reply.headers.append(("X-Ratelimit-Remaining", "0"))
        case .serverError(let status):
            if let operation, Self.isQuickScan(operation) {
                // The swagger's 500 for Quick Scan is the mlscannerapi model: resources, meta
                // with quota, errors (§8: CrowdStrike's scanner reads resources on every reply).
                reply = Reply(status: status, body: .envelope(Envelope(
                    poweredBy: PoweredBy.scanner, errors: [APIError(code: status, message: Self.reasonPhrase(status))],
                    resources: [], includesQuota: true)))
            } else {
                reply = Reply.metaOnly(status, Self.reasonPhrase(status), poweredBy: PoweredBy.gateway)
            }
        case .htmlBadGateway:
            reply = Reply(status: 502, body: .html(Self.badGatewayPage))
        case .malformed(let shape):
            reply = Self.malformedReply(shape, traceID: traceID)
        case .lostResponse:
            loseResponse = true
            fallthrough
        default:
            if let operation {
                (reply, bucket, violation, record.bodyFields) = await serve(
                    operation, request: request, queryItems: queryItems, now: now
                )
            } else if operations.isEmpty {
                reply = Reply.metaOnly(404, "no such API: \(method) \(path)", poweredBy: PoweredBy.gateway)
                violation = "unknown path \(path)"
            } else {
                reply = Reply.metaOnly(405, "method \(method) not allowed on \(path)", poweredBy: PoweredBy.gateway)
                reply.headers.append(("Allow", operations.map(\.method).joined(separator: ", ")))
                violation = "method \(method) not allowed on \(path)"
            }
        }

        let elapsed = ContinuousClock.now - started
        let queryTime = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if let violation {
            logger.warning("wire contract violation", metadata: ["violation": "\(method) \(path): \(violation)"])
        }
        let response = state.withLock { state -> Response in
            if let violation { state.addViolation("\(method) \(path): \(violation)") }
            let response = Self.render(reply, bucket: bucket, traceID: traceID, queryTime: queryTime, now: now, state: &state)
            record.status = loseResponse ? nil : Int(response.status.code)
            state.record(record)
            return response
        }
        if loseResponse {
            // The operation happened; the client never learns it.
            context.channel.close(promise: nil)
        }
        return response
    }

    /// Authenticates (except OAuth2), counts the request against the rate limit and runs the
    /// operation's handler.
    private func serve(
        _ operation: FalconOperation, request: Request, queryItems: [QueryItem], now: Double
    ) async -> (Reply, RateBucket, String?, [String]) {
        var exchange = Exchange(operation: operation, request: request, queryItems: queryItems, now: now)
        var bucket = RateBucket.oauth2
        if !operation.isOAuth2 {
            guard let cid = authenticate(exchange) else {
                state.withLock { $0.stats.unauthorized += 1 }
                return (Reply.metaOnly(401, "access denied, invalid bearer token", poweredBy: PoweredBy.gateway), .unauthenticated, nil, [])
            }
            exchange.cid = cid
            bucket = .authenticated(cid: cid)
            let limited = state.withLock { state -> Reply? in
                let limit = state.configuration.rateLimitPerMinute
                var window = state.authenticatedWindows[cid] ?? SlidingWindow(length: state.configuration.rateLimitWindowSeconds)
                defer { state.authenticatedWindows[cid] = window }
                guard window.count(now: now) >= limit else {
                    window.add(now)
                    return nil
                }
                state.stats.rateLimited += 1
                var reply = Reply.metaOnly(429, "API rate limit exceeded", poweredBy: PoweredBy.gateway)
                let retry = window.nextRelease.map { Int($0.rounded(.up)) } ?? Int(now) + 1
                reply.headers.append(("X-Ratelimit-Retryafter", String(retry)))
                return reply
            }
            if let limited { return (limited, bucket, nil, []) }
        }
        do {
            let reply: Reply
            switch operation {
            case .oauth2AccessToken: reply = try await issueToken(&exchange)
            case .oauth2RevokeToken: reply = try await revokeToken(&exchange)
            case .uploadSampleV3: reply = try await uploadSample(&exchange)
            case .getSampleV3: reply = try getSample(exchange)
            case .deleteSampleV3: reply = try deleteSample(exchange)
            case .scanSamples: reply = try await scanSamples(&exchange)
            case .getScans: reply = try getScans(exchange)
            case .querySubmissionsMixin0: reply = try querySubmissions(exchange)
            case .getScansAggregates: reply = try await getScansAggregates(&exchange)
            case .uploadFileQuickScanPro: reply = try await uploadProFile(&exchange)
            case .launchScan: reply = try await launchProScans(&exchange)
            case .getScanResult: reply = try getProScanResults(exchange)
            case .deleteScanResult: reply = try deleteProScanResults(exchange)
            case .deleteFile: reply = try deleteProFiles(exchange)
            case .queryScanResults: reply = try queryProScanResults(exchange)
            }
            return (reply, bucket, nil, exchange.bodyFieldNames)
        } catch let rejection as RequestRejection {
            var reply = Reply.metaOnly(
                rejection.status, rejection.message, poweredBy: Self.poweredBy(operation), quota: Self.isQuickScan(operation)
            )
            // The swagger gives 400/404 the operation's own model (with `resources`), except for
            // OAuth2 and GetSampleV3, whose errors are msa.ReplyMetaOnly.
            // QuickScan Pro documents only msa.ReplyMetaOnly errors (quickscan-pro.md §1).
            if !operation.isOAuth2, operation != .getSampleV3, !operation.isQuickScanPro, case .envelope(var envelope) = reply.body {
                envelope.resources = []
                reply.body = .envelope(envelope)
            }
            return (reply, bucket, rejection.isViolation ? rejection.message : nil, exchange.bodyFieldNames)
        } catch {
            // The body stream failed: the client went away or sent a broken body.
            logger.debug("request body failed", metadata: ["error": "\(error)", "operation": "\(operation.rawValue)"])
            return (Reply.metaOnly(400, "could not read the request body: \(error)", poweredBy: Self.poweredBy(operation)),
                    bucket, nil, exchange.bodyFieldNames)
        }
    }

    /// Checks `Authorization: Bearer <token>` (scheme compared case-insensitively, §1.1) and
    /// returns the CID the token acts for, nil when it is missing, unknown or expired.
    private func authenticate(_ exchange: Exchange) -> String? {
        guard let authorization = exchange.authorization, authorization.scheme.lowercased() == "bearer",
              !authorization.credentials.isEmpty else { return nil }
        return state.withLock { state -> String? in
            guard let token = state.tokens[authorization.credentials] else { return nil }
            guard exchange.now < token.expiresAt else {
                state.tokens[authorization.credentials] = nil
                return nil
            }
            return token.cid
        }
    }

    static func isQuickScan(_ operation: FalconOperation) -> Bool {
        switch operation {
        case .scanSamples, .getScans, .querySubmissionsMixin0, .getScansAggregates: return true
        default: return false
        }
    }

    static func poweredBy(_ operation: FalconOperation) -> String {
        if operation.isOAuth2 { return PoweredBy.oauth2 }
        if operation.isQuickScanPro { return PoweredBy.quickScanPro }
        return isQuickScan(operation) ? PoweredBy.scanner : PoweredBy.samples
    }

    /// Turns a reply into a response with the headers every Falcon response carries (§3.1).
    /// A 200 reply with a broken body (fault `malformed`).
    static func malformedReply(_ shape: String, traceID: String) -> Reply {
        let meta = #""meta":{"query_time":0.001,"powered_by":"crowdstrike-api-gateway","trace_id":"\#(traceID)"}"#
        switch shape {
        case "truncated":
            return Reply(status: 200, body: .bytes(Array("{\(meta),\"errors\":[],\"resources\":[{\"id\":\"".utf8), contentType: "application/json"))
        case "wrong-shape":
            return Reply(status: 200, body: .bytes(Array("{\(meta),\"errors\":[],\"resources\":{\"unexpected\":true}}".utf8), contentType: "application/json"))
        case "no-resources":
            return Reply(status: 200, body: .bytes(Array("{\(meta),\"errors\":[]}".utf8), contentType: "application/json"))
        default:
            return Reply(status: 200, body: .html("<html><body><h1>Service maintenance</h1></body></html>"))
        }
    }

    private static func render(
        _ reply: Reply, bucket: RateBucket, traceID: String, queryTime: Double, now: Double, state: inout EmulatorState
    ) -> Response {
        var headers = HTTPFields()
        var bodyBytes: [UInt8]
        switch reply.body {
        case .html(let page):
            headers[.contentType] = "text/html"
            headers[.server] = "nginx"
            bodyBytes = Array(page.utf8)
            headers[.contentLength] = String(bodyBytes.count)
            return Response(status: .init(code: reply.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bodyBytes)))
        case .bytes(let bytes, let contentType):
            headers[.contentType] = contentType
            bodyBytes = bytes
        case .json(let json):
            headers[.contentType] = "application/json"
            bodyBytes = json.serializedBytes
        case .envelope(let envelope):
            headers[.contentType] = "application/json"
            var meta: [JSONMember] = [
                JSONMember(key: "query_time", value: .double(max(queryTime, 1e-6))),
                JSONMember(key: "powered_by", value: .string(envelope.poweredBy)),
                JSONMember(key: "trace_id", value: .string(traceID)),
            ]
            if envelope.includesQuota { meta.append(JSONMember(key: "quota", value: state.quota(now: now))) }
            if let pagination = envelope.pagination { meta.append(JSONMember(key: "pagination", value: pagination)) }
            let placement = state.configuration.proQuotaPlacement
            let proQuota = envelope.proQuotaCID.map { state.proQuota(cid: $0, now: now) }
            if let proQuota, placement != .topLevel { meta.append(JSONMember(key: "quota", value: proQuota)) }
            var members = [
                JSONMember(key: "meta", value: .object(meta)),
                JSONMember(key: "errors", value: .array(envelope.errors.map(\.json))),
            ]
            if let proQuota, placement != .meta { members.append(JSONMember(key: "quota", value: proQuota)) }
            if let resources = envelope.resources { members.append(JSONMember(key: "resources", value: .array(resources))) }
            bodyBytes = JSONValue.object(members).serializedBytes
        }
        headers[HTTPField.Name("X-Cs-Traceid")!] = traceID
        let (limit, remaining): (Int, Int)
        switch bucket {
        case .authenticated(let cid):
            let key = cid ?? state.configuration.cid
            limit = state.configuration.rateLimitPerMinute
            remaining = max(0, limit - (state.authenticatedWindows[key]?.count(now: now) ?? 0))
        case .oauth2:
            state.tokenWindow.add(now)
            limit = oauth2Limit
            remaining = max(0, limit - state.tokenWindow.count(now: now))
        case .unauthenticated:
            state.unauthenticatedWindow.add(now)
            limit = unauthenticatedLimit
            remaining = max(0, limit - state.unauthenticatedWindow.count(now: now))
        }
        headers[HTTPField.Name("X-Ratelimit-Limit")!] = String(limit)
        headers[HTTPField.Name("X-Ratelimit-Remaining")!] = String(remaining)
        for header in state.configuration.extraResponseHeaders + reply.headers {
            guard let name = HTTPField.Name(header.name) else { continue }
            headers[name] = header.value
        }
        headers[.contentLength] = String(bodyBytes.count)
        return Response(status: .init(code: reply.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bodyBytes)))
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 500: return "internal server error"
        case 502: return "bad gateway"
        case 503: return "service unavailable"
        case 504: return "gateway timeout"
        default: return "server error"
        }
    }

    /// What nginx sends when its upstream fails; clients must cope with a non-JSON 502.
    static let badGatewayPage = """
        <html>\r
        <head><title>502 Bad Gateway</title></head>\r
        <body>\r
        <center><h1>502 Bad Gateway</h1></center>\r
        <hr><center>nginx</center>\r
        </body>\r
        </html>\r

        """
}
