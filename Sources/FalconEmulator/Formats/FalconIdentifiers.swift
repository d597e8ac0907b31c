/// A sha256 as the Falcon APIs spell it: 64 hex digits (PSFalcon validates `^[A-Fa-f0-9]{64}$`).
func isSHA256(_ text: String) -> Bool {
    text.utf8.count == 64 && text.utf8.allSatisfy { $0.isHexDigit }
}

/// A Quick Scan volume id: `^[a-fA-F0-9]{32}_[a-fA-F0-9]{32}$` (§5.1).
func isScanID(_ text: String) -> Bool {
    let parts = text.split(separator: "_", omittingEmptySubsequences: false)
    return parts.count == 2 && parts.allSatisfy { $0.utf8.count == 32 && $0.utf8.allSatisfy(\.isHexDigit) }
}

extension UInt8 {
    var isHexDigit: Bool {
        (48...57).contains(self) || (65...70).contains(self) || (97...102).contains(self)
    }
}
