import AsyncHTTPClient
import FalconEmulator
import Hashing
import NIOCore
import Testing

@Suite(.timeLimit(.minutes(2)))
struct SampleUploadTests {
    @Test func multipartAndOctetStreamGiveTheSameSHA256() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let content = Samples.clean("same-bytes")
            let multipart = try await falcon.uploadMultipart(
                content, fileName: "a.txt", token: token, extraParts: [("comment", "hi"), ("is_confidential", "True")]
            )
            let octet = try await falcon.uploadOctetStream(content, fileName: "b.txt", token: token)
            #expect(multipart.status == 200)
            #expect(octet.status == 200)
            let expected = SHA256Hasher.hash(content)
            let first = try multipart.json()
            #expect(first["resources"][0]["sha256"].string == expected)
            #expect(first["resources"][0]["file_name"].string == "a.txt")
            #expect(first["errors"].array.isEmpty)
            #expect(first["meta"]["trace_id"].exists)
            #expect(try octet.json()["resources"][0]["sha256"].string == expected)
            #expect(emulator.stats.uploads == 2)
            #expect(emulator.violations.isEmpty)
            let uploads = emulator.recorded.filter { $0.operation == .uploadSampleV3 }
            #expect(uploads.first?.bodyFields == ["file_name", "comment", "is_confidential", "sample"])
        }
    }

    @Test(arguments: [true, false])
    func twentyMebibyteUploadStreams(knownLength: Bool) async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let chunk = 256 * 1024
            let chunks = 80  // 20 MiB
            let expected = SHA256Hasher()
            for index in 0..<chunks { expected.update(Self.chunk(index, size: chunk)) }
            var request = HTTPClientRequest(url: emulator.baseURL + "/samples/entities/samples/v3?file_name=big.bin")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            request.headers.add(name: "Content-Type", value: "application/octet-stream")
            let stream = AsyncStream<ByteBuffer> { continuation in
                for index in 0..<chunks { continuation.yield(ByteBuffer(bytes: Self.chunk(index, size: chunk))) }
                continuation.finish()
            }
            request.body = .stream(stream, length: knownLength ? .known(Int64(chunk * chunks)) : .unknown)
            let response = try await falcon.execute(request, timeout: 60)
            #expect(response.status == 200, "\(response.text)")
            #expect(try response.json()["resources"][0]["sha256"].string == expected.finalize())
            let record = try #require(emulator.recorded.last)
            #expect(record.status == 200)
        }
    }

    static func chunk(_ index: Int, size: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
    }

    @Test func oversizedUploadIsRefusedNamingTheLimit() async throws {
        try await withFalcon({ $0.maxUploadBytes = 1000 }) { emulator, falcon in
            let token = try await falcon.token()
            let octet = try await falcon.uploadOctetStream(Array(repeating: 1, count: 1001), fileName: "x", token: token)
            #expect(octet.status == 400)
            #expect(try octet.json()["errors"][0]["message"].string?.contains("1000 bytes") == true)
            let multipart = try await falcon.uploadMultipart(Array(repeating: 1, count: 1001), fileName: "x", token: token)
            #expect(multipart.status == 400)
            #expect(try multipart.json()["errors"][0]["message"].string?.contains("1000 bytes") == true)
            let fits = try await falcon.uploadMultipart(Array(repeating: 1, count: 1000), fileName: "x", token: token)
            #expect(fits.status == 200)
            #expect(emulator.stats.uploads == 1)
        }
    }

    @Test func getReturnsRetainedBytesAndDeleteRemoves() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let content = Samples.clean("get-me")
            let sha256 = try await falcon.upload(content, token: token)
            let got = try await falcon.send(.GET, "/samples/entities/samples/v3", query: "ids=\(sha256)", headers: falcon.bearer(token))
            #expect(got.status == 200)
            #expect(got.header("Content-Type") == "application/octet-stream")
            #expect(got.body == content)
            let deleted = try await falcon.send(.DELETE, "/samples/entities/samples/v3", query: "ids=\(sha256)", headers: falcon.bearer(token))
            #expect(deleted.status == 200)
            #expect(try deleted.json()["resources"].strings == [sha256])
            let again = try await falcon.send(.DELETE, "/samples/entities/samples/v3", query: "ids=\(sha256)", headers: falcon.bearer(token))
            #expect(again.status == 404)
            let gone = try await falcon.send(.GET, "/samples/entities/samples/v3", query: "ids=\(sha256)", headers: falcon.bearer(token))
            #expect(gone.status == 404)
            #expect(!(try gone.json()["resources"].exists))
            #expect(emulator.stats.samplesDeleted == 1)
            #expect(emulator.violations.isEmpty)
        }
    }

    @Test func largeSamplesAreNotRetained() async throws {
        try await withFalcon({ $0.retainSampleBytes = 10 }) { _, falcon in
            let token = try await falcon.token()
            let sha256 = try await falcon.upload(Array(repeating: 65, count: 11), token: token)
            let got = try await falcon.send(.GET, "/samples/entities/samples/v3", query: "ids=\(sha256)", headers: falcon.bearer(token))
            #expect(got.status == 404)
        }
    }

    @Test func malformedUploadsAreViolations() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let unknownPart = try await falcon.uploadMultipart(Samples.clean(), fileName: "a", token: token, extraParts: [("color", "red")])
            #expect(unknownPart.status == 400)
            #expect(try unknownPart.json()["errors"][0]["message"].string?.contains("'color'") == true)
            let noName = try await falcon.send(
                .POST, "/samples/entities/samples/v3",
                headers: falcon.bearer(token) + [("Content-Type", "application/octet-stream")], body: [1, 2, 3]
            )
            #expect(noName.status == 400)
            let wrongType = try await falcon.send(
                .POST, "/samples/entities/samples/v3", query: "file_name=a",
                headers: falcon.bearer(token) + [("Content-Type", "text/plain")], body: [1, 2, 3]
            )
            #expect(wrongType.status == 400)
            let badID = try await falcon.send(.GET, "/samples/entities/samples/v3", query: "ids=xyz", headers: falcon.bearer(token))
            #expect(badID.status == 400)
            #expect(emulator.violations.count == 4)
            #expect(emulator.stats.uploads == 0)
        }
    }
}
