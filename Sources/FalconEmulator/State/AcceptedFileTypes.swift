/// Sample Uploads v3's accepted file types (fact sheet §4.1 [SPEC]), recognised by the upload's
/// file name or by the content's leading bytes.
///
/// PE, Office, PDF, APK, executable JAR, .sct, .lnk, .chm, .hta, .wsf, .js, .vbs/.vbe, .swf,
/// .pl, .ps1/.psd1/.psm1, .svg, .py, Linux ELF, .eml and .msg. Plain text is not on the list.
enum AcceptedFileTypes {
    static let extensions: Set<String> = [
        // PE
        "exe", "scr", "pif", "dll", "com", "cpl", "sys", "ocx", "drv", "efi",
        // Office
        "doc", "docx", "ppt", "pps", "pptx", "ppsx", "xls", "xlsx", "rtf", "pub",
        "docm", "xlsm", "pptm", "dot", "dotx", "xlt", "xltx",
        "pdf", "apk", "jar",
        "sct", "lnk", "chm", "hta", "wsf", "js", "vbs", "vbe", "swf", "pl",
        "ps1", "psd1", "psm1", "svg", "py",
        "elf", "so",
        "eml", "msg",
    ]

    /// Leading bytes of accepted formats: PE (`MZ`), ELF, PDF, OLE2 (Office 97, .msg), ZIP
    /// (Office Open XML, APK, JAR), RTF, SWF, LNK and CHM.
    static let magics: [[UInt8]] = [
        Array("MZ".utf8),
        [0x7F, 0x45, 0x4C, 0x46],
        Array("%PDF".utf8),
        [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1],
        [0x50, 0x4B, 0x03, 0x04],
        Array(#"{\rtf"#.utf8),
        Array("FWS".utf8), Array("CWS".utf8), Array("ZWS".utf8),
        [0x4C, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00],
        Array("ITSF".utf8),
    ]

    /// Whether a sample named `fileName` starting with `head` is of an accepted type.
    static func accepts(fileName: String?, head: [UInt8]) -> Bool {
        if let fileName, let dot = fileName.lastIndex(of: "."), fileName.index(after: dot) != fileName.endIndex {
            let suffix = fileName[fileName.index(after: dot)...].lowercased()
            if extensions.contains(suffix) { return true }
        }
        return magics.contains { head.starts(with: $0) }
    }
}
