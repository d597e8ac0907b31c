/// A request the emulator refuses. With ``isViolation`` the client broke the wire contract of
/// the fact sheet, and the message is also added to ``FalconEmulator/violations``.
struct RequestRejection: Error, CustomStringConvertible {
    var status: Int
    var message: String
    var isViolation: Bool

    var description: String { "\(status): \(message)" }

    static func violation(_ message: String, status: Int = 400) -> RequestRejection {
        RequestRejection(status: status, message: message, isViolation: true)
    }

    static func refusal(_ status: Int, _ message: String) -> RequestRejection {
        RequestRejection(status: status, message: message, isViolation: false)
    }
}
