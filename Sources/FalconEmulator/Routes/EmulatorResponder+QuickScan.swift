/// Quick Scan volumes (fact sheet §5.1–5.3): ScanSamples, GetScans, QuerySubmissionsMixin0.
extension EmulatorResponder {
    /// Default page size of QuerySubmissionsMixin0 when `limit` is absent (undocumented).
    static let defaultQueryLimit = 100
    /// The swagger's maximum `limit` (§5.3).
    static let maxQueryLimit = 5000

    /// ScanSamples: `{"samples": [sha256...]}` → one volume id; spends one quota unit per sample.
    func scanSamples(_ exchange: inout Exchange) async throws -> Reply {
        state.withLock { $0.stats.scanSamplesCalls += 1 }
        try exchange.requireQuery(within: [])
        let body = try await exchange.jsonBody()
        guard case .object(let members) = body else {
            throw RequestRejection.violation("body must be an object {\"samples\": [\"<sha256>\", ...]}, got \(body.typeName)")
        }
        if let unknown = members.first(where: { $0.key != "samples" }) {
            throw RequestRejection.violation("unknown key '\(unknown.key)' in mlscannerapi.SamplesScanParameters (only samples)")
        }
        guard let list = body["samples"]?.arrayValue, !list.isEmpty else {
            throw RequestRejection.violation("samples is required: a non-empty array of sha256 strings")
        }
        var sha256s: [String] = []
        for (index, entry) in list.enumerated() {
            guard let text = entry.stringValue else {
                throw RequestRejection.violation("samples[\(index)] must be a string, got \(entry.typeName)")
            }
            guard isSHA256(text) else {
                throw RequestRejection.violation("samples[\(index)] '\(text)' is not a sha256 (64 hex digits)")
            }
            let sha256 = text.lowercased()
            if !sha256s.contains(sha256) { sha256s.append(sha256) }
        }

        return try state.withLock { state throws(RequestRejection) -> Reply in
            let configuration = state.configuration
            if let refused = state.refusedSample(among: sha256s, operation: .scanSamples) {
                throw .refusal(400, "sample \(refused) cannot be scanned")
            }
            let unknown = sha256s.filter { state.samples[$0] == nil }
            if !unknown.isEmpty, configuration.unknownSampleBehaviour == .reject {
                throw .refusal(400, "sample not found: \(unknown.joined(separator: ", ")); upload it with /samples/entities/samples/v3 first")
            }
            guard state.quotaUsed + sha256s.count <= configuration.quotaTotal else {
                return Reply.metaOnly(configuration.quotaExhaustedStatus, "quota exceeded", poweredBy: PoweredBy.scanner, quota: true)
            }
            let results = sha256s.map { sha256 -> ScannedSample in
                guard let sample = state.samples[sha256] else {
                    return ScannedSample(sha256: sha256, verdict: "unknown", error: "sample not found")
                }
                let outcome = sample.kind.outcome(configuration, acceptedType: sample.isAcceptedType)
                return ScannedSample(sha256: sha256, verdict: outcome.verdict, error: outcome.error)
            }
            let id = "\(configuration.cid)_\(Self.randomHex(bytes: 16))"
            state.scans[id] = ScanRecord(
                id: id, cid: configuration.cid, createdAt: exchange.now, createdAtSeconds: Int(exchange.now.rounded(.down)),
                sequence: state.nextScanSequence, samples: results
            )
            state.nextScanSequence += 1
            state.scanOrder.append(id)
            state.quotaUsed += sha256s.count
            state.stats.scansCreated += 1
            return Reply.resources([.string(id)], poweredBy: PoweredBy.scanner, quota: true)
        }
    }

    /// GetScans: `ids=a,b` and/or `ids=a&ids=b`; no ids → empty resources with the quota.
    func getScans(_ exchange: Exchange) throws -> Reply {
        state.withLock { $0.stats.getScansCalls += 1 }
        try exchange.requireQuery(within: ["ids"])
        var ids: [String] = []
        for value in exchange.queryValues("ids") {
            for piece in value.split(separator: ",") {
                let id = String(piece).trimmingSpaces
                guard !id.isEmpty else { continue }
                guard isScanID(id) else {
                    throw RequestRejection.violation("ids '\(id)' is not a scan id (<32 hex>_<32 hex>)")
                }
                if !ids.contains(id.lowercased()) { ids.append(id.lowercased()) }
            }
        }
        guard !ids.isEmpty else { return Reply.resources([], poweredBy: PoweredBy.scanner, quota: true) }

        return state.withLock { state -> Reply in
            let configuration = state.configuration
            var resources: [JSONValue] = []
            var unknown: [String] = []
            for id in ids {
                guard state.scans[id] != nil else {
                    unknown.append(id)
                    continue
                }
                let done = state.poll(scanID: id, now: exchange.now)
                guard let scan = state.scans[id] else { continue }
                if !done, configuration.emptyResourcesWhileInProgress { continue }
                let samples: [JSONValue] = done ? scan.samples.map(\.json) : scan.samples.map { ["sha256": .string($0.sha256)] }
                resources.append([
                    "id": .string(scan.id),
                    "cid": .string(scan.cid),
                    "status": .string(done ? "done" : configuration.inProgressStatus),
                    "created_timestamp": .string(Timestamp.format(epochSeconds: scan.createdAtSeconds)),
                    "samples": .array(samples),
                ])
            }
            var envelope = Envelope(poweredBy: PoweredBy.scanner, resources: resources, includesQuota: true)
            var status = 200
            if !unknown.isEmpty, configuration.unknownScanBehaviour != .emptyOK {
                envelope.errors = unknown.map { APIError(code: 404, message: "scan \($0) not found", id: $0) }
                // With not-found only a request that found nothing at all is a 404 (§5.7 leaves
                // this open); with not-found-if-any any unknown id makes it one.
                if unknown.count == ids.count || configuration.unknownScanBehaviour == .notFoundIfAny { status = 404 }
            }
            return Reply(status: status, body: .envelope(envelope))
        }
    }

    /// QuerySubmissionsMixin0: scan ids matching `filter`, sorted, paged (§5.3).
    func querySubmissions(_ exchange: Exchange) throws -> Reply {
        state.withLock { $0.stats.querySubmissionsCalls += 1 }
        try exchange.requireQuery(within: ["filter", "offset", "limit", "sort"])
        var filter: FQLFilter?
        if let text = try exchange.queryValue("filter"), !text.trimmingSpaces.isEmpty {
            do {
                let parsed = try FQLFilter.parse(text)
                try parsed.validate(now: exchange.now)
                filter = parsed
            } catch {
                let message = "invalid filter '\(text)': \(error.reason)"
                throw RequestRejection(status: 400, message: message, isViolation: error.isSpaceForPlus || error.isUnknownField)
            }
        }
        var offset = 0
        if let text = try exchange.queryValue("offset") {
            guard let value = Int(text), value >= 0 else {
                throw RequestRejection.violation("offset must be a non-negative integer (sent as a string), got '\(text)'")
            }
            offset = value
        }
        var limit = Self.defaultQueryLimit
        if let text = try exchange.queryValue("limit") {
            guard let value = Int(text) else { throw RequestRejection.violation("limit must be an integer, got '\(text)'") }
            guard (1...Self.maxQueryLimit).contains(value) else {
                throw RequestRejection.violation("limit \(value) is out of range: 1...\(Self.maxQueryLimit)")
            }
            limit = value
        }
        var ascending = false
        if let text = try exchange.queryValue("sort"), !text.isEmpty {
            switch text.lowercased() {
            case "asc", "created_timestamp.asc", "created_timestamp|asc": ascending = true
            case "desc", "created_timestamp.desc", "created_timestamp|desc": ascending = false
            default:
                throw RequestRejection.violation("sort must be asc or desc (or created_timestamp.asc|desc), got '\(text)'")
            }
        }

        return state.withLock { state -> Reply in
            var documents = state.documents(now: exchange.now)
            if let filter { documents = documents.filter { filter.matches($0, now: exchange.now) } }
            documents.sort { left, right in
                let leftKey = (left.createdAt, left.sequence)
                let rightKey = (right.createdAt, right.sequence)
                return ascending ? leftKey < rightKey : leftKey > rightKey
            }
            let page = documents.dropFirst(offset).prefix(limit).map { JSONValue.string($0.id) }
            return Reply.resources(
                Array(page), poweredBy: PoweredBy.scanner, quota: true,
                pagination: ["offset": .int(offset), "limit": .int(limit), "total": .int(documents.count)]
            )
        }
    }
}
