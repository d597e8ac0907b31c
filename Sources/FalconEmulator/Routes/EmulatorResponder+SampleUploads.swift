import Hummingbird

/// Sample Uploads v3 (fact sheet §4): upload, get and delete by sha256.
extension EmulatorResponder {
    /// Multipart parts of UploadSampleV3 (§4.1 `in: formData`).
    static let uploadParts: Set<String> = ["sample", "file_name", "comment", "is_confidential"]
    /// Longest accepted value of a non-file part.
    static let maxFieldBytes = 64 * 1024

    /// Streams the upload (multipart or octet-stream) through a ``SampleSink``.
    func uploadSample(_ exchange: inout Exchange) async throws -> Reply {
        let mediaType = try exchange.requireContentType(["multipart/form-data", "application/octet-stream"])
        let (maxBytes, retainLimit) = state.withLock { ($0.configuration.maxUploadBytes, $0.configuration.retainSampleBytes) }
        let isMultipart = mediaType.essence == "multipart/form-data"
        let tooLarge = RequestRejection.refusal(
            400, "file too large: the maximum sample size is \(maxBytes) bytes (\(Self.describeBytes(maxBytes)))"
        )
        // Multipart adds headers and boundaries around the file: allow for them before refusing.
        if let declared = exchange.request.headers[.contentLength].flatMap(Int.init),
           declared > maxBytes + (isMultipart ? Self.maxFieldBytes * 4 : 0) {
            throw tooLarge
        }

        var sink = SampleSink(retainLimit: retainLimit)
        var fileName: String?
        var comment: String?
        var confidential: String?

        if isMultipart {
            try exchange.requireQuery(within: [])
            guard let boundary = mediaType.parameters["boundary"], !boundary.isEmpty else {
                throw RequestRejection.violation("multipart/form-data Content-Type has no boundary parameter")
            }
            var parser = MultipartParser(boundary: boundary)
            var current: String?
            var value: [UInt8] = []
            var sawSample = false
            var names: [String] = []
            func handle(_ event: MultipartParser.Event) throws {
                switch event {
                case .partBegin(let headers):
                    guard let name = headers.name else {
                        throw RequestRejection.violation("multipart part without a Content-Disposition name")
                    }
                    names.append(name)
                    guard Self.uploadParts.contains(name) else {
                        throw RequestRejection.violation(
                            "unknown multipart part '\(name)' for UploadSampleV3 (expected sample, file_name, comment, is_confidential)"
                        )
                    }
                    if name == "sample" {
                        guard !sawSample else { throw RequestRejection.violation("more than one 'sample' part") }
                        sawSample = true
                    }
                    current = name
                    value = []
                case .partData(let bytes):
                    if current == "sample" {
                        sink.append(bytes)
                        guard sink.size <= maxBytes else { throw tooLarge }
                    } else {
                        value.append(contentsOf: bytes)
                        guard value.count <= Self.maxFieldBytes else {
                            throw RequestRejection.violation("multipart field '\(current ?? "")' longer than \(Self.maxFieldBytes) bytes")
                        }
                    }
                case .partEnd:
                    let text = String(decoding: value, as: UTF8.self)
                    switch current {
                    case "file_name": fileName = text
                    case "comment": comment = text
                    case "is_confidential": confidential = text
                    default: break
                    }
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
            guard sawSample else { throw RequestRejection.violation("multipart body has no 'sample' file part") }
            guard fileName != nil else { throw RequestRejection.violation("multipart body has no 'file_name' part (required)") }
        } else {
            try exchange.requireQuery(within: ["file_name", "comment", "is_confidential"])
            guard let name = try exchange.queryValue("file_name") else {
                throw RequestRejection.violation("octet-stream upload needs file_name in the query string")
            }
            fileName = name
            comment = try exchange.queryValue("comment")
            confidential = try exchange.queryValue("is_confidential")
            for try await buffer in exchange.request.body {
                buffer.withUnsafeReadableBytes { sink.append($0) }
                guard sink.size <= maxBytes else { throw tooLarge }
            }
        }

        guard let fileName, !fileName.isEmpty else { throw RequestRejection.violation("file_name must not be empty") }
        var isConfidential = true  // swagger default
        if let confidential {
            switch confidential.lowercased() {
            case "true": isConfidential = true
            case "false": isConfidential = false
            default: throw RequestRejection.violation("is_confidential must be true or false, got '\(confidential)'")
            }
        }
        let result = sink.finish()
        state.withLock { state in
            state.samples[result.sha256] = SampleRecord(
                sha256: result.sha256, fileName: fileName, size: result.size, content: result.content,
                kind: result.kind, comment: comment, isConfidential: isConfidential,
                isAcceptedType: AcceptedFileTypes.accepts(fileName: fileName, head: result.head)
            )
            state.stats.uploads += 1
        }
        return Reply.resources(
            [["sha256": .string(result.sha256), "file_name": .string(fileName)]], poweredBy: PoweredBy.samples
        )
    }

    /// GetSampleV3: the bytes when the emulator kept them (samples up to
    /// ``EmulatorConfiguration/retainSampleBytes``), else 404.
    func getSample(_ exchange: Exchange) throws -> Reply {
        try exchange.requireQuery(within: ["ids", "password_protected"])
        let sha256 = try Self.singleSampleID(exchange)
        if let protected = try exchange.queryValue("password_protected") {
            switch protected.lowercased() {
            case "false": break
            case "true": throw RequestRejection.refusal(400, "password_protected=true (zip with password) is not supported by the emulator")
            default: throw RequestRejection.violation("password_protected must be true or false, got '\(protected)'")
            }
        }
        let sample = state.withLock { $0.samples[sha256] }
        guard let sample else { return Reply.metaOnly(404, "sample \(sha256) not found", poweredBy: PoweredBy.samples) }
        guard let content = sample.content else {
            return Reply.metaOnly(
                404, "sample \(sha256) content is not retained by the emulator (\(sample.size) bytes)", poweredBy: PoweredBy.samples
            )
        }
        return Reply(status: 200, body: .bytes(content, contentType: "application/octet-stream"))
    }

    /// DeleteSampleV3: 200 `msa.QueryResponse` with the sha256, 404 when unknown.
    func deleteSample(_ exchange: Exchange) throws -> Reply {
        try exchange.requireQuery(within: ["ids"])
        let sha256 = try Self.singleSampleID(exchange)
        let removed = state.withLock { state -> Bool in
            guard state.samples.removeValue(forKey: sha256) != nil else { return false }
            state.stats.samplesDeleted += 1
            return true
        }
        guard removed else {
            throw RequestRejection.refusal(404, "sample \(sha256) not found")
        }
        return Reply.resources([.string(sha256)], poweredBy: PoweredBy.samples)
    }

    /// `ids` of GetSampleV3/DeleteSampleV3: one sha256, a single string in the swagger (§4.2).
    static func singleSampleID(_ exchange: Exchange) throws(RequestRejection) -> String {
        guard let ids = try exchange.queryValue("ids"), !ids.isEmpty else {
            throw .violation("query parameter ids (the sample sha256) is required")
        }
        guard !ids.contains(",") else { throw .violation("ids takes a single sha256 for \(exchange.operation.rawValue)") }
        guard isSHA256(ids) else { throw .violation("ids '\(ids)' is not a sha256 (64 hex digits)") }
        return ids.lowercased()
    }

    static func describeBytes(_ bytes: Int) -> String {
        if bytes % (1024 * 1024) == 0 { return "\(bytes / (1024 * 1024)) MiB" }
        if bytes % 1024 == 0 { return "\(bytes / 1024) KiB" }
        return "\(bytes) bytes"
    }
}
