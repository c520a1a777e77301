#!/usr/bin/env python3
"""Regenerates the seed corpora under fuzz/corpus/ from the committed test fixtures.
Not needed to build, test or fuzz (the seeds are committed); plain python3, no torch."""
import os
import struct
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "data", "checkpoints")
OUT_ST = os.path.join(ROOT, "fuzz", "corpus", "safetensors_fuzz")
OUT_CK = os.path.join(ROOT, "fuzz", "corpus", "checkpoint_fuzz")


def put(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def st(header, data=b""):
    h = header.encode()
    return struct.pack("<Q", len(h)) + h + data


def main():
    # safetensors: a real file plus small hand-made ones
    put(OUT_ST, "expected", open(os.path.join(FIX, "expected.safetensors"), "rb").read())
    put(OUT_ST, "two_i32", st('{"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}', bytes(range(8))))
    put(OUT_ST, "complex", st('{"__metadata__":{"complex":"c"},"c":{"dtype":"F32","shape":[1,2],'
                              '"data_offsets":[0,8]},"e":{"dtype":"BF16","shape":[0,3],"data_offsets":[8,8]}}',
                              bytes(8)))
    put(OUT_ST, "empty", st("{}"))

    # checkpoints, mode 0: whole files
    for name in ("state_dict.pt", "lightning.ckpt", "legacy.pt"):
        put(OUT_CK, "raw_" + name, b"\x00" + open(os.path.join(FIX, name), "rb").read())
    # mode 1: [n][sizes][data.pkl], records data/0..n-1 with the sizes the pickle expects
    for name in ("state_dict.pt", "lightning.ckpt"):
        with zipfile.ZipFile(os.path.join(FIX, name)) as z:
            prefix = [n for n in z.namelist() if n.endswith("/data.pkl")][0][: -len("data.pkl")]
            sizes = []
            while prefix + "data/%d" % len(sizes) in z.namelist():
                sizes.append(z.getinfo(prefix + "data/%d" % len(sizes)).file_size)
            pkl = z.read(prefix + "data.pkl")
        put(OUT_CK, "pkl_" + name, b"\x01" + bytes([len(sizes)]) +
            b"".join(struct.pack("<H", s) for s in sizes) + pkl)


if __name__ == "__main__":
    main()
