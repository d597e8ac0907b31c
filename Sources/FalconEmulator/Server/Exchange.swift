import Hummingbird

/// One request as a handler sees it, plus what the handler learns about it for the record.
struct Exchange {
    let operation: FalconOperation
    let request: Request
    let queryItems: [QueryItem]
    /// Unix seconds when the request arrived.
    let now: Double
    /// Form field, multipart part or top-level JSON key names, for ``RecordedRequest``.
    var bodyFieldNames: [String] = []
    /// The CID the bearer token acts for (empty for OAuth2).
    var cid = ""

    /// The media type of the body.
    var mediaType: MediaType? {
        MediaType(request.headers[.contentType])
    }

    /// All values of a query parameter, in order.
    func queryValues(_ name: String) -> [String] {
        queryItems.filter { $0.name == name }.map(\.value)
    }

    /// The single value of a query parameter; a repeated parameter is a violation.
    func queryValue(_ name: String) throws(RequestRejection) -> String? {
        let values = queryValues(name)
        guard values.count <= 1 else {
            throw .violation("query parameter '\(name)' given \(values.count) times; \(operation.rawValue) takes one")
        }
        return values.first
    }

    /// Rejects query parameters the operation does not define (swagger parameter lists).
    func requireQuery(within allowed: Set<String>) throws(RequestRejection) {
        if let unknown = queryItems.first(where: { !allowed.contains($0.name) }) {
            let expected = allowed.isEmpty ? "none" : allowed.sorted().joined(separator: ", ")
            throw .violation("unknown query parameter '\(unknown.name)' for \(operation.rawValue) (expected: \(expected))")
        }
    }

    /// Rejects a body whose `Content-Type` is not one of `accepted`.
    func requireContentType(_ accepted: Set<String>) throws(RequestRejection) -> MediaType {
        guard let mediaType, accepted.contains(mediaType.essence) else {
            let sent = request.headers[.contentType] ?? "no Content-Type"
            throw .violation(
                "\(operation.rawValue) expects Content-Type \(accepted.sorted().joined(separator: " or ")), got \(sent)"
            )
        }
        return mediaType
    }

    /// Reads a small body whole (JSON and form bodies); `limit` guards against misuse.
    func collectBody(limit: Int = 1024 * 1024) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await buffer in request.body {
            guard bytes.count + buffer.readableBytes <= limit else {
                throw RequestRejection.refusal(400, "request body larger than \(limit) bytes")
            }
            bytes.append(contentsOf: buffer.readableBytesView)
        }
        return bytes
    }

    /// Reads a JSON body: Content-Type `application/json` and valid JSON are required.
    mutating func jsonBody() async throws -> JSONValue {
        _ = try requireContentType(["application/json"])
        let bytes = try await collectBody()
        let json: JSONValue
        do {
            json = try JSONValue.parse(bytes)
        } catch {
            throw RequestRejection.violation("body is not valid JSON: \(error)")
        }
        bodyFieldNames = json.keys
        return json
    }

    /// Reads a `application/x-www-form-urlencoded` body.
    mutating func formBody() async throws -> [QueryItem] {
        let bytes = try await collectBody(limit: 64 * 1024)
        let items = URLEncoding.parse(String(decoding: bytes, as: UTF8.self))
        bodyFieldNames = items.map(\.name)
        return items
    }

    /// The `Authorization` header split into scheme and credentials.
    var authorization: (scheme: String, credentials: String)? {
        guard let header = request.headers[.authorization]?.trimmingSpaces, !header.isEmpty else { return nil }
        guard let space = header.firstIndex(of: " ") else { return (header, "") }
        return (String(header[..<space]), String(header[header.index(after: space)...]).trimmingSpaces)
    }
}
