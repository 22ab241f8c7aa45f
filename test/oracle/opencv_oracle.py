#!/usr/bin/env python3
"""OpenCV reference for the image preprocessing tests.

Reads a JSON job from stdin and writes .npy files with what react-native-executorch's
OpenCV pipeline computes for each image, then prints a JSON manifest on stdout.

Job: {"out": DIR, "items": [{"id": ID, "path": FILE, "read": "imread" | "imdecode" | "npy",
       "sizes": [[WIDTH, HEIGHT], ...]}]}
- "imread" decodes FILE with cv2.imread(FILE, IMREAD_COLOR), "imdecode" decodes its bytes
  with cv2.imdecode(..., IMREAD_COLOR), and "npy" loads an RGB uint8 array (H, W, 3) that is
  used as the decoded image.
- For each size, the RGB image is resized with cv2.resize(INTER_LINEAR), skipped when the
  size already matches, as react-native-executorch's VisionModel::preprocess does.

Per item the manifest lists the decoded RGB image (ID.rgb.npy, uint8 HWC) and per size
the resized RGB image (uint8 HWC) and two float32 [1, 3, H, W] tensors:
- legacy: (v - 0 * 255.0) / (1 * 255.0) in float64, stored as float32, the arithmetic of
  colorMatToVector in react-native-executorch 0.5 to 0.9;
- convert: v * float32(1 / 255.0) in float32, the arithmetic of cv::Mat::convertTo(CV_32F,
  1 / 255.0) for 8-bit input (cvt_32f in OpenCV's core/src/convert_scale.simd.hpp:
  fma(v, (float)scale, 0)). Python's cv2 has no binding of Mat::convertTo, so this one is
  computed with NumPy.
An image that OpenCV cannot decode gets "ok": false.
"""
import json
import os
import sys

import cv2
import numpy as np


def decode(item):
    read = item["read"]
    if read == "npy":
        return np.load(item["path"])
    if read == "imread":
        bgr = cv2.imread(item["path"], cv2.IMREAD_COLOR)
    elif read == "imdecode":
        data = np.fromfile(item["path"], dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size > 0 else None
    else:
        raise ValueError(f"unknown read mode {read!r}")
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def planar(values):
    return np.ascontiguousarray(values.transpose(2, 0, 1)[np.newaxis])


def main():
    job = json.load(sys.stdin)
    out = job["out"]
    os.makedirs(out, exist_ok=True)
    manifest = {"opencv": cv2.__version__, "numpy": np.__version__, "items": []}
    for item in job["items"]:
        entry = {"id": item["id"]}
        rgb = decode(item)
        if rgb is None:
            entry["ok"] = False
            manifest["items"].append(entry)
            continue
        entry["ok"] = True
        entry["height"], entry["width"] = int(rgb.shape[0]), int(rgb.shape[1])
        entry["rgb"] = os.path.join(out, f"{item['id']}.rgb.npy")
        np.save(entry["rgb"], rgb)
        entry["outputs"] = []
        for width, height in item.get("sizes", []):
            if (width, height) == (rgb.shape[1], rgb.shape[0]):
                resized = rgb
            else:
                resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
            stem = os.path.join(out, f"{item['id']}.{width}x{height}")
            legacy = ((resized.astype(np.float64) - 0.0 * 255.0) / (1.0 * 255.0)).astype(np.float32)
            convert = resized.astype(np.float32) * np.float32(1.0 / 255.0)
            paths = {"resized": stem + ".resized.npy", "legacy": stem + ".legacy.npy", "convert": stem + ".convert.npy"}
            np.save(paths["resized"], np.ascontiguousarray(resized))
            np.save(paths["legacy"], planar(legacy))
            np.save(paths["convert"], planar(convert))
            entry["outputs"].append({"width": width, "height": height, **paths})
        manifest["items"].append(entry)
    json.dump(manifest, sys.stdout)


if __name__ == "__main__":
    main()
