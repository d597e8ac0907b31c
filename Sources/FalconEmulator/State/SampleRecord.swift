/// An uploaded sample: its identity, what it looks like, and its bytes when small.
struct SampleRecord: Sendable {
    var sha256: String
    var fileName: String
    var size: Int
    var content: [UInt8]?
    var kind: SampleKind
    var comment: String?
    var isConfidential: Bool
    /// On Sample Uploads v3's accepted-type list (``AcceptedFileTypes``).
    var isAcceptedType = true
}
