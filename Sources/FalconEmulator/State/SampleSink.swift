import Hashing

/// Receives an upload's bytes as they stream in: hashes them, keeps the first 4 KiB for
/// ``SampleKind`` and the whole content only while it stays small.
///
/// Memory stays bounded by `retainLimit` whatever the upload size (256 MiB samples included).
struct SampleSink {
    private let hasher = SHA256Hasher()
    private let retainLimit: Int
    private(set) var size = 0
    private var head: [UInt8] = []
    private var content: [UInt8]? = []

    init(retainLimit: Int) {
        self.retainLimit = retainLimit
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        hasher.update(bytes)
        size += bytes.count
        if head.count < SampleKind.inspectedBytes {
            head.append(contentsOf: bytes.prefix(SampleKind.inspectedBytes - head.count))
        }
        if content != nil {
            if size <= retainLimit {
                content!.append(contentsOf: bytes)
            } else {
                content = nil
            }
        }
    }

    mutating func append(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// The lower-case hex sha256, the kind, the first 4 KiB, and the bytes when they were kept.
    func finish() -> (sha256: String, size: Int, kind: SampleKind, head: [UInt8], content: [UInt8]?) {
        (hasher.finalize(), size, SampleKind.classify(head: head), head, content)
    }
}
