import Hummingbird
import NIOCore

/// Request context that keeps the connection's `Channel`, so faults can close it without
/// answering (`drop`, `lost-response`).
struct EmulatorRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        channel = source.channel
    }

    /// Uploads are streamed, never collected, so Hummingbird's collection limit is only a
    /// backstop: above the largest sample the emulator accepts (§4.1: 256 MB) plus form overhead.
    var maxUploadSize: Int { 1 << 40 }
}
