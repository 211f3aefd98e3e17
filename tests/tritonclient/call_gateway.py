"""Calls a flowc pipeline through the pipeline gateway with NVIDIA's Triton client
(tritonclient, a KServe V2 client flowc did not write), over HTTP and gRPC, the way a Seldon
user does: `model_name` is any name, the `Seldon-Model: <pipeline>.pipeline` header routes it.

Usage: call_gateway.py HTTP_HOST:PORT GRPC_HOST:PORT PIPELINE
Prints one JSON line per call: {"protocol", "model_name", "outputs": {name: [values]}}. Over
HTTP it calls twice: with tritonclient's defaults (tensors as binary data, Triton's binary
tensor data extension, both ways) and with tensors as JSON (binary_data=False).
"""

import json
import sys

import numpy as np


def call_http(url, pipeline, inputs, binary):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=url)
    tensors = []
    for name, array in inputs.items():
        t = httpclient.InferInput(name, list(array.shape), "INT32")
        if binary:
            t.set_data_from_numpy(array)
        else:
            t.set_data_from_numpy(array, binary_data=False)
        tensors.append(t)
    outputs = None if binary else [httpclient.InferRequestedOutput(n, binary_data=False) for n in ("OUTPUT0", "OUTPUT1")]
    result = client.infer(
        model_name=pipeline,
        inputs=tensors,
        outputs=outputs,
        headers={"Seldon-Model": f"{pipeline}.pipeline"},
    )
    response = result.get_response()
    return {
        "protocol": "http-binary" if binary else "http-json",
        "model_name": response.get("model_name"),
        "outputs": {n: result.as_numpy(n).tolist() for n in ("OUTPUT0", "OUTPUT1")},
    }


def call_grpc(url, pipeline, inputs):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=url)
    tensors = []
    for name, array in inputs.items():
        t = grpcclient.InferInput(name, list(array.shape), "INT32")
        t.set_data_from_numpy(array)
        tensors.append(t)
    result = client.infer(
        model_name=pipeline,
        inputs=tensors,
        headers={"seldon-model": f"{pipeline}.pipeline"},
    )
    response = result.get_response()
    return {
        "protocol": "grpc",
        "model_name": response.model_name,
        "outputs": {n: result.as_numpy(n).tolist() for n in ("OUTPUT0", "OUTPUT1")},
    }


def main():
    http_url, grpc_url, pipeline = sys.argv[1:4]
    values = np.arange(1, 17, dtype=np.int32).reshape(1, 16)
    inputs = {"INPUT0": values, "INPUT1": values}
    print(json.dumps(call_http(http_url, pipeline, inputs, binary=True)), flush=True)
    print(json.dumps(call_http(http_url, pipeline, inputs, binary=False)), flush=True)
    print(json.dumps(call_grpc(grpc_url, pipeline, inputs)), flush=True)


if __name__ == "__main__":
    main()
