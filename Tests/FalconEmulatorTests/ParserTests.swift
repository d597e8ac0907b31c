@testable import FalconEmulator
import Testing

struct MultipartParserTests {
    static let body: [UInt8] = Array((
        "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file_name\"\r\n\r\nhello.txt\r\n"
        + "--XyZ\r\nContent-Disposition: form-data; name=\"sample\"; filename=\"hello.txt\"\r\n"
        + "Content-Type: application/octet-stream\r\n\r\nline one\r\n--XyA is not a delimiter\r\n--X\r\n"
        + "--XyZ--\r\nepilogue"
    ).utf8)

    /// Feeds the body split at every position (and in single bytes) and checks the same parts come out.
    @Test func chunkBoundariesDoNotMatter() throws {
        let expected = try parse([Self.body])
        #expect(expected.map(\.name) == ["file_name", "sample"])
        #expect(expected[0].data == Array("hello.txt".utf8))
        #expect(expected[1].data == Array("line one\r\n--XyA is not a delimiter\r\n--X".utf8))
        #expect(expected[1].fileName == "hello.txt")
        for split in 1..<Self.body.count {
            let parts = try parse([Array(Self.body[..<split]), Array(Self.body[split...])])
            #expect(parts == expected, "split at \(split)")
        }
        #expect(try parse(Self.body.map { [$0] }) == expected)
    }

    @Test func truncatedBodyFails() {
        #expect(throws: MultipartError.self) { try parse([Array(Self.body.prefix(100))]) }
    }

    struct Part: Equatable {
        var name: String?
        var fileName: String?
        var data: [UInt8]
    }

    func parse(_ chunks: [[UInt8]]) throws -> [Part] {
        var parser = MultipartParser(boundary: "XyZ")
        var parts: [Part] = []
        for chunk in chunks {
            try chunk.withUnsafeBytes { bytes in
                try parser.feed(bytes) { event in
                    switch event {
                    case .partBegin(let headers): parts.append(Part(name: headers.name, fileName: headers.fileName, data: []))
                    case .partData(let data): parts[parts.count - 1].data.append(contentsOf: data)
                    case .partEnd: break
                    }
                }
            }
        }
        try parser.finish()
        return parts
    }
}

struct JSONValueTests {
    @Test func parsesAndSerializesInOrder() throws {
        let text = #"{"b":[1,2.5,true,null,"x\"\u00e9\n"],"a":{"c":-3e2}}"#
        let value = try JSONValue.parse(Array(text.utf8))
        #expect(value.keys == ["b", "a"])
        #expect(value["a"]?["c"] == .double(-300))
        #expect(value["b"]?.arrayValue?.first == .int(1))
        #expect(value.serialized == #"{"b":[1,2.5,true,null,"x\"é\n"],"a":{"c":-300.0}}"#)
    }

    @Test(arguments: ["", "{", #"{"a":1,}"#, #"{"a":1,"a":2}"#, "[1] x", "01x", #""\q""#])
    func rejectsInvalidJSON(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(text.utf8)) }
    }
}

struct FQLFilterTests {
    static let document = ScanDocument(
        id: "aaaa_bbbb", cid: "cid1", status: "done", createdAt: 1_767_225_600,  // 2026-01-01T00:00:00Z
        sequence: 0, sha256s: ["s1", "s2"], verdicts: ["malware", "no specific threat"]
    )

    @Test(arguments: [
        ("created_timestamp:>'2025-12-31T23:59:59Z'", true),
        ("created_timestamp:>'2026-01-01T00:00:00Z'", false),
        ("created_timestamp:>='2026-01-01T00:00:00Z'", true),
        ("created_timestamp:<'2026-01-01T01:00:00+01:00'", false),
        ("created_timestamp:<='2026-01-01'", true),
        ("status:'done'+cid:'cid1'", true),
        ("status:'done'+cid:'other'", false),
        ("status:'running',id:'aaaa_bbbb'", true),
        ("id:['x','aaaa_bbbb']", true),
        ("id:!['x','aaaa_bbbb']", false),
        ("samples.verdict:'malware'", true),
        ("samples.verdict:!'malware'", false),
        ("samples.sha256:'s2'", true),
        ("id:'aaaa*'", true),
        ("(status:'x',status:'done')+samples_count:2", true),
        ("status:DONE", true),
    ])
    func evaluates(filter: String, expected: Bool) throws {
        let parsed = try FQLFilter.parse(filter)
        try parsed.validate(now: 1_767_225_600)
        #expect(parsed.matches(Self.document, now: 1_767_225_600) == expected)
    }

    @Test func spaceForPlusIsFlagged() {
        #expect {
            try FQLFilter.parse("status:'done' cid:'x'")
        } throws: { error in
            (error as? FQLError)?.isSpaceForPlus == true
        }
        #expect {
            try FQLFilter.parse("created_timestamp:>'2026-01-01T00:00:00 01:00'").validate(now: 0)
        } throws: { error in
            (error as? FQLError)?.isSpaceForPlus == true
        }
    }

    @Test func relativeTimes() {
        let now = 1_000_000.0
        #expect(Timestamp.parse("Last 7 days", now: now) == now - 7 * 86_400)
        #expect(Timestamp.parse("now-1h", now: now) == now - 3600)
        #expect(Timestamp.parse("now", now: now) == now)
        #expect(Timestamp.parse("2026-01-01T00:00:00.500Z", now: now) == 1_767_225_600.5)
        #expect(Timestamp.parse("tomorrow", now: now) == nil)
        #expect(Timestamp.format(epochSeconds: 1_767_225_600) == "2026-01-01T00:00:00Z")
    }
}
