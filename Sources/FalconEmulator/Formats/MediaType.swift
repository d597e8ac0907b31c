/// A parsed `Content-Type`: lower-cased `type/subtype` and its parameters.
struct MediaType: Sendable, Equatable {
    var essence: String
    var parameters: [String: String]

    /// Reads `multipart/form-data; boundary="abc"`; nil for an empty header.
    init?(_ header: String?) {
        guard let header else { return nil }
        let pieces = Self.splitParameters(header)
        guard let first = pieces.first?.trimmingSpaces.lowercased(), !first.isEmpty else { return nil }
        essence = first
        parameters = [:]
        for piece in pieces.dropFirst() {
            guard let equals = piece.firstIndex(of: "=") else { continue }
            let key = String(piece[..<equals]).trimmingSpaces.lowercased()
            var value = String(piece[piece.index(after: equals)...]).trimmingSpaces
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast()).replacingBackslashEscapes
            }
            parameters[key] = value
        }
    }

    /// Splits on `;` outside double quotes.
    static func splitParameters(_ header: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in header {
            if escaped {
                current.append(character)
                escaped = false
                continue
            }
            if character == "\\", quoted { escaped = true; current.append(character); continue }
            if character == "\"" { quoted.toggle() }
            if character == ";", !quoted {
                pieces.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        pieces.append(current)
        return pieces
    }
}

extension String {
    /// `a\"b` → `a"b`: the quoted-string escapes of HTTP headers.
    var replacingBackslashEscapes: String {
        var out = ""
        var escaped = false
        for character in self {
            if escaped {
                out.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                out.append(character)
            }
        }
        return out
    }
}
