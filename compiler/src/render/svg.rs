//! The compiled DAG as a standalone SVG picture (`flowc graph`; no Graphviz needed), beside
//! the DOT and Mermaid writers on the same drawing model.
//!
//! The picture is drawn from the shared drawing model
//! ([`crate::render::view::View`]) in the visual language of the DOT writer: topics
//! are light blue boxes, processors are rounded boxes inside a rounded frame per sub-topology
//! (with the sub-topology's label), state stores are light orange cylinders, and stores, error
//! and control flow are dashed. Edge labels (`join 0`, `trigger 1`, ...) sit on their edges.
//!
//! # Layout: the `layout-rs` crate, in two levels
//!
//! Layering, crossing reduction and coordinate assignment come from `layout-rs` (pure Rust,
//! no C library, no Graphviz: a Sugiyama-style layered layout with Brandes–Köpf placement
//! that turns back edges around, so `allowCycles` loops lay out too). It was chosen over a
//! hand-written layered layout because those steps are the bulk of such code and the crate
//! does them well; what it lacks is done here:
//!
//! - **Clusters.** The crate has no nested graphs, and frames drawn around the boxes of a
//!   flat layout would overlap. So the layout is compound, in two levels: each sub-topology
//!   is laid out on its own (giving its frame's size), then the topics and the frames (each
//!   one big box) are laid out with one edge per connected topic/frame pair, and the inner
//!   boxes are moved into their frames. Inside a frame, sources are held in the first rank
//!   and sinks in the last (by unseen anchor boxes), so edges from and to topics come in
//!   from the left and leave to the right without crossing the frame's content.
//! - **Cycles.** The crate turns around whichever edge closes a cycle last, so edges are
//!   handed over breadth first from the entry points, making the loop-back edges the turned
//!   ones. Readers of a control topic (the pipeline output clearing revisit counts) are laid
//!   out as feedback, before the topic.
//! - **Drawing.** Only positions are taken from the crate: node centres, and edge bend points
//!   and label places, read back through a recording [`RenderBackend`]. Edges are drawn here
//!   as smooth curves that cross each rank level and always enter a box from the left and
//!   leave to the right: an edge against the flow goes round the frame (or topic) instead of
//!   through it; several edges on one side of a box are spread along it.
//! - **Size.** Its crossing reduction grows with the square of a rank's length, so very
//!   large graphs are laid out without it (see [`MAX_OPTIMIZED`]).
//!
//! Should the crate ever panic on a graph, the picture falls back to a plain left-to-right
//! row, so `flowc graph` still writes a usable file.

use crate::render::view::{Shape, View, ViewKind, ViewNode};
use layout::core::base::Orientation;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;
use std::collections::BTreeMap;
use std::fmt::Write;

const FONT: &str = "Helvetica, Arial, sans-serif";
/// Average glyph width as a fraction of the font size (generous, so text fits its box).
const CHAR_W: f64 = 0.62;
const LABEL_PX: f64 = 12.0;
const DETAIL_PX: f64 = 10.0;
const EDGE_PX: f64 = 10.0;
const CLUSTER_PX: f64 = 12.0;
const PAD_X: f64 = 12.0;
const PAD_Y: f64 = 8.0;
const LABEL_LINE: f64 = 15.0;
const DETAIL_LINE: f64 = 13.0;
/// The height of a store cylinder's top ellipse (half of it is the `ry`).
const CYL_CAP: f64 = 10.0;
/// Room around the processors inside a frame, and above them for the frame's label.
const FRAME_PAD: f64 = 14.0;
const FRAME_HEAD: f64 = 24.0;
const MARGIN: f64 = 20.0;
/// Above this many boxes and bend points in its ranks, a graph is laid out without crossing
/// reduction, which grows about with the square of that number: a 30-step pipeline where
/// every step joins the two before it has about 1,050 and takes 1.5 s in a release build.
const MAX_OPTIMIZED: usize = 1200;
/// Detail lines are wrapped at `, ` to at most this many characters.
const WRAP: usize = 40;

const TOPIC_FILL: &str = "#e8f0fe";
const TOPIC_STROKE: &str = "#5b7db8";
const STORE_FILL: &str = "#fff4e0";
const STORE_STROKE: &str = "#c08a3e";
const PROC_FILL: &str = "#ffffff";
const PROC_STROKE: &str = "#444444";
const FRAME_FILL: &str = "#f7f7f7";
const FRAME_STROKE: &str = "#888888";
const EDGE_STROKE: &str = "#555555";

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Pt {
    x: f64,
    y: f64,
}

impl Pt {
    fn new(x: f64, y: f64) -> Pt {
        Pt { x, y }
    }
}

/// A box by its centre and size, in picture coordinates.
#[derive(Clone, Copy, Debug, Default)]
struct Rect {
    c: Pt,
    w: f64,
    h: f64,
}

impl Rect {
    fn left(&self) -> f64 {
        self.c.x - self.w / 2.0
    }
    fn right(&self) -> f64 {
        self.c.x + self.w / 2.0
    }
    fn top(&self) -> f64 {
        self.c.y - self.h / 2.0
    }
    fn bottom(&self) -> f64 {
        self.c.y + self.h / 2.0
    }
}

fn text_width(s: &str, px: f64) -> f64 {
    s.chars().count() as f64 * px * CHAR_W
}

/// Splits a long detail at `, ` into lines of at most [`WRAP`] characters (a longer piece stays whole).
fn wrap(detail: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for piece in detail.split(", ") {
        if cur.is_empty() {
            cur = piece.to_string();
        } else if cur.chars().count() + 2 + piece.chars().count() <= WRAP {
            cur.push_str(", ");
            cur.push_str(piece);
        } else {
            lines.push(format!("{cur},"));
            cur = piece.to_string();
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// The text of one node and the size of its box.
struct NodeText {
    label: String,
    detail: Vec<String>,
    shape: Shape,
    w: f64,
    h: f64,
}

impl NodeText {
    fn new(n: &ViewNode) -> NodeText {
        let detail = n.detail.as_deref().map(wrap).unwrap_or_default();
        let text_w = detail
            .iter()
            .map(|d| text_width(d, DETAIL_PX))
            .fold(text_width(&n.label, LABEL_PX), f64::max);
        let mut w = (text_w + 2.0 * PAD_X).max(60.0);
        let mut h = 2.0 * PAD_Y + LABEL_LINE + detail.len() as f64 * DETAIL_LINE;
        if n.shape == Shape::Store {
            w += 8.0;
            h += CYL_CAP * 1.5;
        }
        NodeText {
            label: n.label.clone(),
            detail,
            shape: n.shape,
            w: w.ceil(),
            h: h.ceil(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The layout crate, used as a layout engine only.

/// Records what the layout crate would draw: the route of every edge and where edge labels go.
#[derive(Default)]
struct Recorder {
    arrows: Vec<(Vec<Pt>, bool)>,
    texts: Vec<Pt>,
}

impl RenderBackend for Recorder {
    fn draw_rect(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>, _: Option<ClipHandle>) {}
    fn draw_line(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}
    fn draw_circle(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}
    fn draw_text(&mut self, xy: Point, text: &str, _: &StyleAttr) {
        // Boxes are given no text, so only edge labels land here.
        if !text.is_empty() {
            self.texts.push(Pt::new(xy.x, xy.y));
        }
    }
    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        _dashed: bool,
        head: (bool, bool),
        _look: &StyleAttr,
        _properties: Option<String>,
        _text: &str,
    ) {
        // path[0] is (start, control); every later pair is (control, point).
        let mut pts = Vec::with_capacity(path.len());
        if let Some(first) = path.first() {
            pts.push(Pt::new(first.0.x, first.0.y));
        }
        pts.extend(path.iter().skip(1).map(|p| Pt::new(p.1.x, p.1.y)));
        // An edge turned around to break a cycle has its arrowhead at the start.
        self.arrows.push((pts, head.0 && !head.1));
    }
    fn create_clip(&mut self, _: Point, _: Point, _: usize) -> ClipHandle {
        0
    }
}

/// A bend of an edge: it crosses a rank's column horizontally, at height `at.y`, from
/// `at.x - half` to `at.x + half` (so it never cuts a box of that column).
#[derive(Clone, Copy, Debug)]
struct Bend {
    at: Pt,
    half: f64,
}

/// One laid-out graph: node centres, and per edge its bends (from its source to its target)
/// and the place of its label.
struct Placed {
    centers: Vec<Pt>,
    bends: Vec<Vec<Bend>>,
    labels: Vec<Option<Pt>>,
}

/// Lays out boxes of the given sizes left to right; `edges` are (from, to, label). The
/// `ends` boxes are kept in the first rank and in the last (the crate would otherwise move a
/// box that only feeds one other box next to it, and leave a box that ends a short path in
/// the middle, where edges leaving it to the right would cross other boxes).
fn place(sizes: &[(f64, f64)], edges: &[(usize, usize, Option<String>)], ends: (&[usize], &[usize])) -> Placed {
    if sizes.is_empty() {
        return Placed {
            centers: Vec::new(),
            bends: vec![Vec::new(); edges.len()],
            labels: vec![None; edges.len()],
        };
    }
    let sizes_owned = sizes.to_vec();
    let edges_owned = edges.to_vec();
    let ends_owned = (ends.0.to_vec(), ends.1.to_vec());
    // The crate asserts its invariants; a panic there must not take `flowc graph` down.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result =
        std::panic::catch_unwind(move || place_with_crate(&sizes_owned, &edges_owned, (&ends_owned.0, &ends_owned.1)));
    std::panic::set_hook(previous_hook);
    match result {
        Ok(Some(placed)) => placed,
        _ => place_in_a_row(sizes, edges),
    }
}

fn place_with_crate(
    sizes: &[(f64, f64)],
    edges: &[(usize, usize, Option<String>)],
    (first, last): (&[usize], &[usize]),
) -> Option<Placed> {
    let mut vg = VisualGraph::new(Orientation::LeftToRight);
    // The crate re-checks the whole graph for cycles after every edge by walking every path;
    // that grows exponentially with fan-in/fan-out chains, and the input is a DAG by then.
    vg.dag.set_validate(false);
    let handles: Vec<_> = sizes
        .iter()
        .map(|&(w, h)| {
            let look = StyleAttr::simple();
            let elem = Element::create(ShapeKind::new_box(""), look, Orientation::LeftToRight, Point::new(w, h));
            vg.add_node(elem)
        })
        .collect();
    let mut look = StyleAttr::simple();
    look.font_size = EDGE_PX as usize;
    let (order, depth) = forward_first(sizes.len(), edges);
    for &k in &order {
        let (from, to, label) = &edges[k];
        let text = label.clone().unwrap_or_default();
        let arrow = Arrow::new(
            LineEndKind::None,
            LineEndKind::Arrow,
            LineStyleKind::Normal,
            &text,
            &look,
            &None,
            &None,
        );
        vg.add_edge(arrow, handles[*from], handles[*to]);
    }
    // Unseen anchors before the `first` boxes and after the `last`, with two unseen edges to
    // or from each: the crate moves a box to the right (towards its successors) while it has
    // no more edges in than out. Unseen edges are not drawn, so they come last and leave the
    // recorded order alone.
    let mut anchor = |boxes: &[usize], before: bool| {
        if boxes.is_empty() {
            return;
        }
        let elem = Element::create(
            ShapeKind::new_box(""),
            StyleAttr::simple(),
            Orientation::LeftToRight,
            Point::new(1.0, 1.0),
        );
        let a = vg.add_node(elem);
        for &n in boxes {
            for _ in 0..2 {
                if before {
                    vg.add_edge(Arrow::invisible(), a, handles[n]);
                } else {
                    vg.add_edge(Arrow::invisible(), handles[n], a);
                }
            }
        }
    };
    anchor(first, true);
    anchor(last, false);
    let mut rec = Recorder::default();
    // The crate's crossing reduction takes time growing with the square of a rank's length
    // (times 50 rounds); a big graph is laid out without it rather than slowly.
    let optimize = estimated_rank_entries(edges, &depth) <= MAX_OPTIMIZED;
    vg.do_it(false, !optimize, false, &mut rec);
    let centers: Vec<Pt> = handles
        .iter()
        .map(|h| {
            let c = vg.pos(*h).center();
            Pt::new(c.x, c.y)
        })
        .collect();
    if rec.arrows.len() != edges.len() {
        return None;
    }
    // A bend crosses the whole column (rank) it is in: the boxes there that span its x.
    let column = |p: Pt| {
        let (x0, x1) = centers
            .iter()
            .zip(sizes)
            .map(|(c, s)| (c.x - s.0 / 2.0, c.x + s.0 / 2.0))
            .filter(|&(l, r)| l <= p.x && p.x <= r)
            .fold((p.x, p.x), |(a, b), (l, r)| (a.min(l), b.max(r)));
        Bend {
            at: Pt::new((x0 + x1) / 2.0, p.y),
            half: (x1 - x0) / 2.0,
        }
    };
    let mut texts: Vec<Option<Pt>> = rec.texts.into_iter().map(Some).collect();
    let mut bends = vec![Vec::new(); edges.len()];
    let mut labels = vec![None; edges.len()];
    // The crate draws the edges in the order they were added.
    for ((pts, reversed), k) in rec.arrows.into_iter().zip(order) {
        let inner: &[Pt] = if pts.len() > 2 { &pts[1..pts.len() - 1] } else { &[] };
        let mut route: Vec<Bend> = inner.iter().map(|&p| column(p)).collect();
        if let Some(l) = edges[k].2.as_deref().filter(|l| !l.is_empty()) {
            // A label is a bend of its own: the crate draws the text at the middle of the
            // label's place and runs the edge through the middle of its right side.
            let half = (l.chars().count() as f64 * EDGE_PX + 10.0) / 2.0;
            'find: for (b, p) in route.iter_mut().zip(inner) {
                for t in texts.iter_mut() {
                    if let Some(mid) = *t {
                        if (mid.x + half - p.x).abs() < 1.0 && (mid.y - p.y).abs() < 1.0 {
                            *b = Bend { at: mid, half };
                            labels[k] = Some(mid);
                            *t = None;
                            break 'find;
                        }
                    }
                }
            }
        }
        if reversed {
            route.reverse();
        }
        bends[k] = route;
    }
    Some(Placed { centers, bends, labels })
}

/// The order to hand edges to the layout crate in. The crate breaks each cycle by turning
/// around the edge that closes it, i.e. the one added last; so edges are added by how far
/// (breadth first) their source is from the graph's entry points (nodes nothing points to),
/// which makes the edges that loop back, not the main flow, the ones turned around.
fn forward_first(nodes: usize, edges: &[(usize, usize, Option<String>)]) -> (Vec<usize>, Vec<usize>) {
    let mut succ = vec![Vec::new(); nodes];
    let mut indegree = vec![0usize; nodes];
    for (from, to, _) in edges {
        succ[*from].push(*to);
        indegree[*to] += 1;
    }
    let mut depth = vec![usize::MAX; nodes];
    let mut queue = std::collections::VecDeque::new();
    let starts = (0..nodes).filter(|&n| indegree[n] == 0).chain(0..nodes);
    for start in starts {
        if depth[start] != usize::MAX {
            continue;
        }
        depth[start] = 0;
        queue.push_back(start);
        while let Some(n) = queue.pop_front() {
            for &m in &succ[n] {
                if depth[m] == usize::MAX {
                    depth[m] = depth[n] + 1;
                    queue.push_back(m);
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..edges.len()).collect();
    order.sort_by_key(|&k| depth[edges[k].0]);
    (order, depth)
}

/// Roughly how many boxes and bend points the crate's ranks will hold: the boxes, plus one
/// bend per rank an edge skips, with ranks by longest path over the edges that go deeper
/// (by the breadth-first `depth` of [`forward_first`]; those are acyclic).
fn estimated_rank_entries(edges: &[(usize, usize, Option<String>)], depth: &[usize]) -> usize {
    let nodes = depth.len();
    let forward = |a: usize, b: usize| depth[a] < depth[b];
    let mut succ = vec![Vec::new(); nodes];
    let mut indegree = vec![0usize; nodes];
    for &(a, b, _) in edges.iter().filter(|e| forward(e.0, e.1)) {
        succ[a].push(b);
        indegree[b] += 1;
    }
    let mut rank = vec![0usize; nodes];
    let mut queue: std::collections::VecDeque<usize> = (0..nodes).filter(|&n| indegree[n] == 0).collect();
    while let Some(n) = queue.pop_front() {
        for &m in &succ[n] {
            rank[m] = rank[m].max(rank[n] + 1);
            indegree[m] -= 1;
            if indegree[m] == 0 {
                queue.push_back(m);
            }
        }
    }
    nodes
        + edges
            .iter()
            .map(|&(a, b, _)| rank[a].abs_diff(rank[b]).saturating_sub(1))
            .sum::<usize>()
}

/// The fallback: all boxes in one row, straight edges.
fn place_in_a_row(sizes: &[(f64, f64)], edges: &[(usize, usize, Option<String>)]) -> Placed {
    let mut x = 0.0;
    let centers = sizes
        .iter()
        .map(|&(w, _)| {
            let c = Pt::new(x + w / 2.0, 0.0);
            x += w + 60.0;
            c
        })
        .collect();
    Placed {
        centers,
        bends: vec![Vec::new(); edges.len()],
        labels: vec![None; edges.len()],
    }
}

// ---------------------------------------------------------------------------------------------
// The two-level layout.

/// Where a view node sits: topic `0`, node `1` of cluster `0`, or (top level) cluster `0` as a
/// whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Slot {
    Topic(usize),
    Inner(usize, usize),
    Frame(usize),
}

impl Slot {
    /// The top-level node that holds this one.
    fn top(self) -> Slot {
        match self {
            Slot::Inner(c, _) => Slot::Frame(c),
            other => other,
        }
    }
}

struct Frame {
    label: String,
    rect: Rect,
    nodes: Vec<(NodeText, Rect)>,
}

struct Drawing {
    topics: Vec<(NodeText, Rect)>,
    frames: Vec<Frame>,
    edges: Vec<DrawEdge>,
}

impl Drawing {
    fn rect(&self, slot: Slot) -> Rect {
        match slot {
            Slot::Topic(t) => self.topics[t].1,
            Slot::Inner(c, n) => self.frames[c].nodes[n].1,
            Slot::Frame(c) => self.frames[c].rect,
        }
    }

    fn translate(&mut self, d: Pt) {
        let mv = |p: &mut Pt| *p = Pt::new(p.x + d.x, p.y + d.y);
        self.topics.iter_mut().for_each(|(_, r)| mv(&mut r.c));
        for f in self.frames.iter_mut() {
            mv(&mut f.rect.c);
            f.nodes.iter_mut().for_each(|(_, r)| mv(&mut r.c));
        }
        for e in self.edges.iter_mut() {
            e.bends.iter_mut().for_each(|b| mv(&mut b.at));
            if let Some((_, p)) = e.label.as_mut() {
                mv(p);
            }
        }
    }
}

struct DrawEdge {
    from: Slot,
    to: Slot,
    bends: Vec<Bend>,
    /// The label's text and the middle of its place (the edge runs along its bottom).
    label: Option<(String, Pt)>,
    dashed: bool,
    /// The sides to leave and enter by, where a detour decided them.
    sides: (Option<Side>, Option<Side>),
    /// How far right of its start the edge runs level, and from how far left of its end.
    lead: (Option<f64>, Option<f64>),
}

fn lay_out(view: &View) -> Drawing {
    let mut slots: BTreeMap<&str, Slot> = BTreeMap::new();
    for (i, t) in view.topics.iter().enumerate() {
        slots.insert(t.id.as_str(), Slot::Topic(i));
    }
    for (ci, c) in view.clusters.iter().enumerate() {
        for (ni, n) in c.nodes.iter().enumerate() {
            slots.insert(n.id.as_str(), Slot::Inner(ci, ni));
        }
    }
    // (from, to, index into view.edges); edges to unknown ids and self loops are left out.
    let edges: Vec<(Slot, Slot, usize)> = view
        .edges
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((*slots.get(e.from.as_str())?, *slots.get(e.to.as_str())?, i)))
        .filter(|(a, b, _)| a != b)
        .collect();

    // 1. Each cluster on its own; its content is then moved so that the frame's centre is 0,0.
    let mut frames = Vec::new();
    let mut inner_routes: BTreeMap<usize, (Vec<Bend>, Option<Pt>)> = BTreeMap::new();
    for (ci, c) in view.clusters.iter().enumerate() {
        let texts: Vec<NodeText> = c.nodes.iter().map(NodeText::new).collect();
        let sizes: Vec<(f64, f64)> = texts.iter().map(|t| (t.w, t.h)).collect();
        let mut local = Vec::new();
        let mut which = Vec::new();
        for &(from, to, i) in &edges {
            if let (Slot::Inner(a, x), Slot::Inner(b, y)) = (from, to) {
                if a == ci && b == ci {
                    local.push((x, y, view.edges[i].label.clone()));
                    which.push(i);
                }
            }
        }
        // Processors that nothing inside the sub-topology feeds (its sources) go first, and
        // those that feed nothing inside it (its sinks) go last.
        let ends = |inside: fn(&(usize, usize, Option<String>)) -> usize| -> Vec<usize> {
            (0..c.nodes.len())
                .filter(|&n| c.nodes[n].shape != Shape::Store && !local.iter().any(|e| inside(e) == n))
                .collect()
        };
        let (first, last) = (ends(|e| e.1), ends(|e| e.0));
        let placed = place(&sizes, &local, (&first, &last));
        let mut bbox = BBox::default();
        for (t, c) in texts.iter().zip(&placed.centers) {
            bbox.add(&Rect { c: *c, w: t.w, h: t.h });
        }
        for (k, i) in which.iter().enumerate() {
            placed.bends[k].iter().for_each(|b| {
                bbox.add(&Rect {
                    c: b.at,
                    w: 2.0 * b.half,
                    h: 0.0,
                })
            });
            if let (Some(p), Some(l)) = (placed.labels[k], view.edges[*i].label.as_deref()) {
                bbox.add(&label_rect(l, p));
            }
        }
        let (x0, y0, x1, y1) = bbox.get().unwrap_or((0.0, 0.0, 60.0, 20.0));
        let title_w = text_width(&c.label, CLUSTER_PX) * 1.1 + 2.0 * FRAME_PAD;
        let frame_w = (x1 - x0 + 2.0 * FRAME_PAD).max(title_w).ceil();
        let frame_h = (y1 - y0 + FRAME_PAD + FRAME_HEAD).ceil();
        let shift = Pt::new(-(x0 + x1) / 2.0, -frame_h / 2.0 + FRAME_HEAD - y0);
        let moved = |p: Pt| Pt::new(p.x + shift.x, p.y + shift.y);
        for (k, i) in which.iter().enumerate() {
            let bends = placed.bends[k]
                .iter()
                .map(|b| Bend {
                    at: moved(b.at),
                    half: b.half,
                })
                .collect();
            inner_routes.insert(*i, (bends, placed.labels[k].map(moved)));
        }
        let nodes = texts
            .into_iter()
            .zip(&placed.centers)
            .map(|(t, &c)| {
                let r = Rect {
                    c: moved(c),
                    w: t.w,
                    h: t.h,
                };
                (t, r)
            })
            .collect();
        frames.push(Frame {
            label: c.label.clone(),
            rect: Rect {
                c: Pt::default(),
                w: frame_w,
                h: frame_h,
            },
            nodes,
        });
    }

    // 2. Topics and whole clusters, one edge per connected pair.
    let topics: Vec<NodeText> = view.topics.iter().map(NodeText::new).collect();
    let mut index: BTreeMap<Slot, usize> = BTreeMap::new();
    let mut sizes = Vec::new();
    for (i, t) in topics.iter().enumerate() {
        index.insert(Slot::Topic(i), sizes.len());
        sizes.push((t.w, t.h));
    }
    for (ci, f) in frames.iter().enumerate() {
        index.insert(Slot::Frame(ci), sizes.len());
        sizes.push((f.rect.w, f.rect.h));
    }
    // A control topic carries a signal back upstream (the pipeline's output clearing the
    // steps' revisit counts): its readers are laid out as feedback, i.e. before it, rather
    // than after the end of the pipeline.
    let is_control = |slot: Slot| matches!(slot, Slot::Topic(t) if view.topics[t].detail.as_deref() == Some("control"));
    let mut top_edges: Vec<(usize, usize, Option<String>)> = Vec::new();
    // (from, to) -> (index into top_edges, laid out the other way round)
    let mut top_edge_of: BTreeMap<(usize, usize), (usize, bool)> = BTreeMap::new();
    for &(from, to, _) in &edges {
        let (a, b) = (index[&from.top()], index[&to.top()]);
        if a != b {
            let flip = is_control(from) && !is_control(to);
            top_edge_of.entry((a, b)).or_insert_with(|| {
                top_edges.push(if flip { (b, a, None) } else { (a, b, None) });
                (top_edges.len() - 1, flip)
            });
        }
    }
    let placed = place(&sizes, &top_edges, (&[], &[]));
    let topics: Vec<(NodeText, Rect)> = topics
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let r = Rect {
                c: placed.centers[index[&Slot::Topic(i)]],
                w: t.w,
                h: t.h,
            };
            (t, r)
        })
        .collect();
    for (ci, f) in frames.iter_mut().enumerate() {
        let at = placed.centers[index[&Slot::Frame(ci)]];
        f.rect.c = at;
        for (_, r) in f.nodes.iter_mut() {
            r.c = Pt::new(r.c.x + at.x, r.c.y + at.y);
        }
    }

    let mut drawing = Drawing {
        topics,
        frames,
        edges: Vec::new(),
    };
    let mut draw_edges = Vec::new();
    for &(from, to, i) in &edges {
        let e = &view.edges[i];
        let (bends, label_at) = match inner_routes.get(&i) {
            Some((bends, label)) => {
                let Slot::Inner(ci, _) = from else {
                    unreachable!("inner edges join inner nodes")
                };
                let off = drawing.frames[ci].rect.c;
                let shift = |p: Pt| Pt::new(p.x + off.x, p.y + off.y);
                let bends = bends
                    .iter()
                    .map(|b| Bend {
                        at: shift(b.at),
                        half: b.half,
                    })
                    .collect();
                (bends, label.map(shift))
            }
            None => match top_edge_of.get(&(index[&from.top()], index[&to.top()])) {
                Some(&(k, flip)) => {
                    let mut bends = placed.bends[k].clone();
                    if flip {
                        bends.reverse();
                    }
                    (bends, None)
                }
                None => (Vec::new(), None),
            },
        };
        let label = e.label.clone().map(|l| {
            // A label the layout found no place for goes on the first bend, or halfway.
            let at = label_at.unwrap_or_else(|| {
                let (a, b) = (drawing.rect(from).c, drawing.rect(to).c);
                bends
                    .first()
                    .map_or(Pt::new((a.x + b.x) / 2.0, (a.y + b.y) / 2.0), |b: &Bend| b.at)
            });
            (l, at)
        });
        draw_edges.push(DrawEdge {
            from,
            to,
            bends,
            label,
            dashed: e.dashed,
            sides: (None, None),
            lead: (None, None),
        });
    }
    drawing.edges = draw_edges;
    enter_along_columns(&mut drawing);
    detour_around_frames(&mut drawing);
    drawing
}

/// A topic or frame narrower than its column (rank) sits in its middle; an edge reaching it
/// straight from the column before would cut through the column's wider boxes above or
/// below it. So it runs level with its end across the free part of the column first (that
/// height belongs to its own box), and the same on the way out.
fn enter_along_columns(d: &mut Drawing) {
    // Less room than this beside a box is too little for a curve to cut anything.
    const NARROW: f64 = 4.0;
    let tops: Vec<Rect> = d
        .topics
        .iter()
        .map(|t| t.1)
        .chain(d.frames.iter().map(|f| f.rect))
        .collect();
    let column = |r: &Rect| {
        tops.iter()
            .filter(|o| (o.c.x - r.c.x).abs() < 2.0)
            .fold((r.left(), r.right()), |(a, b), o| (a.min(o.left()), b.max(o.right())))
    };
    for k in 0..d.edges.len() {
        let (from, to) = (d.edges[k].from, d.edges[k].to);
        if from.top() == to.top() {
            continue;
        }
        let (fr, tr) = (d.rect(from), d.rect(to));
        let (fb, tb) = (d.rect(from.top()), d.rect(to.top()));
        let e = &mut d.edges[k];
        let (left, _) = column(&tb);
        let toward = e.bends.last().map_or(fr.c, |b| b.at);
        if tb.left() - left > NARROW && toward.x < left {
            e.lead.1 = Some(left);
        }
        let (_, right) = column(&fb);
        let toward = e.bends.first().map_or(tr.c, |b| b.at);
        if right - fb.right() > NARROW && toward.x > right {
            e.lead.0 = Some(right);
        }
    }
}

/// Every edge enters its box from the left and leaves it to the right, as the flow goes. An
/// edge against the flow (a loop back to a step further left) would otherwise reach its
/// processor from the right, across the frame's content; it goes around the frame instead,
/// below or above it, and comes in from the left. The same for an edge leaving a processor
/// to the left, and for topics (around the topic's own box).
fn detour_around_frames(d: &mut Drawing) {
    const GAP: f64 = 14.0;
    const STEP: f64 = 8.0;
    // (what to go around, below it?) -> (distance of the box from that side, edge, at its end?)
    let mut lanes: BTreeMap<(Slot, bool), Vec<EdgeEnd>> = BTreeMap::new();
    for (k, e) in d.edges.iter().enumerate() {
        let (fr, tr) = (d.rect(e.from), d.rect(e.to));
        let within = |a: Slot, b: Slot| a.top() == b.top();
        let mut ask = |node: Slot, r: &Rect, toward: Pt, at_end: bool| {
            let around = node.top();
            let ar = d.rect(around);
            // Round the side that makes the shorter way up and down, from the box to where
            // the edge goes on.
            let via = |lane: f64| (r.c.y - lane).abs() + (toward.y - lane).abs();
            let below = via(ar.bottom()) < via(ar.top());
            let dist = if below {
                ar.bottom() - r.bottom()
            } else {
                r.top() - ar.top()
            };
            lanes.entry((around, below)).or_default().push((dist, k, at_end));
        };
        let toward = e.bends.last().map_or(fr.c, |b| b.at);
        if !within(e.from, e.to) && toward.x > tr.right() {
            ask(e.to, &tr, toward, true);
        }
        let toward = e.bends.first().map_or(tr.c, |b| b.at);
        if !within(e.from, e.to) && toward.x < fr.left() {
            ask(e.from, &fr, toward, false);
        }
    }
    for ((around, below), mut list) in lanes {
        // The box nearest the side gets the lane nearest the box, so the turns nest.
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let ar = d.rect(around);
        for (n, &(_, k, at_end)) in list.iter().enumerate() {
            let off = GAP + STEP * n as f64;
            let y = if below { ar.bottom() + off } else { ar.top() - off };
            let bend = Bend {
                at: Pt::new(ar.c.x, y),
                half: ar.w / 2.0 + off,
            };
            let e = &mut d.edges[k];
            if at_end {
                e.bends.push(bend);
                e.sides.1 = Some(Side::Left);
            } else {
                e.bends.insert(0, bend);
                e.sides.0 = Some(Side::Right);
            }
        }
    }
}

/// The room an edge label takes: centred on `p`, above the edge.
fn label_rect(label: &str, p: Pt) -> Rect {
    Rect {
        c: Pt::new(p.x, p.y - EDGE_PX / 2.0),
        w: text_width(label, EDGE_PX) + 6.0,
        h: EDGE_PX + 6.0,
    }
}

#[derive(Default)]
struct BBox(Option<(f64, f64, f64, f64)>);

impl BBox {
    fn add(&mut self, r: &Rect) {
        let (x0, y0, x1, y1) = self.0.unwrap_or((f64::MAX, f64::MAX, f64::MIN, f64::MIN));
        self.0 = Some((x0.min(r.left()), y0.min(r.top()), x1.max(r.right()), y1.max(r.bottom())));
    }
    fn get(&self) -> Option<(f64, f64, f64, f64)> {
        self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Edge routing: which side of a box an edge uses, where on that side, and the curve.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Side {
    Left,
    Right,
    Top,
    Bottom,
}

/// A point on a side of a box, where an edge leaves or enters it.
type Port = (Pt, Side);

/// One end of an edge waiting for its place: a sort key, the edge's index, and which end.
type EdgeEnd = (f64, usize, bool);

/// The side of `r` that faces `p`.
fn facing(r: &Rect, p: Pt) -> Side {
    if p.x >= r.right() {
        Side::Right
    } else if p.x <= r.left() {
        Side::Left
    } else if p.y >= r.c.y {
        Side::Bottom
    } else {
        Side::Top
    }
}

/// The direction pointing out of a box through `side`.
fn outward(side: Side) -> Pt {
    match side {
        Side::Left => Pt::new(-1.0, 0.0),
        Side::Right => Pt::new(1.0, 0.0),
        Side::Top => Pt::new(0.0, -1.0),
        Side::Bottom => Pt::new(0.0, 1.0),
    }
}

/// Where each edge leaves its source and enters its target: a box side, and a point on it.
/// Several edges on one side are spread along it, in the order of where they come from, so
/// they neither cross there nor pile up on one arrowhead.
fn ports(d: &Drawing) -> Vec<(Port, Port)> {
    // (box, side) -> (where along the side the edge comes from, edge, at its start?)
    let mut ends: BTreeMap<(Slot, Side), Vec<EdgeEnd>> = BTreeMap::new();
    let mut sides = Vec::with_capacity(d.edges.len());
    for (k, e) in d.edges.iter().enumerate() {
        let (fr, tr) = (d.rect(e.from), d.rect(e.to));
        let toward_first = e.bends.first().map_or(tr.c, |b| b.at);
        let toward_last = e.bends.last().map_or(fr.c, |b| b.at);
        let fs = e.sides.0.unwrap_or_else(|| facing(&fr, toward_first));
        let ts = e.sides.1.unwrap_or_else(|| facing(&tr, toward_last));
        let along = |side: Side, p: Pt| {
            if matches!(side, Side::Left | Side::Right) {
                p.y
            } else {
                p.x
            }
        };
        ends.entry((e.from, fs))
            .or_default()
            .push((along(fs, toward_first), k, true));
        ends.entry((e.to, ts))
            .or_default()
            .push((along(ts, toward_last), k, false));
        sides.push((fs, ts));
    }
    let mut out: Vec<(Port, Port)> = sides
        .iter()
        .map(|&(fs, ts)| ((Pt::default(), fs), (Pt::default(), ts)))
        .collect();
    for ((slot, side), mut list) in ends {
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let r = d.rect(slot);
        let n = list.len();
        let length = if matches!(side, Side::Left | Side::Right) {
            r.h
        } else {
            r.w
        };
        let span = if n > 1 {
            (length * 0.7).min((n - 1) as f64 * 14.0)
        } else {
            0.0
        };
        for (i, &(_, k, is_from)) in list.iter().enumerate() {
            let offset = if n > 1 {
                -span / 2.0 + span * i as f64 / (n - 1) as f64
            } else {
                0.0
            };
            let p = match side {
                Side::Left => Pt::new(r.left(), r.c.y + offset),
                Side::Right => Pt::new(r.right(), r.c.y + offset),
                Side::Top => Pt::new(r.c.x + offset, r.top()),
                Side::Bottom => Pt::new(r.c.x + offset, r.bottom()),
            };
            if is_from {
                out[k].0 .0 = p;
            } else {
                out[k].1 .0 = p;
            }
        }
    }
    out
}

/// An edge as a smooth path: out of its source's side, through its bends (each crossed
/// horizontally), into its target's side; the tangent at each end is square to the side.
fn edge_path(e: &DrawEdge, start: Port, end: Port) -> String {
    // (point, unit tangent, straight line to the next point)
    let mut pts: Vec<(Pt, Pt, bool)> = vec![(start.0, outward(start.1), e.lead.0.is_some())];
    if let Some(x) = e.lead.0 {
        pts.push((Pt::new(x, start.0.y), Pt::new(1.0, 0.0), false));
    }
    for (k, b) in e.bends.iter().enumerate() {
        let prev = pts.last().map_or(start.0, |p| p.0);
        let next = e.bends.get(k + 1).map_or(end.0, |n| n.at);
        let dir = if next.x >= prev.x { 1.0 } else { -1.0 };
        let tangent = Pt::new(dir, 0.0);
        if b.half > 0.5 {
            pts.push((Pt::new(b.at.x - dir * b.half, b.at.y), tangent, true));
            pts.push((Pt::new(b.at.x + dir * b.half, b.at.y), tangent, false));
        } else {
            pts.push((b.at, tangent, false));
        }
    }
    if let Some(x) = e.lead.1 {
        pts.push((Pt::new(x, end.0.y), Pt::new(1.0, 0.0), true));
    }
    let into = outward(end.1);
    pts.push((end.0, Pt::new(-into.x, -into.y), false));
    let mut d = format!("M{},{}", f(start.0.x), f(start.0.y));
    for w in pts.windows(2) {
        let ((a, ta, straight), (b, tb, _)) = (w[0], w[1]);
        if straight {
            let _ = write!(d, " L{},{}", f(b.x), f(b.y));
            continue;
        }
        let reach = |t: Pt| {
            let along = if t.x != 0.0 {
                (b.x - a.x) * t.x
            } else {
                (b.y - a.y) * t.y
            };
            // Going backwards (a loop), bow out a little; otherwise half the way.
            if along <= 0.0 {
                30.0
            } else {
                (along / 2.0).max(12.0)
            }
        };
        let (ka, kb) = (reach(ta), reach(tb));
        let c1 = Pt::new(a.x + ta.x * ka, a.y + ta.y * ka);
        let c2 = Pt::new(b.x - tb.x * kb, b.y - tb.y * kb);
        let _ = write!(
            d,
            " C{},{} {},{} {},{}",
            f(c1.x),
            f(c1.y),
            f(c2.x),
            f(c2.y),
            f(b.x),
            f(b.y)
        );
    }
    d
}

// ---------------------------------------------------------------------------------------------
// SVG.

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

/// A coordinate with at most one decimal.
fn f(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// The lines of a node, centred in its box (a store's text sits below its cylinder's cap).
fn node_text(out: &mut String, t: &NodeText, r: &Rect) {
    let cap = if t.shape == Shape::Store { CYL_CAP * 0.75 } else { 0.0 };
    let block = LABEL_LINE + t.detail.len() as f64 * DETAIL_LINE;
    let mut y = r.c.y + cap - block / 2.0 + LABEL_LINE - 3.5;
    let weight = if t.shape == Shape::Processor {
        " font-weight=\"bold\""
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "    <text x=\"{}\" y=\"{}\" font-size=\"{LABEL_PX}\"{weight} fill=\"#111111\">{}</text>",
        f(r.c.x),
        f(y),
        esc(&t.label)
    );
    let style = if t.shape == Shape::Topic {
        " font-style=\"italic\""
    } else {
        ""
    };
    for line in &t.detail {
        y += DETAIL_LINE;
        let _ = writeln!(
            out,
            "    <text x=\"{}\" y=\"{}\" font-size=\"{DETAIL_PX}\"{style} fill=\"#555555\">{}</text>",
            f(r.c.x),
            f(y),
            esc(line)
        );
    }
}

fn node_shape(out: &mut String, t: &NodeText, r: &Rect) {
    let (x, y, w, h) = (r.left(), r.top(), r.w, r.h);
    let _ = match t.shape {
        Shape::Topic => writeln!(
            out,
            "    <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{TOPIC_FILL}\" stroke=\"{TOPIC_STROKE}\" stroke-width=\"1.2\"/>",
            f(x),
            f(y),
            f(w),
            f(h)
        ),
        Shape::Processor => writeln!(
            out,
            "    <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"8\" ry=\"8\" fill=\"{PROC_FILL}\" stroke=\"{PROC_STROKE}\" stroke-width=\"1.2\"/>",
            f(x),
            f(y),
            f(w),
            f(h)
        ),
        Shape::Store => {
            let (rx, ry) = (w / 2.0, CYL_CAP / 2.0);
            let _ = writeln!(
                out,
                "    <path d=\"M{},{} V{} A{},{} 0 0 0 {},{} V{} Z\" fill=\"{STORE_FILL}\" stroke=\"{STORE_STROKE}\" stroke-width=\"1.2\"/>",
                f(x),
                f(y + ry),
                f(y + h - ry),
                f(rx),
                f(ry),
                f(x + w),
                f(y + h - ry),
                f(y + ry)
            );
            writeln!(
                out,
                "    <ellipse cx=\"{}\" cy=\"{}\" rx=\"{}\" ry=\"{}\" fill=\"{STORE_FILL}\" stroke=\"{STORE_STROKE}\" stroke-width=\"1.2\"/>",
                f(x + rx),
                f(y + ry),
                f(rx),
                f(ry)
            )
        }
    };
    node_text(out, t, r);
}

/// The DAG of a compiled plan as a complete, standalone SVG document.
pub fn svg(plan: &crate::Plan, kind: ViewKind) -> String {
    let view = View::of(plan, kind);
    let mut d = lay_out(&view);

    // Bring everything into view, `MARGIN` from the top-left corner.
    let mut bbox = BBox::default();
    d.topics.iter().for_each(|(_, r)| bbox.add(r));
    d.frames.iter().for_each(|f| bbox.add(&f.rect));
    for e in &d.edges {
        // (with room for the turn of a detour round a box at the edge of the picture)
        e.bends.iter().for_each(|b| {
            bbox.add(&Rect {
                c: b.at,
                w: 2.0 * b.half + 50.0,
                h: 0.0,
            })
        });
        if let Some((l, p)) = &e.label {
            bbox.add(&label_rect(l, *p));
        }
    }
    let (x0, y0, x1, y1) = bbox.get().unwrap_or((0.0, 0.0, 240.0, 40.0));
    d.translate(Pt::new(MARGIN - x0, MARGIN - y0));
    let width = f((x1 - x0 + 2.0 * MARGIN).ceil());
    let height = f((y1 - y0 + 2.0 * MARGIN).ceil());

    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"{FONT}\">"
    );
    out.push_str("  <title>flowc topology</title>\n");
    let _ = writeln!(
        out,
        "  <defs>\n    <marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto\">\n      <path d=\"M0,0 L10,5 L0,10 Z\" fill=\"{EDGE_STROKE}\" stroke=\"none\"/>\n    </marker>\n  </defs>"
    );
    out.push_str("  <rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    if view.clusters.is_empty() && view.topics.is_empty() {
        let _ = writeln!(
            out,
            "  <text x=\"{MARGIN}\" y=\"{}\" font-size=\"{LABEL_PX}\" fill=\"#555555\">(empty plan)</text>",
            MARGIN + 24.0
        );
    }

    out.push_str("  <g class=\"clusters\">\n");
    for fr in &d.frames {
        let r = fr.rect;
        let _ = writeln!(
            out,
            "    <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"10\" ry=\"10\" fill=\"{FRAME_FILL}\" stroke=\"{FRAME_STROKE}\" stroke-width=\"1\"/>",
            f(r.left()),
            f(r.top()),
            f(r.w),
            f(r.h)
        );
        let _ = writeln!(
            out,
            "    <text x=\"{}\" y=\"{}\" font-size=\"{CLUSTER_PX}\" font-weight=\"bold\" fill=\"#333333\">{}</text>",
            f(r.left() + FRAME_PAD),
            f(r.top() + FRAME_HEAD - 8.0),
            esc(&fr.label)
        );
    }
    out.push_str("  </g>\n");

    let _ = writeln!(
        out,
        "  <g class=\"edges\" fill=\"none\" stroke=\"{EDGE_STROKE}\" stroke-width=\"1.2\">"
    );
    for (e, (start, end)) in d.edges.iter().zip(ports(&d)) {
        let dash = if e.dashed { " stroke-dasharray=\"5,4\"" } else { "" };
        let _ = writeln!(
            out,
            "    <path d=\"{}\"{dash} marker-end=\"url(#arrow)\"/>",
            edge_path(e, start, end)
        );
    }
    out.push_str("  </g>\n");

    out.push_str("  <g class=\"nodes\" text-anchor=\"middle\">\n");
    for (t, r) in &d.topics {
        node_shape(&mut out, t, r);
    }
    for fr in &d.frames {
        for (t, r) in &fr.nodes {
            node_shape(&mut out, t, r);
        }
    }
    out.push_str("  </g>\n");

    let _ = writeln!(
        out,
        "  <g class=\"edge-labels\" text-anchor=\"middle\" font-size=\"{EDGE_PX}\" fill=\"#333333\" stroke=\"#ffffff\" stroke-width=\"3\" stroke-linejoin=\"round\" paint-order=\"stroke\">"
    );
    for e in &d.edges {
        if let Some((l, p)) = &e.label {
            let _ = writeln!(
                out,
                "    <text x=\"{}\" y=\"{}\">{}</text>",
                f(p.x),
                f(p.y - 3.0),
                esc(l)
            );
        }
    }
    out.push_str("  </g>\n</svg>\n");
    out
}
