/// A fault spec string that cannot be read; `part` is the piece that is wrong.
public struct FaultSpecError: Error, CustomStringConvertible, Equatable {
    public var spec: String
    public var part: String
    public var reason: String

    public var description: String {
        "invalid fault spec \"\(spec)\": \"\(part)\": \(reason)"
    }
}

extension FaultRule {
    /// Reads a fault rule from its spec string.
    ///
    /// Syntax: `KIND[:KEY=VALUE[,KEY=VALUE]...]`
    ///
    /// Kinds:
    /// - `429` (or `rate-limit`): 429 with `X-Ratelimit-Retryafter`; `retry-after=SECONDS` (default 1).
    /// - `5xx` (or `server-error`, `500`, `502`, `503`, `504`): JSON 5xx; `status=CODE` (default 503,
    ///   or the code used as the kind).
    /// - `html502`: 502 with a `text/html` nginx page.
    /// - `drop`: close the connection without a response; the request has no effect.
    /// - `lost-response`: carry out the request, then close the connection without a response.
    /// - `latency`: delay the response; `ms=MILLISECONDS` (required).
    /// - `expire-tokens`: invalidate every token issued so far (this request gets the 401 too).
    /// - `refuse-sample`: ScanSamples refuses a volume holding `sha256=HEX` (required) with a 400
    ///   naming it (`op=LaunchScan` for QuickScan Pro); the request has no effect.
    ///
    /// Keys for every kind:
    /// - `op=OPERATION`: oauth2AccessToken, oauth2RevokeToken, UploadSampleV3, GetSampleV3,
    ///   DeleteSampleV3, ScanSamples, GetScans, QuerySubmissionsMixin0, GetScansAggregates.
    /// - `path=PREFIX`: request path prefix, e.g. `/scanner/`.
    /// - `method=METHOD`: GET, POST, DELETE, ...
    /// - `skip=N`: let the first N matching requests through.
    /// - `count=N`: fire at most N times.
    /// - `every=N`: fire on every N-th matching request.
    /// - `probability=P` (or `p=P`), 0...1, with `seed=S` for a repeatable sequence.
    ///
    /// Without `op` or a `/oauth2` path the rule never fires on the OAuth2 endpoints.
    /// Examples: `429:retry-after=2,count=3,op=ScanSamples`, `5xx:status=503,every=4`,
    /// `html502:count=2`, `drop:probability=0.1,seed=7`, `lost-response:op=ScanSamples,count=1`,
    /// `latency:ms=50`.
    public static func parse(_ spec: String) throws(FaultSpecError) -> FaultRule {
        func fail(_ part: String, _ reason: String) -> FaultSpecError {
            FaultSpecError(spec: spec, part: part, reason: reason)
        }
        let trimmed = spec.trimmingSpaces
        guard !trimmed.isEmpty else { throw fail(spec, "empty spec; expected KIND[:KEY=VALUE,...]") }
        let kindPart: String
        let parameterPart: String?
        if let colon = trimmed.firstIndex(of: ":") {
            kindPart = String(trimmed[..<colon]).trimmingSpaces
            parameterPart = String(trimmed[trimmed.index(after: colon)...])
        } else {
            kindPart = trimmed
            parameterPart = nil
        }

        var parameters: [(key: String, value: String, part: String)] = []
        if let parameterPart {
            for rawPart in parameterPart.split(separator: ",", omittingEmptySubsequences: false) {
                let part = String(rawPart).trimmingSpaces
                guard !part.isEmpty else { throw fail(String(rawPart), "empty parameter") }
                guard let equals = part.firstIndex(of: "=") else { throw fail(part, "expected KEY=VALUE") }
                let key = String(part[..<equals]).trimmingSpaces.lowercased()
                let value = String(part[part.index(after: equals)...]).trimmingSpaces
                guard !value.isEmpty else { throw fail(part, "missing value") }
                if parameters.contains(where: { $0.key == key }) { throw fail(part, "key given twice") }
                parameters.append((key, value, part))
            }
        }
        func take(_ keys: String...) -> (value: String, part: String)? {
            guard let index = parameters.firstIndex(where: { keys.contains($0.key) }) else { return nil }
            let found = parameters.remove(at: index)
            return (found.value, found.part)
        }
        func integer(_ found: (value: String, part: String)?, minimum: Int) throws(FaultSpecError) -> Int? {
            guard let found else { return nil }
            guard let value = Int(found.value), value >= minimum else {
                throw fail(found.part, "expected an integer ≥ \(minimum)")
            }
            return value
        }

        let kind: Kind
        switch kindPart.lowercased() {
        case "429", "rate-limit", "ratelimit":
            kind = .rateLimit(retryAfterSeconds: try integer(take("retry-after", "retryafter"), minimum: 0) ?? 1)
        case "5xx", "server-error", "500", "501", "502", "503", "504":
            let implied = Int(kindPart) ?? 503
            let status = try integer(take("status"), minimum: 500) ?? implied
            guard status <= 599 else { throw fail("status=\(status)", "expected a status in 500...599") }
            kind = .serverError(status: status)
        case "html502", "html-502":
            kind = .htmlBadGateway
        case "drop", "drop-connection":
            kind = .dropConnection
        case "lost-response", "lost":
            kind = .lostResponse
        case "latency", "delay":
            guard let milliseconds = try integer(take("ms"), minimum: 0) else {
                throw fail(kindPart, "latency needs ms=MILLISECONDS")
            }
            kind = .latency(milliseconds: milliseconds)
        case "expire-tokens", "expire":
            kind = .expireTokens
        case "refuse-sample", "refuse":
            guard let found = take("sha256") else { throw fail(kindPart, "refuse-sample needs sha256=HEX") }
            guard found.value.utf8.count == 64, found.value.utf8.allSatisfy(\.isHexDigit) else {
                throw fail(found.part, "expected a sha256 (64 hex digits)")
            }
            kind = .refuseSample(sha256: found.value.lowercased())
        case "malformed":
            let shape = take("shape")?.value ?? "html"
            guard FaultRule.malformedShapes.contains(shape) else {
                throw fail("shape=\(shape)", "expected one of \(FaultRule.malformedShapes.joined(separator: ", "))")
            }
            kind = .malformed(shape: shape)
        default:
            throw fail(kindPart, "unknown fault kind; expected 429, 5xx, html502, drop, lost-response, latency, expire-tokens, malformed or refuse-sample")
        }

        var rule = FaultRule(kind)
        if let found = take("op", "operation") {
            guard let operation = FalconOperation.named(found.value) else {
                let names = FalconOperation.allCases.map(\.rawValue).joined(separator: ", ")
                throw fail(found.part, "unknown operation; expected one of \(names)")
            }
            rule.operation = operation
        }
        if let found = take("path") {
            guard found.value.hasPrefix("/") else { throw fail(found.part, "a path prefix starts with /") }
            rule.pathPrefix = found.value
        }
        if let found = take("method") {
            guard found.value.allSatisfy(\.isLetter) else { throw fail(found.part, "expected an HTTP method") }
            rule.method = found.value.uppercased()
        }
        rule.skip = try integer(take("skip"), minimum: 0) ?? 0
        rule.count = try integer(take("count"), minimum: 0)
        rule.every = try integer(take("every"), minimum: 1)
        if let found = take("probability", "p") {
            guard let value = Double(found.value), (0...1).contains(value) else {
                throw fail(found.part, "expected a probability in 0...1")
            }
            rule.probability = value
        }
        if let found = take("seed") {
            guard let value = UInt64(found.value) else { throw fail(found.part, "expected a non-negative integer seed") }
            rule.seed = value
        }
        if case .refuseSample = kind, rule.operation == nil {
            rule.operation = .scanSamples
        }
        if let leftover = parameters.first {
            throw fail(leftover.part, "unknown or misplaced key for a \(kind.name) fault")
        }
        return rule
    }

    /// The canonical spec string; `FaultRule.parse(rule.description) == rule`.
    public var description: String {
        var parameters: [String] = []
        switch kind {
        case .rateLimit(let seconds): parameters.append("retry-after=\(seconds)")
        case .serverError(let status): parameters.append("status=\(status)")
        case .latency(let milliseconds): parameters.append("ms=\(milliseconds)")
        case .malformed(let shape): parameters.append("shape=\(shape)")
        case .refuseSample(let sha256): parameters.append("sha256=\(sha256)")
        case .htmlBadGateway, .dropConnection, .lostResponse, .expireTokens: break
        }
        if let operation { parameters.append("op=\(operation.rawValue)") }
        if let pathPrefix { parameters.append("path=\(pathPrefix)") }
        if let method { parameters.append("method=\(method)") }
        if skip != 0 { parameters.append("skip=\(skip)") }
        if let count { parameters.append("count=\(count)") }
        if let every { parameters.append("every=\(every)") }
        if let probability { parameters.append("probability=\(probability)") }
        if seed != 0 { parameters.append("seed=\(seed)") }
        return parameters.isEmpty ? kind.name : kind.name + ":" + parameters.joined(separator: ",")
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return String(slice)
    }
}
