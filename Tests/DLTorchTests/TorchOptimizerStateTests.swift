import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

@testable import DLTorch

@Suite struct TorchOptimizerStateTests {
    @Test func readsAdamStateOfTheCheckpointFixtureByParameterName() throws {
        let f = try TorchFile(path: TestPackage.fixture("torch/checkpoint.pt"))
        let opt = try TorchOptimizerState(try f.value(at: "optimizer"), file: f)
        #expect(opt.kind == .adam)
        guard case .bool(true)? = opt.groups[0]["amsgrad"], case .float(0.01)? = opt.groups[0]["lr"] else {
            Issue.record("hyperparameters"); return
        }
        let names = try f.stateDict(key: "model").names
        let slots = try opt.slots(parameterNames: names)
        let want = try SafeTensorsFile(path: TestPackage.fixture("torch/checkpoint.expected.safetensors"))
        for (i, name) in names.enumerated() {
            for slot in ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"] {
                let expected = try want.tensor(named: "optimizer.state.\(i).\(slot)")
                #expect(slots[name]?[slot]?.bitwiseEqual(expected) == true, "\(name).\(slot)")
            }
        }
        do {
            _ = try opt.slots(parameterNames: ["only.one"])
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("4 parameters"))
        }
    }

    /// Each optimizer's state, taken apart by name and rebuilt by DLKit, loads into the same torch
    /// optimizer with `load_state_dict` to identical tensors and hyperparameters, and steps.
    @Test(.enabled(if: TestPackage.hasPython), arguments: TorchOptimizerState.Kind.allCases)
    func stateRebuiltByNameLoadsIntoTorch(kind: TorchOptimizerState.Kind) throws {
        let dir = TemporaryFolder()
        let make: String = switch kind {
        case .sgd: "torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True)"
        case .adam: "torch.optim.Adam(m.parameters(), lr=0.01, amsgrad=True)"
        case .adamw: "torch.optim.AdamW(m.parameters(), lr=0.01, weight_decay=0.05)"
        case .rmsprop: "torch.optim.RMSprop(m.parameters(), lr=0.01, momentum=0.5, centered=True)"
        }
        let prelude = """
            import sys, torch
            torch.manual_seed(0)
            m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
            opt = \(make)
            """
        let save = prelude + """

            for _ in range(3):
                opt.zero_grad(); m(torch.randn(5, 3)).pow(2).sum().backward(); opt.step()
            torch.save({"model": m.state_dict(), "optimizer": opt.state_dict()}, sys.argv[1])
            """
        var r = try runProcess(TestPackage.python, ["-c", save, dir.file("a.pt")])
        #expect(r.status == 0, "\(r.stderr)")

        let f = try TorchFile(path: dir.file("a.pt"))
        let read = try TorchOptimizerState(try f.value(at: "optimizer"), file: f)
        #expect(read.kind == kind)
        let names = try f.stateDict(key: "model").names
        let slots = try read.slots(parameterNames: names)
        var hyper: [String: TorchValue] = [:]
        for e in read.groups[0].hyperparameters { if let k = e.key.keyComponent { hyper[k] = e.value } }
        let rebuilt = TorchOptimizerState(kind: kind, parameterNames: names, slots: slots, hyperparameters: hyper)
        try TorchWriter.write(rebuilt.torchValue, to: dir.file("b.pt"))

        let check = prelude + """

            a = torch.load(sys.argv[1], weights_only=True)["optimizer"]
            b = torch.load(sys.argv[2], weights_only=True)
            opt.load_state_dict(b)
            got = opt.state_dict()
            assert got["param_groups"] == a["param_groups"], (got["param_groups"], a["param_groups"])
            assert got["state"].keys() == a["state"].keys()
            for i, st in a["state"].items():
                assert st.keys() == got["state"][i].keys(), (st.keys(), got["state"][i].keys())
                for k, v in st.items():
                    assert torch.equal(v, got["state"][i][k]), (i, k)
            m(torch.randn(5, 3)).sum().backward(); opt.step()
            print("ok")
            """
        r = try runProcess(TestPackage.python, ["-c", check, dir.file("a.pt"), dir.file("b.pt")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ok"))
    }
}
