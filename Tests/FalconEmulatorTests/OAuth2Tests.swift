import FalconEmulator
import Foundation
import Testing

@Suite(.timeLimit(.minutes(1)))
struct OAuth2Tests {
    @Test func tokenIs201WithFalconHeaders() async throws {
        try await withFalcon({ $0.region = "local-1" }) { emulator, falcon in
            let response = try await falcon.requestToken()
            #expect(response.status == 201)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.header("X-Cs-Region") == "local-1")
            #expect(response.header("X-Ratelimit-Limit") == "300")
            #expect(response.header("X-Ratelimit-Remaining") == "299")
            let trace = try #require(response.header("X-Cs-Traceid"))
            #expect(UUID(uuidString: trace) != nil)
            let body = try response.json()
            #expect(body["token_type"].string == "bearer")
            #expect(body["expires_in"].int == 1799)
            #expect((body["access_token"].string ?? "").count >= 32)
            #expect(emulator.stats.tokensIssued == 1)
            #expect(emulator.violations.isEmpty)
        }
    }

    @Test func noRegionHeaderByDefault() async throws {
        try await withFalcon { _, falcon in
            let response = try await falcon.requestToken()
            #expect(response.header("X-Cs-Region") == nil)
        }
    }

    @Test func acceptsGrantTypeMemberCIDAndBasicClientAuth() async throws {
        try await withFalcon { emulator, falcon in
            let withGrant = try await falcon.requestToken(extra: [
                ("grant_type", "client_credentials"), ("member_cid", "0123456789abcdef0123456789abcdef"),
            ])
            #expect(withGrant.status == 201)
            let basic = Data("\(RawFalconClient.clientID):\(RawFalconClient.clientSecret)".utf8).base64EncodedString()
            let viaBasic = try await falcon.send(
                .POST, "/oauth2/token",
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", "Basic \(basic)")],
                body: Array("grant_type=client_credentials".utf8)
            )
            #expect(viaBasic.status == 201)
            #expect(emulator.violations.isEmpty)
        }
    }

    @Test func badCredentialsAre403() async throws {
        try await withFalcon({ $0.credentials = [RawFalconClient.clientID: RawFalconClient.clientSecret] }) { _, falcon in
            let response = try await falcon.requestToken(secret: "wrong")
            #expect(response.status == 403)
            let body = try response.json()
            #expect(body["errors"][0]["code"].int == 403)
            #expect(body["errors"][0]["message"].string == "access denied, authorization failed")
            #expect(!body["resources"].exists)
            #expect(try await falcon.requestToken().status == 201)
        }
    }

    @Test func badMemberCIDIs403() async throws {
        try await withFalcon { _, falcon in
            let response = try await falcon.requestToken(extra: [("member_cid", "nope")])
            #expect(response.status == 403)
            #expect(try response.json()["errors"][0]["message"].string == "Failed to generate access token for customer ID=nope")
        }
    }

    @Test func wrongContentTypeAndUnknownFieldAreViolations() async throws {
        try await withFalcon { emulator, falcon in
            let json = try await falcon.send(
                .POST, "/oauth2/token", headers: [("Content-Type", "application/json")],
                body: Array(#"{"client_id":"a","client_secret":"b"}"#.utf8)
            )
            #expect(json.status == 400)
            #expect(try json.json()["errors"][0]["message"].string?.contains("application/x-www-form-urlencoded") == true)
            let unknown = try await falcon.requestToken(extra: [("scope", "all")])
            #expect(unknown.status == 400)
            #expect(try unknown.json()["errors"][0]["message"].string?.contains("'scope'") == true)
            #expect(emulator.violations.count == 2)
        }
    }

    @Test func missingOrInvalidBearerGetsTheExact401() async throws {
        try await withFalcon { emulator, falcon in
            let pattern = #/\{"meta":\{"query_time":[0-9.e+-]+,"powered_by":"crowdstrike-api-gateway","trace_id":"[0-9a-f-]{36}"\},"errors":\[\{"code":401,"message":"access denied, invalid bearer token"\}\]\}/#
            for headers in [[], [("Authorization", "Bearer not-a-token")], [("Authorization", "Basic Zm9vOmJhcg==")]] {
                let response = try await falcon.send(.GET, "/scanner/entities/scans/v1", headers: headers)
                #expect(response.status == 401)
                #expect(response.text.wholeMatch(of: pattern) != nil, "body: \(response.text)")
                #expect(response.header("X-Ratelimit-Limit") == "15")
                #expect(response.header("Content-Type") == "application/json")
                #expect(try response.json()["meta"]["trace_id"].string == response.header("X-Cs-Traceid"))
            }
            #expect(emulator.stats.unauthorized == 3)
        }
    }

    @Test func bearerSchemeIsCaseInsensitive() async throws {
        try await withFalcon { _, falcon in
            let token = try await falcon.token()
            let response = try await falcon.send(.GET, "/scanner/entities/scans/v1", headers: [("Authorization", "bearer \(token)")])
            #expect(response.status == 200)
        }
    }

    @Test func revokeInvalidatesTheToken() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let basic = Data("\(RawFalconClient.clientID):\(RawFalconClient.clientSecret)".utf8).base64EncodedString()
            let revoke = try await falcon.send(
                .POST, "/oauth2/revoke",
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", "basic \(basic)")],
                body: falcon.form([("token", token)])
            )
            #expect(revoke.status == 200)
            let body = try revoke.json()
            #expect(body["errors"].array.isEmpty)
            #expect(!body["resources"].exists)
            #expect(body["meta"]["trace_id"].exists)
            let after = try await falcon.getScans(query: nil, token: token)
            #expect(after.status == 401)
            #expect(emulator.stats.revokes == 1)
            #expect(emulator.recorded.first { $0.path == "/oauth2/revoke" }?.authorizationScheme == "basic")
        }
    }

    @Test func revokeWithoutBasicAuthIsRefused() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let revoke = try await falcon.send(
                .POST, "/oauth2/revoke",
                headers: [("Content-Type", "application/x-www-form-urlencoded")] + falcon.bearer(token),
                body: falcon.form([("token", token)])
            )
            #expect(revoke.status == 403)
            #expect(emulator.violations.count == 1)
            #expect(try await falcon.getScans(query: nil, token: token).status == 200)
        }
    }

    @Test func zeroLifetimeTokensAreRefused() async throws {
        try await withFalcon({ $0.tokenLifetimeSeconds = 0 }) { _, falcon in
            let response = try await falcon.requestToken()
            #expect(try response.json()["expires_in"].int == 0)
            let token = try await falcon.token()
            #expect(try await falcon.getScans(query: nil, token: token).status == 401)
        }
    }

    @Test func recordNeverHoldsTheToken() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            _ = try await falcon.getScans(query: "ids=", token: token)
            let record = try #require(emulator.recorded.last)
            #expect(record.operation == .getScans)
            #expect(record.authorizationScheme == "Bearer")
            #expect(record.rawQuery == "ids=")
            #expect(record.queryItems == [QueryItem(name: "ids", value: "")])
            #expect(record.status == 200)
            #expect(!"\(emulator.recorded)".contains(token))
            let tokenRecord = try #require(emulator.recorded.first)
            #expect(Set(tokenRecord.bodyFields) == ["client_id", "client_secret"])
        }
    }

    @Test func unknownPathIs404AndWrongMethodIs405() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let missing = try await falcon.send(.GET, "/nothing/here", headers: falcon.bearer(token))
            #expect(missing.status == 404)
            #expect(try missing.json()["errors"][0]["code"].int == 404)
            let wrong = try await falcon.send(.PUT, "/scanner/entities/scans/v1", headers: falcon.bearer(token))
            #expect(wrong.status == 405)
            #expect(try wrong.json()["errors"][0]["code"].int == 405)
            #expect(wrong.header("X-Cs-Traceid") != nil)
            #expect(emulator.violations.count == 2)
        }
    }
}
