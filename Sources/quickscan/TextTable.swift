/// A plain-text table with aligned columns for terminal output.
struct TextTable {
    var headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) {
        self.headers = headers
    }

    init(headers: [String]) {
        self.headers = headers
    }

    mutating func add(_ cells: String...) {
        rows.append(cells)
    }

    mutating func add(row cells: [String]) {
        rows.append(cells)
    }

    /// Rendered with two spaces between columns; control characters in cells are escaped so a
    /// hostile file name cannot break the layout.
    func render() -> String {
        let all = [headers] + rows.map { $0.map(Self.clean) }
        var widths = [Int](repeating: 0, count: headers.count)
        for row in all {
            for (i, cell) in row.enumerated() where i < widths.count {
                widths[i] = max(widths[i], cell.count)
            }
        }
        return all.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i])
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func clean(_ cell: String) -> String {
        var out = ""
        for scalar in cell.unicodeScalars {
            // C0, DEL, C1 and the bidi controls: a file name never forges a line or a column,
            // nor reorders what the terminal shows.
            if scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) || [0x061c, 0x200e, 0x200f].contains(scalar.value)
                || (0x202a...0x202e).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value) {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension String {
    func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }
}
