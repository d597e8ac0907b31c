import Hummingbird

/// QuickScan Pro (quickscan-pro.md §1-§5): upload (optionally scanning), LaunchScan,
/// GetScanResult, QueryScanResults, DeleteFile and DeleteScanResult. Files and scans belong to
/// the CID of the token that created them.
extension EmulatorResponder {
    /// Parts of the multipart upload (§2.1).
    static let proUploadParts: Set<String> = ["file", "scan", "password"]
    /// Query parameters of the upload: `file_name` is documented for octet-stream only, but
    /// FalconPy's keyword mapper puts `scan`, `file_name` and `password` in the query string in
    /// multipart mode too (§2.1), so they are accepted in both modes.
    static let proUploadQuery: Set<String> = ["file_name", "scan", "password"]
    /// The swagger default of QueryScanResults' `limit` (§1).
    static let proDefaultQueryLimit = 50

    /// UploadFileQuickScanPro: streams the file (multipart `file`, or octet-stream) into the
    /// CID's store; with `scan=true` also starts its scan (`scan_id` in the resource).
    func uploadProFile(_ exchange: inout Exchange) async throws -> Reply {
        let mediaType = try exchange.requireContentType(["multipart/form-data", "application/octet-stream"])
        try exchange.requireQuery(within: Self.proUploadQuery)
        let maxBytes = state.withLock { $0.configuration.maxUploadBytes }
        let isMultipart = mediaType.essence == "multipart/form-data"
        let tooLarge = RequestRejection.refusal(400, "file too large: the maximum file size is \(maxBytes) bytes (\(Self.describeBytes(maxBytes)))")
        if let declared = exchange.request.headers[.contentLength].flatMap(Int.init),
           declared > maxBytes + (isMultipart ? Self.maxFieldBytes * 4 : 0) {
            throw tooLarge
        }
        var sink = SampleSink(retainLimit: 0)
        var fileName = try exchange.queryValue("file_name")
        var scanText = try exchange.queryValue("scan")

        if isMultipart {
            guard let boundary = mediaType.parameters["boundary"], !boundary.isEmpty else {
                throw RequestRejection.violation("multipart/form-data Content-Type has no boundary parameter")
            }
            var parser = MultipartParser(boundary: boundary)
            var current: String?
            var value: [UInt8] = []
            var sawFile = false
            var names: [String] = []
            func handle(_ event: MultipartParser.Event) throws {
                switch event {
                case .partBegin(let headers):
                    guard let name = headers.name else {
                        throw RequestRejection.violation("multipart part without a Content-Disposition name")
                    }
                    names.append(name)
                    guard Self.proUploadParts.contains(name) else {
                        throw RequestRejection.violation("unknown multipart part '\(name)' for UploadFileQuickScanPro (expected file, scan, password)")
                    }
                    if name == "file" {
                        guard !sawFile else { throw RequestRejection.violation("more than one 'file' part") }
                        sawFile = true
                        if let name = headers.fileName, !name.isEmpty { fileName = name }
                    }
                    current = name
                    value = []
                case .partData(let bytes):
                    if current == "file" {
                        sink.append(bytes)
                        guard sink.size <= maxBytes else { throw tooLarge }
                    } else {
                        value.append(contentsOf: bytes)
                        guard value.count <= Self.maxFieldBytes else {
                            throw RequestRejection.violation("multipart field '\(current ?? "")' longer than \(Self.maxFieldBytes) bytes")
                        }
                    }
                case .partEnd:
                    if current == "scan" { scanText = String(decoding: value, as: UTF8.self) }
                    current = nil
                }
            }
            do {
                for try await buffer in exchange.request.body {
                    try buffer.withUnsafeReadableBytes { bytes in try parser.feed(bytes, handle) }
                }
                try parser.finish()
            } catch let error as MultipartError {
                exchange.bodyFieldNames = names
                throw RequestRejection.violation(error.description)
            } catch {
                exchange.bodyFieldNames = names
                throw error
            }
            exchange.bodyFieldNames = names
            guard sawFile else { throw RequestRejection.violation("multipart body has no 'file' part (required)") }
        } else {
            for try await buffer in exchange.request.body {
                buffer.withUnsafeReadableBytes { sink.append($0) }
                guard sink.size <= maxBytes else { throw tooLarge }
            }
        }
        var scan = false
        if let scanText {
            switch scanText.lowercased() {
            case "true", "1": scan = true
            case "false", "0", "": scan = false
            default: throw RequestRejection.violation("scan must be true or false, got '\(scanText)'")
            }
        }
        let result = sink.finish()
        let cid = exchange.cid
        let now = exchange.now
        let file = ProFileRecord(
            sha256: result.sha256, cid: cid, fileName: fileName ?? "UploadedFile", size: result.size, kind: result.kind,
            firstBytes: Array(result.head.prefix(16)))
        return state.withLock { state -> Reply in
            state.proFiles[EmulatorState.proFileKey(cid: cid, sha256: file.sha256)] = file
            state.stats.uploads += 1
            var resource: [JSONMember] = [JSONMember(key: "sha256", value: .string(file.sha256))]
            if scan {
                guard state.proQuotaUsed < state.configuration.quotaTotal else {
                    return Reply.metaOnly(state.configuration.quotaExhaustedStatus, "quota exceeded", poweredBy: PoweredBy.quickScanPro)
                }
                let record = Self.startProScan(file: file, fileMissing: false, now: now, state: &state)
                resource.append(JSONMember(key: "scan_id", value: .string(record.id)))
            }
            return Self.proReply([.object(resource)], cid: cid)
        }
    }

    /// LaunchScan: `{"resources": [{"sha256": …, "password"?: …}]}` → one scan per item.
    func launchProScans(_ exchange: inout Exchange) async throws -> Reply {
        try exchange.requireQuery(within: [])
        let body = try await exchange.jsonBody()
        guard case .object(let members) = body else {
            throw RequestRejection.violation("body must be an object {\"resources\": [{\"sha256\": …}]}, got \(body.typeName)")
        }
        if let unknown = members.first(where: { $0.key != "resources" }) {
            throw RequestRejection.violation("unknown key '\(unknown.key)' in quickscanpro.LaunchScanRequest (only resources)")
        }
        guard let items = body["resources"]?.arrayValue, !items.isEmpty else {
            throw RequestRejection.violation("resources is required: a non-empty array of {\"sha256\": …}")
        }
        var sha256s: [String] = []
        for (index, item) in items.enumerated() {
            guard case .object(let fields) = item else {
                throw RequestRejection.violation("resources[\(index)] must be an object, got \(item.typeName)")
            }
            if let unknown = fields.first(where: { $0.key != "sha256" && $0.key != "password" }) {
                throw RequestRejection.violation("unknown key '\(unknown.key)' in resources[\(index)] (expected sha256, password)")
            }
            guard let text = item["sha256"]?.stringValue, isSHA256(text) else {
                throw RequestRejection.violation("resources[\(index)].sha256 is required: 64 hex digits")
            }
            if let password = item["password"], password.stringValue == nil {
                throw RequestRejection.violation("resources[\(index)].password must be a string")
            }
            sha256s.append(text.lowercased())
        }
        let cid = exchange.cid
        let now = exchange.now
        return try state.withLock { state throws(RequestRejection) -> Reply in
            if let refused = state.refusedSample(among: sha256s, operation: .launchScan) {
                throw .refusal(400, "file \(refused) cannot be scanned")
            }
            let missing = sha256s.filter { state.proFiles[EmulatorState.proFileKey(cid: cid, sha256: $0)] == nil }
            if !missing.isEmpty, state.configuration.unknownSampleBehaviour == .reject {
                throw .refusal(400, "file not found: \(missing.joined(separator: ", ")); upload it with /quickscanpro/entities/files/v1 first")
            }
            guard state.proQuotaUsed + sha256s.count <= state.configuration.quotaTotal else {
                return Reply.metaOnly(state.configuration.quotaExhaustedStatus, "quota exceeded", poweredBy: PoweredBy.quickScanPro)
            }
            var resources: [JSONValue] = []
            for sha256 in sha256s {
                let stored = state.proFiles[EmulatorState.proFileKey(cid: cid, sha256: sha256)]
                let file = stored ?? ProFileRecord(sha256: sha256, cid: cid, fileName: "", size: 0, kind: .clean, firstBytes: [])
                let record = Self.startProScan(file: file, fileMissing: stored == nil, now: now, state: &state)
                resources.append([
                    "id": .string(record.id),
                    "sha256": .string(sha256),
                    "created_timestamp": .string(Timestamp.formatMilliseconds(epochSeconds: record.createdAt)),
                ])
            }
            return Self.proReply(resources, cid: cid)
        }
    }

    /// GetScanResult: `ids` repeated (or comma-separated); unknown ids are named in `errors`.
    /// `meta` is plain `msa.MetaInfo` here: no quota (§3).
    func getProScanResults(_ exchange: Exchange) throws -> Reply {
        try exchange.requireQuery(within: ["ids"])
        let ids = try Self.proIDs(exchange, check: { isProScanID($0) }, what: "a scan id (32 hex digits)")
        let cid = exchange.cid
        return state.withLock { state -> Reply in
            let configuration = state.configuration
            var resources: [JSONValue] = []
            var errors: [APIError] = []
            for id in ids {
                guard let record = state.proScans[id], record.cid == cid else {
                    errors.append(APIError(code: 404, message: "scan \(id) not found", id: id))
                    continue
                }
                let done = state.pollPro(scanID: id, now: exchange.now)
                if !done, configuration.emptyResourcesWhileInProgress { continue }
                resources.append(Self.proScanJSON(state.proScans[id] ?? record, done: done, inProgressStatus: configuration.inProgressStatus))
            }
            return Reply(status: 200, body: .envelope(Envelope(poweredBy: PoweredBy.quickScanPro, errors: errors, resources: resources)))
        }
    }

    /// DeleteScanResult: removes stored results; `resources` lists the ids deleted.
    func deleteProScanResults(_ exchange: Exchange) throws -> Reply {
        try exchange.requireQuery(within: ["ids"])
        let ids = try Self.proIDs(exchange, check: { isProScanID($0) }, what: "a scan id (32 hex digits)")
        let cid = exchange.cid
        return state.withLock { state -> Reply in
            var deleted: [JSONValue] = []
            var errors: [APIError] = []
            for id in ids {
                guard let record = state.proScans[id], record.cid == cid else {
                    errors.append(APIError(code: 404, message: "scan \(id) not found", id: id))
                    continue
                }
                state.proScans[id] = nil
                state.proScanOrder.removeAll { $0 == id }
                deleted.append(.string(id))
            }
            return Reply(status: 200, body: .envelope(Envelope(poweredBy: PoweredBy.quickScanPro, errors: errors, resources: deleted)))
        }
    }

    /// DeleteFile: removes files by sha256 (many per call); their scan results stay.
    func deleteProFiles(_ exchange: Exchange) throws -> Reply {
        try exchange.requireQuery(within: ["ids"])
        let ids = try Self.proIDs(exchange, check: isSHA256, what: "a sha256 (64 hex digits)")
        let cid = exchange.cid
        return state.withLock { state -> Reply in
            var deleted: [JSONValue] = []
            var errors: [APIError] = []
            for sha256 in ids {
                let key = EmulatorState.proFileKey(cid: cid, sha256: sha256)
                guard state.proFiles.removeValue(forKey: key) != nil else {
                    errors.append(APIError(code: 404, message: "file \(sha256) not found", id: sha256))
                    continue
                }
                state.stats.samplesDeleted += 1
                deleted.append(.string(sha256))
            }
            return Reply(status: 200, body: .envelope(Envelope(poweredBy: PoweredBy.quickScanPro, errors: errors, resources: deleted)))
        }
    }

    /// QueryScanResults: scan ids matching the FQL `filter` (required; empty matches all),
    /// sorted on `created_timestamp`, paged by integer `offset` and `limit` (default 50).
    func queryProScanResults(_ exchange: Exchange) throws -> Reply {
        try exchange.requireQuery(within: ["filter", "offset", "limit", "sort"])
        guard let text = try exchange.queryValue("filter") else {
            throw RequestRejection.violation("query parameter filter is required (an empty value matches everything)")
        }
        var filter: FQLFilter?
        if !text.trimmingSpaces.isEmpty {
            do {
                let parsed = try FQLFilter.parse(text, fields: ProScanDocument.fields)
                try parsed.validate(now: exchange.now)
                filter = parsed
            } catch {
                throw RequestRejection(status: 400, message: "invalid filter '\(text)': \(error.reason)",
                                       isViolation: error.isSpaceForPlus || error.isUnknownField)
            }
        }
        var offset = 0
        if let value = try exchange.queryValue("offset") {
            guard let number = Int(value), number >= 0 else {
                throw RequestRejection.violation("offset must be a non-negative integer, got '\(value)'")
            }
            offset = number
        }
        var limit = Self.proDefaultQueryLimit
        if let value = try exchange.queryValue("limit") {
            guard let number = Int(value) else { throw RequestRejection.violation("limit must be an integer, got '\(value)'") }
            guard (1...Self.maxQueryLimit).contains(number) else {
                throw RequestRejection.violation("limit \(number) is out of range: 1...\(Self.maxQueryLimit)")
            }
            limit = number
        }
        var ascending = false
        if let value = try exchange.queryValue("sort"), !value.isEmpty {
            switch value.lowercased() {
            case "asc", "created_timestamp.asc", "created_timestamp|asc": ascending = true
            case "desc", "created_timestamp.desc", "created_timestamp|desc": ascending = false
            default:
                throw RequestRejection.violation("sort must be created_timestamp.asc or created_timestamp.desc (or asc, desc), got '\(value)'")
            }
        }
        let cid = exchange.cid
        return state.withLock { state -> Reply in
            let configuration = state.configuration
            var documents = state.proScanOrder.compactMap { id -> ProScanDocument? in
                guard let record = state.proScans[id], record.cid == cid else { return nil }
                return record.document(done: state.isDone(record, now: exchange.now), inProgressStatus: configuration.inProgressStatus)
            }
            if let filter { documents = documents.filter { filter.matches($0, now: exchange.now) } }
            documents.sort { left, right in
                let leftKey = (left.createdAt, left.sequence)
                let rightKey = (right.createdAt, right.sequence)
                return ascending ? leftKey < rightKey : leftKey > rightKey
            }
            let page = documents.dropFirst(offset).prefix(limit).map { JSONValue.string($0.id) }
            var envelope = Envelope(poweredBy: PoweredBy.quickScanPro, resources: Array(page), proQuotaCID: cid)
            envelope.pagination = ["offset": .int(offset), "limit": .int(limit), "total": .int(documents.count)]
            return Reply(status: 200, body: .envelope(envelope))
        }
    }

    // MARK: - Helpers

    /// A 200 with the CID's QuickScan Pro quota (upload, launch, query).
    static func proReply(_ resources: [JSONValue], cid: String) -> Reply {
        Reply(status: 200, body: .envelope(Envelope(poweredBy: PoweredBy.quickScanPro, resources: resources, proQuotaCID: cid)))
    }

    /// Records a new scan of `file` and spends one quota unit.
    static func startProScan(file: ProFileRecord, fileMissing: Bool, now: Double, state: inout EmulatorState) -> ProScanRecord {
        let record = ProScanRecord(
            id: randomHex(bytes: 16), cid: file.cid, file: file, createdAt: now, updatedAt: now,
            sequence: state.nextScanSequence, fileMissing: fileMissing)
        state.nextScanSequence += 1
        state.proScans[record.id] = record
        state.proScanOrder.append(record.id)
        state.proQuotaUsed += 1
        state.stats.scansCreated += 1
        return record
    }

    /// The `ids` of a request: repeated and/or comma-separated, lower-cased, de-duplicated.
    static func proIDs(_ exchange: Exchange, check: (String) -> Bool, what: String) throws(RequestRejection) -> [String] {
        var ids: [String] = []
        for value in exchange.queryValues("ids") {
            for piece in value.split(separator: ",") {
                let id = String(piece).trimmingSpaces.lowercased()
                guard !id.isEmpty else { continue }
                guard check(id) else { throw .violation("ids '\(id)' is not \(what)") }
                if !ids.contains(id) { ids.append(id) }
            }
        }
        guard !ids.isEmpty else { throw .violation("query parameter ids is required (\(what), repeatable)") }
        return ids
    }

    /// One `quickscanpro.GetScanResultResource`; `result` only once done.
    static func proScanJSON(_ record: ProScanRecord, done: Bool, inProgressStatus: String) -> JSONValue {
        let outcome = record.outcome
        var scan: [JSONMember] = [
            JSONMember(key: "sha256", value: .string(record.file.sha256)),
            JSONMember(key: "status", value: .string(done ? "done" : inProgressStatus)),
            JSONMember(key: "created_timestamp", value: .string(Timestamp.formatMilliseconds(epochSeconds: record.createdAt))),
            JSONMember(key: "updated_timestamp", value: .string(Timestamp.formatMilliseconds(epochSeconds: record.updatedAt))),
        ]
        scan.append(JSONMember(key: "errors", value: .array(done ? outcome.errors : [])))
        var members: [JSONMember] = [
            JSONMember(key: "id", value: .string(record.id)),
            JSONMember(key: "scan", value: .object(scan)),
        ]
        guard done else { return .object(members) }
        let type = record.fileType
        let malicious = outcome.verdict == "malicious"
        var result: [JSONMember] = [
            JSONMember(key: "verdict", value: .string(outcome.verdict)),
            JSONMember(key: "verdict_reason", value: .string(outcome.reason)),
            JSONMember(key: "verdict_reasons", value: [.string(outcome.reason)]),
            JSONMember(key: "verdict_source", value: ["quickscan-emulator"]),
            JSONMember(key: "malicious_confidence", value: .int(outcome.confidence)),
            JSONMember(key: "file_artifacts", value: [[
                "sha256": .string(record.file.sha256), "filename": .string(record.file.fileName),
                "verdict": .string(outcome.verdict), "verdict_reason": .string(outcome.reason),
            ]]),
            JSONMember(key: "url_artifacts", value: []),
            JSONMember(key: "mitre_attacks", value: malicious ? [[
                "attack_id": "T1204.002", "attack_id_wiki": "https://attack.mitre.org/techniques/T1204/002/",
                "tactic": "Execution", "technique": "User Execution: Malicious File", "description": "EICAR test file",
            ]] : []),
            JSONMember(key: "yara_rules", value: malicious ? [[
                "rule_name": "EICAR_Test_File", "description": "EICAR anti-virus test string", "sha256": .string(record.file.sha256),
                "tags": ["test"],
            ]] : []),
            JSONMember(key: "file_size", value: .int(record.file.size)),
            JSONMember(key: "file_type", value: .string(type.long)),
            JSONMember(key: "file_type_short", value: .string(type.short)),
            JSONMember(key: "mime_type", value: .string(type.mime)),
            JSONMember(key: "first_content_bytes_hex", value: .string(record.file.firstBytes.map { byte in
                let hex = String(byte, radix: 16)
                return hex.count == 1 ? "0" + hex : hex
            }.joined())),
        ]
        if record.fileMissing, let index = result.firstIndex(where: { $0.key == "file_artifacts" }) {
            result[index].value = []
        }
        members.append(JSONMember(key: "result", value: .object(result)))
        return .object(members)
    }
}

/// A QuickScan Pro scan id: 32 hex digits (PSFalcon's `^[A-Fa-f0-9]{32}$`, quickscan-pro.md §4).
func isProScanID(_ text: String) -> Bool {
    text.utf8.count == 32 && text.utf8.allSatisfy(\.isHexDigit)
}
