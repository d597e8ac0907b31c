import Foundation

/// A Falcon cloud region and its API host (reference/falcon-api.md §2).
public enum FalconCloud: String, Sendable, CaseIterable, CustomStringConvertible {
    case us1 = "us-1"
    case us2 = "us-2"
    case eu1 = "eu-1"
    case usGov1 = "us-gov-1"
    case usGov2 = "us-gov-2"
    /// Start at us-1 and follow the region named by the token response's `X-Cs-Region` header.
    case auto = "auto"

    /// The API base URL of this cloud (`auto` starts at us-1).
    public var baseURL: String {
        switch self {
        case .us1, .auto: "https://api.crowdstrike.com"
        case .us2: "https://api.us-2.crowdstrike.com"
        case .eu1: "https://api.eu-1.crowdstrike.com"
        case .usGov1: "https://api.laggar.gcw.crowdstrike.com"
        case .usGov2: "https://api.us-gov-2.crowdstrike.mil"
        }
    }

    public var description: String { rawValue }

    /// Parses a cloud name leniently, as FalconPy does: `US-1`, `us1`, `us_1`, `usgov1`, `auto`.
    public init?(name: String) {
        let key = name.lowercased().filter { $0.isLetter || $0.isNumber }
        guard let match = FalconCloud.allCases.first(where: { $0.rawValue.filter { $0 != "-" } == key }) else {
            return nil
        }
        self = match
    }

    /// The cloud that an `X-Cs-Region` header value names, if it is one we know.
    public init?(regionHeader: String) {
        let value = regionHeader.trimmingCharacters(in: .whitespaces)
        guard let cloud = FalconCloud(name: value), cloud != .auto else { return nil }
        self = cloud
    }
}
