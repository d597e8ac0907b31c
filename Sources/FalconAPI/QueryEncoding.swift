/// Percent-encodes a query component, leaving only RFC 3986 unreserved characters as they are.
///
/// FQL uses `+` for AND; an unencoded `+` reads as a space on the server (reference §5.3), so
/// it must go out as `%2B` — `URLComponents` would leave it alone.
func percentEncodeQueryComponent(_ value: String) -> String {
    var out = ""
    out.reserveCapacity(value.utf8.count)
    for byte in value.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.unicodeScalars.append(UnicodeScalar(byte))
        default:
            let hex = Array("0123456789ABCDEF".unicodeScalars)
            out.unicodeScalars.append("%")
            out.unicodeScalars.append(hex[Int(byte >> 4)])
            out.unicodeScalars.append(hex[Int(byte & 0x0f)])
        }
    }
    return out
}

/// `k=v&k=v` with every key and value percent-encoded; used for query strings and form bodies.
func encodeQuery(_ items: [(String, String)]) -> String {
    items.map { percentEncodeQueryComponent($0.0) + "=" + percentEncodeQueryComponent($0.1) }.joined(separator: "&")
}
