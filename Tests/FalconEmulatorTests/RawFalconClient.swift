import AsyncHTTPClient
import FalconEmulator
import Foundation
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

/// A response as the tests inspect it: status, headers, body bytes and (when JSON) the document.
struct RawResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first(name: name)
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body parsed as a JSON object (fails the test when it is not one).
    func json() throws -> JSONNode {
        let object = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        return JSONNode(object)
    }
}

/// Read-only walk through a `JSONSerialization` result.
struct JSONNode: @unchecked Sendable {
    let value: Any?

    init(_ value: Any?) {
        self.value = value
    }

    subscript(key: String) -> JSONNode {
        JSONNode((value as? [String: Any])?[key] ?? nil)
    }

    subscript(index: Int) -> JSONNode {
        guard let array = value as? [Any], array.indices.contains(index) else { return JSONNode(nil) }
        return JSONNode(array[index])
    }

    var string: String? { value as? String }
    var int: Int? { (value as? NSNumber)?.intValue }
    var double: Double? { (value as? NSNumber)?.doubleValue }
    var array: [JSONNode] { (value as? [Any])?.map(JSONNode.init) ?? [] }
    var keys: Set<String> { Set((value as? [String: Any])?.keys.map { $0 } ?? []) }
    var exists: Bool { value != nil && !(value is NSNull) }
    var strings: [String] { array.compactMap(\.string) }
}

/// Raw HTTP against the emulator with AsyncHTTPClient: nothing of our own Falcon client.
struct RawFalconClient: Sendable {
    let client: HTTPClient
    let baseURL: String

    static let clientID = "0123456789abcdef0123456789abcdef"
    static let clientSecret = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"

    func send(
        _ method: HTTPMethod,
        _ path: String,
        query: String? = nil,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: Int64 = 30
    ) async throws -> RawResponse {
        var request = HTTPClientRequest(url: baseURL + path + (query.map { "?" + $0 } ?? ""))
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        return try await execute(request, timeout: timeout)
    }

    func execute(_ request: HTTPClientRequest, timeout: Int64 = 30) async throws -> RawResponse {
        let response = try await client.execute(request, timeout: .seconds(timeout))
        let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return RawResponse(status: Int(response.status.code), headers: response.headers, body: Array(body.readableBytesView))
    }

    func form(_ fields: [(String, String)]) -> [UInt8] {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        return Array(fields.map { name, value in
            "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed)!)"
        }.joined(separator: "&").utf8)
    }

    func requestToken(
        id: String = clientID, secret: String = clientSecret, extra: [(String, String)] = []
    ) async throws -> RawResponse {
        try await send(
            .POST, "/oauth2/token",
            headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: form([("client_id", id), ("client_secret", secret)] + extra)
        )
    }

    func token() async throws -> String {
        let response = try await requestToken()
        try #require(response.status == 201, "token request failed: \(response.status) \(response.text)")
        return try #require(try response.json()["access_token"].string)
    }

    func bearer(_ token: String) -> [(String, String)] {
        [("Authorization", "Bearer \(token)")]
    }

    func uploadMultipart(
        _ content: [UInt8], fileName: String, token: String, extraParts: [(String, String)] = []
    ) async throws -> RawResponse {
        let boundary = "----quickscan-test-\(UUID().uuidString)"
        var body: [UInt8] = []
        func text(_ string: String) { body.append(contentsOf: Array(string.utf8)) }
        text("--\(boundary)\r\nContent-Disposition: form-data; name=\"file_name\"\r\n\r\n\(fileName)\r\n")
        for (name, value) in extraParts {
            text("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
        }
        text("--\(boundary)\r\nContent-Disposition: form-data; name=\"sample\"; filename=\"\(fileName)\"\r\n\r\n")
        body.append(contentsOf: content)
        text("\r\n--\(boundary)--\r\n")
        return try await send(
            .POST, "/samples/entities/samples/v3",
            headers: bearer(token) + [("Content-Type", "multipart/form-data; boundary=\(boundary)")],
            body: body
        )
    }

    func uploadOctetStream(_ content: [UInt8], fileName: String, token: String) async throws -> RawResponse {
        try await send(
            .POST, "/samples/entities/samples/v3",
            query: "file_name=\(fileName)&is_confidential=true",
            headers: bearer(token) + [("Content-Type", "application/octet-stream")],
            body: content
        )
    }

    /// Uploads and returns the sha256 the emulator reports.
    func upload(_ content: [UInt8], fileName: String = "sample.ps1", token: String) async throws -> String {
        let response = try await uploadMultipart(content, fileName: fileName, token: token)
        try #require(response.status == 200, "upload failed: \(response.text)")
        return try #require(try response.json()["resources"][0]["sha256"].string)
    }

    func scanSamples(_ sha256s: [String], token: String) async throws -> RawResponse {
        let list = sha256s.map { "\"\($0)\"" }.joined(separator: ",")
        return try await send(
            .POST, "/scanner/entities/scans/v1",
            headers: bearer(token) + [("Content-Type", "application/json")],
            body: Array("{\"samples\":[\(list)]}".utf8)
        )
    }

    /// Submits a volume and returns its id.
    func scan(_ sha256s: [String], token: String) async throws -> String {
        let response = try await scanSamples(sha256s, token: token)
        try #require(response.status == 200, "ScanSamples failed: \(response.text)")
        return try #require(try response.json()["resources"][0].string)
    }

    func getScans(query: String?, token: String) async throws -> RawResponse {
        try await send(.GET, "/scanner/entities/scans/v1", query: query, headers: bearer(token))
    }

    func aggregate(_ json: String, token: String) async throws -> RawResponse {
        try await send(
            .POST, "/scanner/aggregates/scans/GET/v1",
            headers: bearer(token) + [("Content-Type", "application/json")],
            body: Array(json.utf8)
        )
    }
}

/// An emulator plus a raw client, both torn down after `body`.
func withFalcon<T: Sendable>(
    isolation: isolated (any Actor)? = #isolation,
    _ configure: (inout EmulatorConfiguration) -> Void = { _ in },
    _ body: (FalconEmulator, RawFalconClient) async throws -> T
) async throws -> T {
    try await withEmulator(configure) { emulator in
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let result = try await body(emulator, RawFalconClient(client: client, baseURL: emulator.baseURL))
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

/// Test content whose verdict the emulator decides (see the emulator's `SampleKind`).
enum Samples {
    static let eicar = Array(#"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"#.utf8)
    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array(repeating: 0, count: 32)
    static let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 7, count: 32)
    static let suspicious = Array("hello QUICKSCAN-EMULATOR-SUSPICIOUS world".utf8)
    static let unknown = Array("QUICKSCAN-EMULATOR-UNKNOWN".utf8)
    static func clean(_ tag: String = UUID().uuidString) -> [UInt8] { Array("just a text file \(tag)\n".utf8) }
}
