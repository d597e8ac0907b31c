import CCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Incremental SHA-256 over OpenSSL libcrypto EVP; one instance per thread or task.
///
/// Shaped like swift-crypto's digest API: `init()`, `update`, `finalize()`. The EVP context is
/// owned here and freed in `deinit`. After `finalize()` the hasher is reset and can be reused.
public final class SHA256Hasher {
    private let context: OpaquePointer
    private let md: OpaquePointer

    public init() {
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed: out of memory") }
        // EVP_MD_fetch once per hasher avoids a provider lookup on every DigestInit
        // (reference/swift-on-this-machine.md: about 8 % on small files).
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("libcrypto has no SHA256 provider") }
        self.context = context
        self.md = md
        reset()
    }

    deinit {
        EVP_MD_CTX_free(context)
        EVP_MD_free(md)
    }

    /// Starts a new digest, discarding any data fed so far.
    public func reset() {
        guard EVP_DigestInit_ex(context, md, nil) == 1 else { fatalError("EVP_DigestInit_ex failed") }
    }

    /// Feeds raw bytes.
    public func update(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        guard EVP_DigestUpdate(context, base, buffer.count) == 1 else { fatalError("EVP_DigestUpdate failed") }
    }

    /// Feeds a byte collection.
    public func update<Bytes: ContiguousBytes>(_ bytes: Bytes) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Returns the 32-byte digest and resets the hasher for the next input.
    public func finalizeBytes() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        guard ok == 1, length == 32 else { fatalError("EVP_DigestFinal_ex failed") }
        reset()
        return out
    }

    /// Returns the lower-case hex digest (the Falcon sample id) and resets the hasher.
    public func finalize() -> String {
        SHA256Hasher.hex(finalizeBytes())
    }

    /// One-shot digest of a byte collection, lower-case hex.
    public static func hash<Bytes: ContiguousBytes>(_ bytes: Bytes) -> String {
        let hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Lower-case hex of a digest.
    public static func hex(_ bytes: [UInt8]) -> String {
        var chars = [UInt8]()
        chars.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            chars.append(hexDigits[Int(byte >> 4)])
            chars.append(hexDigits[Int(byte & 0x0f)])
        }
        return String(decoding: chars, as: UTF8.self)
    }
}

/// Protocol for types whose bytes can be hashed; mirrors Foundation's ContiguousBytes without Foundation.
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}
