import DLSupport
import DLTensor
import DLTestSupport
import DLTraining
import Foundation
import Testing

/// TensorBoard event files: the checksum, the framing, and tensorboard's own reader.
@Suite(.serialized)
struct TensorBoardTests {
    @Test func crc32cOfTheStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.unmask(CRC32C.mask(0xDEAD_BEEF)) == 0xDEAD_BEEF)
    }

    @Test func recordsFrameLengthDataAndMaskedChecksums() {
        let r = TensorBoardWriter.record([1, 2, 3])
        #expect(r.count == 8 + 4 + 3 + 4)
        #expect(Array(r[0..<8]) == [3, 0, 0, 0, 0, 0, 0, 0])
        let lengthCRC = r[8..<12].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        #expect(lengthCRC == CRC32C.mask(CRC32C.checksum(Array(r[0..<8]))))
        #expect(Array(r[12..<15]) == [1, 2, 3])
    }

    /// dltrain --log-dir writes what tensorboard's EventAccumulator reads: every epoch value of
    /// the CSV log, as epoch_<name> at step = epoch.
    @Test(.enabled(if: TestPackage.hasPython, "needs the project venv (scripts/bootstrap) for tensorboard"))
    func tensorboardReadsTheEpochScalars() throws {
        let tmp = TemporaryFolder()
        let r = try runProcess(TestPackage.tool("dltrain"), [
            TestPackage.fixture("training/mlp.onnx"), "--data", TestPackage.fixture("training/mlp.data.safetensors"), "--input", "x", "--target", "y",
            "--loss", "cross_entropy", "--batch-size", "16", "--epochs", "3", "--val-split", "0.25", "--metrics", "accuracy",
            "--log-dir", tmp.file("logs"), "--log-every", "2", "--csv-log", tmp.file("log.csv"), "--out", tmp.file("out.ckpt"),
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let script = """
            import sys, csv
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            acc = EventAccumulator(sys.argv[1]); acc.Reload()
            tags = acc.Tags()["scalars"]
            rows = list(csv.DictReader(open(sys.argv[2])))
            for row in rows:
                for k, v in row.items():
                    if k == "epoch": continue
                    ev = [e for e in acc.Scalars("epoch_" + k) if e.step == int(row["epoch"])]
                    assert len(ev) == 1, (k, row["epoch"])
                    assert abs(ev[0].value - float(v)) <= 1e-6 * max(1, abs(float(v))), (k, ev[0].value, v)
            assert [e.step for e in acc.Scalars("batch_loss")] == [2, 4, 6, 8], acc.Scalars("batch_loss")
            print(len(rows), sorted(tags))
            """
        let o = try runProcess(TestPackage.python, ["-c", script, tmp.file("logs"), tmp.file("log.csv")])
        #expect(o.status == 0, "\(o.stdout) \(o.stderr)")
        #expect(o.stdout.hasPrefix("3 ['batch_loss', 'batch_lr', 'epoch_accuracy', 'epoch_loss', 'epoch_lr', 'epoch_val_accuracy', 'epoch_val_loss']"), "\(o.stdout)")
    }
}
