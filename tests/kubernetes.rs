//! `deploy/kubernetes/flowc.yaml` stays true to the CLI: every container's command line is one
//! that `flowc` accepts, the embedded pipelines compile, the probes hit the ports the commands
//! listen on, and no Deployment has more replicas than the topics have partitions (the scaling
//! bound). No cluster is needed.

mod support;

use std::process::Command;

use support::{flowc, root};

fn manifest() -> String {
    std::fs::read_to_string(root().join("deploy/kubernetes/flowc.yaml")).expect("the manifest")
}

/// Every `args: [...]` line (written as JSON arrays on purpose).
fn command_lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("args: "))
        .map(|a| serde_json::from_str(a).unwrap_or_else(|e| panic!("args not a JSON array ({e}): {a}")))
        .collect()
}

#[test]
fn every_command_line_is_accepted_by_flowc() {
    let lines = command_lines(&manifest());
    let commands: Vec<&str> = lines.iter().map(|l| l[0].as_str()).collect();
    assert_eq!(commands, ["apply", "model-server", "worker", "gateway"]);
    for args in &lines {
        // With --help last, clap still rejects any unknown flag or bad value before it.
        let out = Command::new(flowc())
            .args(args)
            .arg("--help")
            .output()
            .expect("run flowc");
        assert!(
            out.status.success(),
            "flowc rejects {args:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_embedded_pipelines_compile() {
    let text = manifest();
    let start = text.find("  pipelines.yaml: |\n").expect("the pipelines ConfigMap") + "  pipelines.yaml: |\n".len();
    let yaml: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pipelines.yaml");
    std::fs::write(&file, yaml).expect("write");
    let out = Command::new(flowc())
        .arg("compile")
        .arg(&file)
        .output()
        .expect("run flowc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn probes_and_replicas_match_the_commands() {
    let text = manifest();
    let lines = command_lines(&text);
    let flag = |cmd: &str, name: &str| -> String {
        let args = lines.iter().find(|l| l[0] == cmd).expect("command");
        let i = args
            .iter()
            .position(|a| a == name)
            .unwrap_or_else(|| panic!("{cmd} has no {name}"));
        args[i + 1].clone()
    };
    let partitions: u32 = flag("apply", "--partitions").parse().expect("a number");
    let port = |addr: String| addr.rsplit(':').next().expect("a port").to_string();
    let gateway_http = port(flag("gateway", "--http-listen"));
    let worker_metrics = port(flag("worker", "--metrics-listen"));
    assert!(text.contains(&format!("httpGet: {{path: /v2/health/ready, port: {gateway_http}}}")));
    assert!(text.contains(&format!("httpGet: {{path: /metrics, port: {worker_metrics}}}")));
    // Each Deployment's replicas, in order: model server, workers, gateways.
    let replicas: Vec<u32> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("replicas: "))
        .map(|n| n.parse().expect("a number"))
        .collect();
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    assert!(
        replicas.iter().all(|r| *r <= partitions),
        "{replicas:?} > {partitions} partitions"
    );
}
