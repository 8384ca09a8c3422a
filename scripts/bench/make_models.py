#!/usr/bin/env python3
"""Builds the benchmark models with torch into a folder (not committed):

    .venv/bin/python scripts/bench/make_models.py OUT_DIR

mlp.onnx          784-512-512-10, ReLU
cnn.onnx          Conv 3->32 3x3, ReLU, MaxPool 2, Conv 32->64 3x3, ReLU, MaxPool 2, Linear -> 10 (1x3x64x64)
transformer.onnx  nn.TransformerEncoderLayer(d_model 128, 4 heads, FFN 512), seq 64, eval mode
resnet.onnx       stem conv + BatchNorm + 2 residual basic blocks (32 and 64 channels), global pool, Linear
lstm.onnx         2-layer LSTM (input 64, hidden 128) over seq 32, Linear on the last step

Every model has a symbolic batch dimension. Each file is written once (an existing file is kept)
so repeated runs reuse them.
"""
import os
import sys

import torch
from torch import nn

torch.manual_seed(0)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(64 * 16 * 16, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        s = x if self.short is None else self.short(x)
        return torch.relu(y + s)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.layers = nn.Sequential(Block(32, 32, 1), Block(32, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        y = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class LSTMModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(64, 128, num_layers=2, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y[:, -1])


class Encoder(nn.Module):
    """One encoder layer, called with its mask arguments spelled out (the tracer otherwise turns
    `is_causal` into a tensor that scaled_dot_product_attention rejects)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.1, batch_first=True)

    def forward(self, x):
        return self.layer(x, src_mask=None, src_key_padding_mask=None, is_causal=False)


def randomise_bn(model):
    """Non-trivial BatchNorm statistics, so folding them is really tested."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


MODELS = {
    "mlp": (MLP, (1, 784)),
    "cnn": (CNN, (1, 3, 64, 64)),
    "transformer": (Encoder, (1, 64, 128)),
    "resnet": (ResNet, (1, 3, 32, 32)),
    "lstm": (LSTMModel, (1, 32, 64)),
}


def export(name, out_dir):
    path = os.path.join(out_dir, name + ".onnx")
    if os.path.exists(path):
        return path
    make, shape = MODELS[name]
    model = make()
    randomise_bn(model)
    model.eval()
    x = torch.randn(*shape)
    tmp = path + ".tmp"
    torch.onnx.export(model, (x,), tmp, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    os.replace(tmp, path)
    return path


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for name in MODELS:
        print(export(name, out_dir))


if __name__ == "__main__":
    main()
