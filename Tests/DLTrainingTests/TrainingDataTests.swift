import DLKit
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// The `.npz` and `.csv` loaders behind `dltrain --data`: arrays written by NumPy itself (stored
/// and deflated members, several dtypes) read back exactly, and bad input fails with a message that
/// names the file and the fault.
@Suite(.serialized)
struct TrainingDataTests {
    /// Runs `code` with the venv's Python (numpy) in `dir`.
    static func python(_ code: String, in dir: TemporaryFolder) throws {
        let r = try runProcess(TestPackage.python, ["-c", "import os; os.chdir(\(quote(dir.file("")))); " + code])
        #expect(r.status == 0, "\(r.stderr)")
    }

    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'" }

    static func message(_ body: () throws -> Void) -> String {
        do { try body(); Issue.record("expected an error"); return "" } catch { return "\(error)" }
    }

    @Test(.enabled(if: TestPackage.hasPython), arguments: ["savez", "savez_compressed"])
    func npzWrittenByNumPyReadsBack(writer: String) throws {
        let tmp = TemporaryFolder()
        try Self.python("""
        import numpy as np
        x = (np.arange(24, dtype=np.float32).reshape(6, 2, 2) - 7.5) / 3
        np.\(writer)('d.npz', feats=x, cls=np.array([0, 2, 1, 1, 0, 2], dtype=np.int64),
                     reg=np.linspace(-1, 1, 12).reshape(6, 2), small=np.arange(6, dtype=np.int32),
                     half=np.ones((6, 1), dtype=np.float16) / 4, f=np.ones((6, 3), order='F'))
        """, in: tmp)
        let d = try TrainingData.load(path: tmp.file("d.npz"), inputName: "feats", targetName: "cls")
        #expect(try d.inputs.dtype == .float32 && d.inputs.shape == [6, 2, 2])
        #expect(try d.inputs.doubles() == (0..<24).map { Double((Float($0) - 7.5) / 3) })
        #expect(d.targets.dtype == .int64 && d.targets.shape == [6])
        #expect(d.targets.doubles() == [0, 2, 1, 1, 0, 2])
        let e = try TrainingData.load(path: tmp.file("d.npz"), inputName: "half", targetName: "reg")
        #expect(try e.inputs.dtype == .float16 && e.inputs.doubles() == Array(repeating: 0.25, count: 6))
        #expect(e.targets.dtype == .float64 && e.targets.shape == [6, 2])
        #expect(allClose(e.targets.doubles(), (0..<12).map { -1 + 2 * Double($0) / 11 }, rtol: 1e-15, atol: 1e-15))
        let s = try TrainingData.load(path: tmp.file("d.npz"), inputName: "small", targetName: "cls")
        #expect(try s.inputs.dtype == .int32 && s.inputs.doubles() == [0, 1, 2, 3, 4, 5])
        // A 2-D array NumPy stores in Fortran order (a 1-row or 1-column array would be both).
        let f = Self.message { _ = try TrainingData.load(path: tmp.file("d.npz"), inputName: "f", targetName: "cls") }
        #expect(f.contains("d.npz") && f.contains("Fortran"), "\(f)")
    }

    @Test(.enabled(if: TestPackage.hasPython))
    func npzBadInput() throws {
        let tmp = TemporaryFolder()
        try Self.python("""
        import numpy as np, zipfile
        np.savez('rows.npz', x=np.zeros((5, 3), np.float32), y=np.zeros((4,), np.int64))
        np.savez('ok.npz', x=np.zeros((5, 3), np.float32), y=np.zeros((5,), np.int64))
        np.savez('obj.npz', x=np.array(['a', 'b']), y=np.zeros((2,), np.int64))
        np.savez('big.npz', x=np.zeros((5, 3), np.dtype('>f4')), y=np.zeros((5,), np.int64))
        raw = open('ok.npz', 'rb').read()
        open('cut.npz', 'wb').write(raw[:len(raw) // 2])
        with zipfile.ZipFile('short.npz', 'w') as z:
            b = open('x.npy', 'wb'); np.save(b, np.zeros((5, 3), np.float32)); b.close()
            z.writestr('x.npy', open('x.npy', 'rb').read()[:-8])
            z.writestr('y.npy', open('x.npy', 'rb').read())
        open('notnpy.npz', 'wb').close()
        with zipfile.ZipFile('notnpy.npz', 'w') as z:
            z.writestr('x.npy', b'hello, world')
            z.writestr('y.npy', b'hello, world')
        """, in: tmp)
        let cases: [(String, String, String, [String])] = [
            ("rows.npz", "x", "y", ["rows.npz", "5 samples", "targets 4"]),
            ("ok.npz", "feats", "y", ["ok.npz", "no array 'feats'", "arrays: x, y"]),
            ("ok.npz", "x", "labels", ["no array 'labels'", "arrays: x, y"]),
            ("obj.npz", "x", "y", ["obj.npz", "x.npy", "dtype '<U1' is not supported"]),
            ("big.npz", "x", "y", ["big.npz", "dtype '>f4' is not supported"]),
            ("short.npz", "x", "y", ["short.npz", "x.npy", "data bytes"]),
            ("notnpy.npz", "x", "y", ["notnpy.npz", "bad magic"]),
            ("cut.npz", "x", "y", ["cut.npz"]),
            ("absent.npz", "x", "y", ["absent.npz"]),
        ]
        for (file, x, y, needles) in cases {
            let m = Self.message { _ = try TrainingData.load(path: tmp.file(file), inputName: x, targetName: y) }
            for n in needles { #expect(m.contains(n), "\(file): '\(m)' lacks '\(n)'") }
            #expect(!m.contains("\n"), "\(m)")
        }
    }

    @Test func csvReadsColumnsByName() throws {
        let tmp = TemporaryFolder()
        try "a, b ,label,c\n1,2.5,0,-3\n\n4,5e-1,2,6\n-7,8,1,9\n".write(toFile: tmp.file("d.csv"), atomically: true, encoding: .utf8)
        let all = try TrainingData.load(path: tmp.file("d.csv"), targetColumn: "label", integerTargets: true)
        #expect(try all.inputs.shape == [3, 3] && all.inputs.dtype == .float32)
        #expect(try all.inputs.doubles() == [1, 2.5, -3, 4, 0.5, 6, -7, 8, 9])
        #expect(all.targets.dtype == .int64 && all.targets.doubles() == [0, 2, 1])
        let some = try TrainingData.load(path: tmp.file("d.csv"), inputColumns: ["c", "a"], targetColumn: "b")
        #expect(try some.inputs.shape == [3, 2] && some.inputs.doubles() == [-3, 1, 6, 4, 9, -7])
        #expect(some.targets.shape == [3, 1] && some.targets.dtype == .float32 && some.targets.doubles() == [2.5, 0.5, 8])
    }

    @Test func csvBadInput() throws {
        let tmp = TemporaryFolder()
        let files = [
            "ok.csv": "a,b,y\n1,2,0\n3,4,1\n",
            "text.csv": "a,b,y\n1,2,0\n3,four,1\n",
            "badtarget.csv": "a,b,y\n1,2,0\n3,4,one\n",
            "fraction.csv": "a,b,y\n1,2,0\n3,4,1.5\n",
            "ragged.csv": "a,b,y\n1,2,0\n3,4\n",
            "blank.csv": "a,b,y\r\n\r\n1,2,0\r\n\r\n3,x,1\r\n",
            "long.csv": "a,b,y\n1,2,0,9\n",
            "empty.csv": "\n\n",
            "headeronly.csv": "a,b,y\n",
        ]
        for (n, text) in files { try text.write(toFile: tmp.file(n), atomically: true, encoding: .utf8) }
        try Data([0x61, 0x2c, 0x79, 0x0a, 0xff, 0xfe, 0x2c, 0x31, 0x0a]).write(to: tmp.url("latin.csv"))
        let cases: [(String, [String], String?, Bool, [String])] = [
            ("ok.csv", [], "label", false, ["ok.csv", "no column 'label'", "columns: a, b, y"]),
            ("ok.csv", ["a", "z"], "y", false, ["ok.csv", "no column 'z'"]),
            ("ok.csv", [], nil, false, ["ok.csv", "target column"]),
            ("text.csv", [], "y", false, ["text.csv", "line 3", "column 'b'", "'four' is not a number"]),
            ("badtarget.csv", [], "y", false, ["badtarget.csv", "line 3", "column 'y'", "'one' is not a number"]),
            ("fraction.csv", [], "y", true, ["fraction.csv", "line 3", "'1.5' is not an integer"]),
            ("ragged.csv", [], "y", false, ["ragged.csv", "line 3 has 2 fields, the header 3"]),
            ("blank.csv", [], "y", false, ["blank.csv", "line 5, column 'b': 'x' is not a number"]),
            ("long.csv", [], "y", false, ["long.csv", "line 2 has 4 fields"]),
            ("empty.csv", [], "y", false, ["empty.csv", "empty"]),
            ("headeronly.csv", [], "y", false, ["headeronly.csv", "no samples"]),
            ("latin.csv", [], "y", false, ["latin.csv", "UTF-8"]),
            ("absent.csv", [], "y", false, ["absent.csv"]),
        ]
        for (file, inputs, target, ints, needles) in cases {
            let m = Self.message {
                _ = try TrainingData.load(path: tmp.file(file), inputColumns: inputs, targetColumn: target, integerTargets: ints)
            }
            for n in needles { #expect(m.contains(n), "\(file): '\(m)' lacks '\(n)'") }
            #expect(!m.contains("\n"), "\(m)")
        }
    }

    /// The same run on the same numbers as .safetensors, as .npz (deflated and stored) and as a
    /// folder of .npy files ends bit-identical.
    @Test(.enabled(if: TestPackage.hasPython))
    func dltrainOnNpzMatchesSafetensors() throws {
        let tmp = TemporaryFolder()
        let st = TestPackage.fixture("training/mlp.data.safetensors")
        try Self.python("""
        import numpy as np
        from safetensors.numpy import load_file
        d = load_file(\(Self.quote(st)))
        np.savez_compressed('d.npz', **d)
        np.savez('stored.npz', **d)
        os.mkdir('arrays')
        for k, v in d.items(): np.save(f'arrays/{k}.npy', v)
        """, in: tmp)
        let tool = TestPackage.tool("dltrain")
        let flags = ["--input", "x", "--target", "y", "--loss", "cross_entropy", "--batch-size", "8", "--seed", "3",
                     "--optimizer", "sgd", "--lr", "0.05", "--steps", "4"]
        let model = TestPackage.fixture("training/mlp.onnx")
        let a = try runProcess(tool, [model, "--data", st, "--out", tmp.file("a.ckpt")] + flags)
        #expect(a.status == 0, "\(a.stderr)")
        let ta = try SafeTensorsFile(path: tmp.file("a.ckpt")).tensors()
        for (k, data) in ["d.npz", "stored.npz", "arrays"].enumerated() {
            let b = try runProcess(tool, [model, "--data", tmp.file(data), "--out", tmp.file("b\(k).ckpt")] + flags)
            #expect(b.status == 0, "\(data): \(b.stderr)")
            let tb = try SafeTensorsFile(path: tmp.file("b\(k).ckpt")).tensors()
            #expect(ta.count == tb.count && ta.count > 0, "\(data)")
            for ((na, x), (nb, y)) in zip(ta, tb) { #expect(na == nb && x.bitwiseEqual(y), "\(data): \(na)") }
        }
    }

    /// A folder of .npy files is a view of the mapped files: loading 128 MiB of inputs leaves them
    /// there (`isMapped`, and the process's anonymous memory grows by far less than the data,
    /// where reading them would add all 128 MiB); a batch and a validation split copy only their
    /// rows. The stored members of an .npz stay in the file too (streamed row by row when not
    /// aligned); deflated members are read whole.
    @Test(.enabled(if: TestPackage.hasPython))
    func npyAndStoredNpzAreMemoryMapped() throws {
        let tmp = TemporaryFolder()
        try Self.python("""
        import numpy as np
        os.mkdir('arrays')
        x = np.lib.format.open_memmap('arrays/x.npy', mode='w+', dtype=np.float32, shape=(8192, 4096))
        x[:, 0] = np.arange(8192); x[:, 4095] = -np.arange(8192); del x
        np.save('arrays/y.npy', np.arange(8192, dtype=np.int64) % 3)
        small = np.arange(24, dtype=np.float32).reshape(6, 4)
        np.savez('stored.npz', x=small, y=np.arange(6, dtype=np.int64))
        np.savez_compressed('deflated.npz', x=small, y=np.arange(6, dtype=np.int64))
        """, in: tmp)
        let before = Self.anonymousResidentBytes()
        let d = try TrainingData.load(path: tmp.file("arrays"))
        let grown = Self.anonymousResidentBytes() - before
        #expect(try d.inputs.isMapped && d.targets.isMapped)
        #expect(grown < 32 << 20, "loading 128 MiB of .npy grew anonymous memory by \(grown >> 20) MiB")
        #expect(try d.inputs.shape == [8192, 4096])
        let batch = try d.batch([8191, 5])
        let rows = batch.inputs.scalars(as: Float.self)
        #expect(rows[0] == 8191 && rows[4095] == -8191 && rows[4096] == 5 && rows[8191] == -5)
        #expect(batch.targets.scalars(as: Int64.self) == [8191 % 3, 5 % 3])
        #expect(try d.subset(8000..<8192).inputs.isMapped)

        // np.savez's members start wherever the zip's local headers leave them (x's data at byte
        // 183, not a multiple of 4): such inputs stream row by row from the mapping.
        let stored = try TrainingData.load(path: tmp.file("stored.npz"))
        #expect(try stored.isStreamed || stored.inputs.isMapped)
        #expect(try stored.batch([4, 1]).inputs.scalars(as: Float.self) == [16, 17, 18, 19, 4, 5, 6, 7])
        #expect(try stored.subset(2..<6).batch([0]).inputs.scalars(as: Float.self) == [8, 9, 10, 11])
        #expect(try stored.inputs.scalars(as: Float.self) == (0..<24).map(Float.init))
        #expect(stored.targets.scalars(as: Int64.self) == [0, 1, 2, 3, 4, 5])
        let deflated = try TrainingData.load(path: tmp.file("deflated.npz"))
        #expect(try !deflated.inputs.isMapped && deflated.inputs.scalars(as: Float.self) == (0..<24).map(Float.init))
    }

    /// RssAnon of /proc/self/status: resident memory not backed by a file (a mapped file's pages
    /// count under RssFile instead).
    static func anonymousResidentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }
}
