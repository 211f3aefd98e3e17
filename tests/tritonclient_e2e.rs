//! A client flowc did not write: NVIDIA's Triton Python client (`tritonclient` 2.73.0 from
//! PyPI, a KServe V2 client) calls a pipeline through `flowc gateway` over HTTP and gRPC with
//! the `Seldon-Model` header, as Seldon users do, and gets the right tensors
//! (`tests/tritonclient/call_gateway.py`). Over HTTP both with the client's defaults (tensors as
//! binary data: Triton's binary tensor data extension) and with tensors as JSON.
//!
//! Needs the broker (`scripts/install-kafka.sh`) and the Python venv: `FLOWC_MLSERVER_BIN` is
//! its bin dir, printed by `scripts/setup-python.sh` (both run by `scripts/test.sh`).

mod support;

use std::process::Command;

use support::{mlserver_bin, root, Env};

#[test]
fn tritonclient_calls_a_pipeline_over_http_and_grpc() {
    let mut env = Env::start();
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 2);
    env.start_worker("worker");
    let gw = env.start_gateway("gateway", &[]);
    env.wait_pipeline_ready(&gw.http, "tfsimples");
    let out = Command::new(mlserver_bin().join("python"))
        .arg(root().join("tests/tritonclient/call_gateway.py"))
        .args([
            gw.http.trim_start_matches("http://"),
            gw.grpc.trim_start_matches("http://"),
            "tfsimples",
        ])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tritonclient failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        env.logs()
    );
    let expected: Vec<i32> = (1..=16).map(|v| 2 * v).collect();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, protocol) in lines.iter().zip(["http-binary", "http-json", "grpc"]) {
        assert_eq!(line["protocol"], protocol);
        assert_eq!(line["model_name"], "tfsimples", "{line}");
        for name in ["OUTPUT0", "OUTPUT1"] {
            assert_eq!(
                line["outputs"][name],
                serde_json::json!([expected]),
                "{protocol} {name}: {line}"
            );
        }
    }
}
