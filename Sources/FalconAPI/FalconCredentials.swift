import Foundation

/// OAuth2 client credentials; the secret never appears in `description`, logs or errors.
public struct FalconCredentials: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public var clientID: String
    public var clientSecret: String
    /// For MSSP / Flight Control parents: locks the token to one child CID.
    public var memberCID: String?

    public init(clientID: String, clientSecret: String, memberCID: String? = nil) {
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.memberCID = memberCID
    }

    public var description: String {
        "FalconCredentials(clientID: \(clientID), clientSecret: ****\(memberCID.map { ", memberCID: \($0)" } ?? ""))"
    }

    public var debugDescription: String { description }

    /// Reads `FALCON_CLIENT_ID`, `FALCON_CLIENT_SECRET` and optional `FALCON_MEMBER_CID`.
    /// Throws a configuration error naming the missing variable.
    public static func fromEnvironment(_ environment: [String: String]) throws(FalconError) -> FalconCredentials {
        func value(_ name: String) -> String? {
            guard let v = environment[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        guard let id = value("FALCON_CLIENT_ID") else {
            throw FalconError(kind: .configuration, message: "FALCON_CLIENT_ID is not set: export the API client id (or use the emulator)")
        }
        guard let secret = value("FALCON_CLIENT_SECRET") else {
            throw FalconError(kind: .configuration, message: "FALCON_CLIENT_SECRET is not set: export the API client secret (or use the emulator)")
        }
        return FalconCredentials(clientID: id, clientSecret: secret, memberCID: value("FALCON_MEMBER_CID"))
    }
}
