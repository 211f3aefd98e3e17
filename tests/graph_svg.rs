//! `flowc graph`: the built binary writes a standalone SVG picture of the compiled DAG, in
//! both views: the steps (the default) and every processor (`--view topology`).

use flowc_compiler::render::view::{View, ViewKind};
use flowc_compiler::CompileOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under Cargo's scratch space for integration tests.
fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("graph_svg-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `flowc graph SAMPLE -o DIR/dag.svg --view VIEW` (failing after 60 s, so a layout
/// that loops shows up as a failure) and returns the file's text.
fn graph(sample: &str, kind: ViewKind) -> String {
    let dir = temp_dir(sample);
    let out = dir.join("dag.svg");
    let view = match kind {
        ViewKind::Steps => "steps",
        ViewKind::Topology => "topology",
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowc"))
        .current_dir(repo())
        .args(["graph", &format!("samples/{sample}.yaml"), "--view", view, "-o"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("flowc graph samples/{sample}.yaml did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(
        status.success(),
        "flowc graph samples/{sample}.yaml: {status}\n{stderr}"
    );
    let svg = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    svg
}

/// The drawing model of a sample, as the renderer sees it.
fn view(sample: &str, kind: ViewKind) -> View {
    let text = std::fs::read_to_string(repo().join(format!("samples/{sample}.yaml"))).unwrap();
    let (_, compilation) = flowc_compiler::compile_str(sample, &text, &CompileOptions::default());
    View::of(compilation.plan.as_ref().expect("the sample compiles"), kind)
}

#[derive(Debug, Clone, Copy)]
struct Box2 {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Box2 {
    fn overlaps(&self, o: &Box2) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

fn num(node: roxmltree::Node, attr: &str) -> f64 {
    node.attribute(attr)
        .unwrap_or_else(|| panic!("<{}> has no {attr}", node.tag_name().name()))
        .parse()
        .unwrap()
}

/// The `<rect>`s directly in `<g class="CLASS">`.
fn rects(doc: &roxmltree::Document, class: &str) -> Vec<Box2> {
    let group = doc
        .descendants()
        .find(|n| n.has_tag_name("g") && n.attribute("class") == Some(class))
        .unwrap_or_else(|| panic!("no <g class=\"{class}\">"));
    group
        .children()
        .filter(|n| n.has_tag_name("rect"))
        .map(|n| Box2 {
            x: num(n, "x"),
            y: num(n, "y"),
            w: num(n, "width"),
            h: num(n, "height"),
        })
        .collect()
}

fn assert_apart(what: &str, boxes: &[Box2]) {
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            assert!(!a.overlaps(b), "{what} overlap: {a:?} and {b:?}");
        }
    }
}

/// Checks the picture of one sample: a well-formed standalone SVG that names every topic
/// and sub-topology, with one path per edge and no boxes on top of each other.
fn check(sample: &str, kind: ViewKind) -> String {
    let svg = graph(sample, kind);
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{sample}: not XML: {e}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
    let (w, h) = (num(root, "width"), num(root, "height"));
    assert!(w > 0.0 && h > 0.0);
    assert_eq!(root.attribute("viewBox"), Some(format!("0 0 {w} {h}").as_str()));
    assert!(
        doc.descendants().any(|n| n.has_tag_name("marker")),
        "{sample}: no arrowhead marker"
    );

    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    let view = view(sample, kind);
    for topic in &view.topics {
        assert!(
            texts.contains(&topic.label.as_str()),
            "{sample}: no text for topic {}",
            topic.label
        );
    }
    for cluster in &view.clusters {
        assert!(
            texts.contains(&cluster.label.as_str()),
            "{sample}: no text for {}",
            cluster.label
        );
        for node in &cluster.nodes {
            assert!(
                texts.contains(&node.label.as_str()),
                "{sample}: no text for node {}",
                node.label
            );
        }
    }
    for label in view.edges.iter().filter_map(|e| e.label.as_deref()) {
        assert!(texts.contains(&label), "{sample}: no edge label {label}");
    }

    let edges = doc
        .descendants()
        .find(|n| n.has_tag_name("g") && n.attribute("class") == Some("edges"))
        .expect("an edges group");
    let paths: Vec<_> = edges.children().filter(|n| n.has_tag_name("path")).collect();
    assert_eq!(paths.len(), view.edges.len(), "{sample}: one path per edge");
    assert!(paths.iter().all(|p| p.attribute("marker-end") == Some("url(#arrow)")));
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.attribute("stroke-dasharray").is_some())
            .count(),
        view.edges.iter().filter(|e| e.dashed).count(),
        "{sample}: dashed edges"
    );

    // Frames never overlap, nor do topic or processor boxes, and everything is in view.
    let frames = rects(&doc, "clusters");
    let boxes = rects(&doc, "nodes");
    assert_eq!(frames.len(), view.clusters.len());
    assert_apart("frames", &frames);
    assert_apart("boxes", &boxes);
    for b in frames.iter().chain(&boxes) {
        assert!(
            b.x >= 0.0 && b.y >= 0.0 && b.x + b.w <= w && b.y + b.h <= h,
            "{sample}: {b:?} out of view"
        );
    }
    svg
}

#[test]
fn join_is_drawn() {
    let svg = check("join", ViewKind::Topology);
    for label in [
        "pipeline.join.inputs",
        "model.tfsimple1.outputs",
        "model.tfsimple2.outputs",
        "join: step tfsimple3",
        "model tfsimple3 (model gateway)",
        "join 0",
        "join 1",
        "tfsimple3.join",
    ] {
        assert!(svg.contains(&format!(">{label}</text>")), "no text {label}");
    }
    // Text is escaped: the select's detail says `OUTPUT0 -> INPUT0`.
    assert!(svg.contains("OUTPUT0 -&gt; INPUT0"));
}

/// The default view: a frame per step holding what it does and its model, the output, and
/// the topics users inspect between them; no sources, selects or sinks, no model-inputs topics.
#[test]
fn join_is_drawn_as_steps() {
    let svg = check("join", ViewKind::Steps);
    for label in [
        "pipeline.join.inputs",
        "model.tfsimple1.outputs",
        "model.tfsimple2.outputs",
        "model.tfsimple3.outputs",
        "pipeline.join.outputs",
        "step tfsimple1",
        "step tfsimple3",
        "output",
        "model tfsimple3",
        "join",
        "join 0",
        "join 1",
    ] {
        assert!(svg.contains(&format!(">{label}</text>")), "no text {label}");
    }
    for absent in ["source", "sink", "model.tfsimple3.inputs", "tfsimple3.join"] {
        assert!(
            !svg.contains(&format!(">{absent}</text>")),
            "text {absent} in the steps view"
        );
    }
    let view = view("join", ViewKind::Steps);
    assert_eq!(view.clusters.len(), 4, "three steps and the output");
    let frame = |label: &str| view.clusters.iter().find(|c| c.label == label).expect(label);
    let boxes: Vec<&str> = frame("step tfsimple3").nodes.iter().map(|n| n.label.as_str()).collect();
    assert_eq!(boxes, ["join", "model tfsimple3"]);
    // The join takes both models' outputs through their topics.
    let topic = |label: &str| view.topics.iter().find(|t| t.label == label).expect(label).id.clone();
    let join = frame("step tfsimple3").nodes[0].id.clone();
    for (t, port) in [
        ("model.tfsimple1.outputs", "join 0"),
        ("model.tfsimple2.outputs", "join 1"),
    ] {
        assert!(
            view.edges
                .iter()
                .any(|e| e.from == topic(t) && e.to == join && e.label.as_deref() == Some(port)),
            "no edge {t} -> join ({port}): {:?}",
            view.edges
        );
    }
}

#[test]
fn a_cycle_through_topics_is_drawn() {
    check("cycle", ViewKind::Topology);
    check("cycle", ViewKind::Steps);
}

#[test]
fn triggers_are_drawn() {
    let svg = check("triggers", ViewKind::Topology);
    assert!(svg.contains(">trigger 0</text>"));
    let svg = check("triggers", ViewKind::Steps);
    assert!(svg.contains(">triggers</text>"));
}

#[test]
fn every_sample_is_drawn() {
    let mut samples: Vec<String> = std::fs::read_dir(repo().join("samples"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".yaml").map(str::to_string))
        .collect();
    samples.sort();
    assert!(!samples.is_empty());
    for sample in samples {
        check(&sample, ViewKind::Steps);
        check(&sample, ViewKind::Topology);
    }
}
