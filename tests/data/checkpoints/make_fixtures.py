#!/usr/bin/python3
"""Regenerates the PyTorch checkpoint fixtures of tests/io/checkpoint_test.cpp.

NOT needed to build or test sepmech: the generated files are committed. Run it only to change
the fixtures, with Debian's python3-torch (tested with 1.13):

    /usr/bin/python3 tests/data/checkpoints/make_fixtures.py

Writes, next to this script:
  state_dict.pt         torch.save(model.state_dict()) of a small module: every storage dtype the
                        reader supports, a non-contiguous (transposed) view, two views of one storage
  lightning.ckpt        a Lightning-style nested checkpoint (state_dict, optimizer_states, hparams,
                        an nn.Parameter), pickle protocol 4 (FRAME/MEMOIZE/STACK_GLOBAL opcodes)
  legacy.pt             the same state dict in the legacy (pre-1.6, non-zip) format; must be refused
  expected.safetensors  the values both checkpoints must load to, under the flattened key names
"""
import collections
import json
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1234)
        self.lin = torch.nn.Linear(3, 2)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(2, 3, generator=g))
            self.lin.bias.copy_(torch.randn(2, generator=g))
        self.norm = torch.nn.BatchNorm1d(2)  # adds a long buffer (num_batches_tracked)
        self.register_buffer("f64", torch.randn(2, 2, generator=g, dtype=torch.float64))
        self.register_buffer("f16", torch.tensor([0.5, -1.25, 65504.0], dtype=torch.float16))
        self.register_buffer("bf16", torch.tensor([1.0, -3.5, 1e30], dtype=torch.bfloat16))
        self.register_buffer("i64", torch.tensor([-(2 ** 62), 0, 7], dtype=torch.int64))
        self.register_buffer("i32", torch.tensor([[-5, 6], [2 ** 31 - 1, -(2 ** 31)]], dtype=torch.int32))
        self.register_buffer("i16", torch.tensor([-300, 300], dtype=torch.int16))
        self.register_buffer("i8", torch.tensor([-128, 127], dtype=torch.int8))
        self.register_buffer("u8", torch.tensor([0, 255, 17], dtype=torch.uint8))
        self.register_buffer("flag", torch.tensor([True, False, True]))
        self.register_buffer("c64", torch.complex(torch.randn(2, 2, generator=g), torch.randn(2, 2, generator=g)))
        self.register_buffer("scalar", torch.tensor(2.5))
        # A transposed (non-contiguous) view: saved with strides (1, 3) into a 12-element storage.
        base = torch.arange(12, dtype=torch.float32).reshape(4, 3)
        self.register_buffer("strided", base.t())
        # Two overlapping views of one storage, at different offsets: one data/ entry.
        shared = torch.arange(10, dtype=torch.float32) * 0.5
        self.register_buffer("shared_a", shared[1:7].view(2, 3))
        self.register_buffer("shared_b", shared[4:10:2])


def write_safetensors(path, tensors, metadata):
    """Minimal safetensors writer (complex as real view listed in metadata 'complex')."""
    names = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
             torch.uint8: "U8", torch.bool: "BOOL"}
    header, blobs, offset, complex_keys = {}, [], 0, []
    for key in sorted(tensors):
        t = tensors[key].detach().contiguous()
        if t.is_complex():
            complex_keys.append(key)
            t = torch.view_as_real(t).contiguous()
        raw = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
        data = raw.numpy().tobytes()
        header[key] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    metadata = dict(metadata)
    if complex_keys:
        metadata["complex"] = ",".join(complex_keys)
    header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    model = Tiny()
    sd = model.state_dict()
    torch.save(sd, os.path.join(HERE, "state_dict.pt"))
    torch.save(sd, os.path.join(HERE, "legacy.pt"), _use_new_zipfile_serialization=False)

    model_sd = collections.OrderedDict(("model." + k, v) for k, v in sd.items())
    g = torch.Generator().manual_seed(99)
    exp_avg_w = torch.randn(2, 3, generator=g)
    extra = torch.nn.Parameter(torch.randn(3, generator=g))
    ckpt = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "1.9.5",
        "state_dict": model_sd,
        "optimizer_states": [{
            "state": {0: {"step": torch.tensor(120.0), "exp_avg": exp_avg_w}},
            "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "amsgrad": False, "params": [0, 1]}],
        }],
        "lr_schedulers": [],
        "callbacks": {},
        "hparams_name": "kwargs",
        "hyper_parameters": {"hidden": 8, "name": "tiny", "dropout": None, "extra": extra},
    }
    torch.save(ckpt, os.path.join(HERE, "lightning.ckpt"), pickle_protocol=4)

    expected = dict(sd)
    expected["lightning.optimizer_states.0.state.0.step"] = torch.tensor(120.0)
    expected["lightning.optimizer_states.0.state.0.exp_avg"] = exp_avg_w
    expected["lightning.hyper_parameters.extra"] = extra.detach()
    write_safetensors(os.path.join(HERE, "expected.safetensors"), expected,
                      {"note": "values of state_dict.pt and lightning.ckpt (make_fixtures.py)"})


if __name__ == "__main__":
    main()
