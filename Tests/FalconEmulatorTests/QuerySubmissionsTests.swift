import FalconEmulator
import Foundation
import Testing

@Suite(.timeLimit(.minutes(1)))
struct QuerySubmissionsTests {
    /// Creates `count` done volumes, oldest first.
    func makeScans(_ count: Int, falcon: RawFalconClient, token: String) async throws -> [String] {
        var ids: [String] = []
        for index in 0..<count {
            let content = index == 0 ? Samples.eicar : Samples.clean("scan-\(index)")
            ids.append(try await falcon.scan([try await falcon.upload(content, token: token)], token: token))
        }
        return ids
    }

    /// Percent-encodes a query value the way `requests` does for FalconPy (`+` → `%2B`).
    func encode(_ value: String) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        return value.addingPercentEncoding(withAllowedCharacters: allowed)!
    }

    func query(_ falcon: RawFalconClient, _ query: String, token: String) async throws -> RawResponse {
        try await falcon.send(.GET, "/scanner/queries/scans/v1", query: query, headers: falcon.bearer(token))
    }

    @Test func filterSortAndPaging() async throws {
        try await withFalcon({ $0.scanPollsUntilDone = 0 }) { emulator, falcon in
            let token = try await falcon.token()
            let ids = try await makeScans(3, falcon: falcon, token: token)
            let filter = encode("created_timestamp:>'2020-01-01T00:00:00Z'+status:'done'")
            let ascending = try await query(falcon, "filter=\(filter)&sort=created_timestamp.asc&limit=2&offset=0", token: token)
            #expect(ascending.status == 200, "\(ascending.text)")
            let body = try ascending.json()
            #expect(body["resources"].strings == Array(ids.prefix(2)))
            #expect(body["meta"]["pagination"]["offset"].int == 0)
            #expect(body["meta"]["pagination"]["limit"].int == 2)
            #expect(body["meta"]["pagination"]["total"].int == 3)
            #expect(body["meta"]["quota"]["used"].int == 3)
            let next = try await query(falcon, "filter=\(filter)&sort=asc&limit=2&offset=2", token: token)
            #expect(try next.json()["resources"].strings == [ids[2]])
            let descending = try await query(falcon, "sort=desc", token: token)
            #expect(try descending.json()["resources"].strings == ids.reversed())
            let future = try await query(falcon, "filter=" + encode("created_timestamp:>='2999-01-01T00:00:00Z'"), token: token)
            #expect(try future.json()["resources"].strings.isEmpty)
            let recent = try await query(falcon, "filter=" + encode("created_timestamp:>'Last 7 days'"), token: token)
            #expect(try recent.json()["meta"]["pagination"]["total"].int == 3)
            let byID = try await query(falcon, "filter=" + encode("id:'\(ids[1])',id:'\(ids[2])'"), token: token)
            #expect(Set(try byID.json()["resources"].strings) == [ids[1], ids[2]])
            let malware = try await query(falcon, "filter=" + encode("samples.verdict:'malware'"), token: token)
            #expect(try malware.json()["resources"].strings == [ids[0]])
            #expect(emulator.violations.isEmpty)
        }
    }

    @Test func inProgressScansHaveTheirStatus() async throws {
        try await withFalcon({ $0.scanPollsUntilDone = 1 }) { _, falcon in
            let token = try await falcon.token()
            let ids = try await makeScans(1, falcon: falcon, token: token)
            let running = try await query(falcon, "filter=" + encode("status:'in_progress'"), token: token)
            #expect(try running.json()["resources"].strings == ids)
            let done = try await query(falcon, "filter=" + encode("status:'done'"), token: token)
            #expect(try done.json()["resources"].strings.isEmpty)
        }
    }

    @Test func limitAbove5000IsRejected() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let response = try await query(falcon, "limit=5001", token: token)
            #expect(response.status == 400)
            #expect(try response.json()["errors"][0]["message"].string?.contains("5000") == true)
            #expect(try await query(falcon, "limit=5000", token: token).status == 200)
            #expect(emulator.violations.count == 1)
        }
    }

    /// The `+` goes out raw (the client bug); everything else is encoded properly.
    @Test(arguments: ["created_timestamp:>'2020-01-01T00:00:00Z'+status:'done'", "status:'done' id:'x'"])
    func unencodedPlusIsRejected(filter: String) async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let raw = encode(filter).replacingOccurrences(of: "%2B", with: "+")
            let response = try await query(falcon, "filter=\(raw)", token: token)
            #expect(response.status == 400)
            let message = try #require(try response.json()["errors"][0]["message"].string)
            #expect(message.contains("%2B"))
            #expect(emulator.violations.count == 1)
            #expect(emulator.violations.first?.contains("%2B") == true)
        }
    }

    @Test func badParametersAreRejected() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            #expect(try await query(falcon, "sort=name.asc", token: token).status == 400)
            #expect(try await query(falcon, "offset=abc", token: token).status == 400)
            #expect(try await query(falcon, "filter=" + encode("color:'red'"), token: token).status == 400)
            #expect(try await query(falcon, "page=2", token: token).status == 400)
            #expect(try await query(falcon, "filter=" + encode("created_timestamp:>'yesterday'"), token: token).status == 400)
            #expect(emulator.violations.count == 4)
        }
    }
}
