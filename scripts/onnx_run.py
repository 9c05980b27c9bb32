"""Runs an ONNX model in ONNX Runtime on inputs rdd wrote, for `rdd export --check` (which compares).

    onnx_run.py MODEL.onnx CASES.safetensors RESULTS.safetensors [--repeat N]

CASES holds "<case>.image" tensors (float32 (N, 3, H, W)); RESULTS receives every graph output of every case
as "<case>.<output name>" and, in its metadata, "<case>.ort_ms" (the median wall time of N timed runs after
one warm-up, milliseconds), "onnxruntime" (the version), "providers", and "meta.<key>" for each of the
model's metadata_props as ONNX Runtime reads them (rdd checks that the deployment metadata made it).

Exit codes: 0 done; 3 ONNX Runtime is not installed for this Python (the message says how to install it);
2 bad arguments or inputs (the message names the file and the problem).
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("cases")
    p.add_argument("results")
    p.add_argument("--repeat", type=int, default=1, help="timed runs per case after one warm-up")
    a = p.parse_args()
    try:
        import onnxruntime as ort
    except ImportError as e:
        print(f"onnx_run.py: ONNX Runtime is not installed for {sys.executable} ({e}); run scripts/setup.sh "
              f"(or: {sys.executable} -m pip install --break-system-packages onnxruntime)", file=sys.stderr)
        return 3
    if a.repeat < 1:
        print(f"onnx_run.py: --repeat {a.repeat} must be at least 1", file=sys.stderr)
        return 2
    try:
        cases, _ = st.load(a.cases)
    except (OSError, ValueError) as e:
        print(f"onnx_run.py: {a.cases}: {e}", file=sys.stderr)
        return 2
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        print(f"onnx_run.py: {a.model} has {len(inputs)} inputs, expected one image", file=sys.stderr)
        return 2
    input_name = inputs[0].name
    output_names = [o.name for o in session.get_outputs()]
    results = {}
    metadata = {"onnxruntime": ort.__version__, "providers": ",".join(session.get_providers())}
    for key, value in session.get_modelmeta().custom_metadata_map.items():
        metadata["meta." + key] = value
    images = sorted(k for k in cases if k.endswith(".image"))
    if not images:
        print(f"onnx_run.py: {a.cases} holds no '<case>.image' tensors", file=sys.stderr)
        return 2
    for key in images:
        case = key[: -len(".image")]
        feed = {input_name: cases[key]}
        outputs = session.run(output_names, feed)  # warm-up (and the result)
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            session.run(output_names, feed)
            times.append(1000.0 * (time.perf_counter() - t0))
        for name, value in zip(output_names, outputs):
            results[f"{case}.{name}"] = value
        metadata[f"{case}.ort_ms"] = f"{statistics.median(times):.4f}"
    st.save(a.results, results, metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main())
