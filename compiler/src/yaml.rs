//! A YAML node tree that remembers where every node came from.
//!
//! serde-based YAML readers lose positions and stop at the first error; flowc needs the exact
//! line and column of every value (and of text inside a scalar, for references) and wants to
//! keep going. So we build our own small tree from saphyr-parser's event stream, which reports
//! a span for every event.

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::source::{FileId, Location, SourceFile};
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::BTreeMap;

/// A YAML value with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub location: Location,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub value: String,
    pub style: Style,
}

/// How a scalar was written: needed to map offsets inside the value back to the file, and
/// to tell the string `"null"` from a null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Block,
}

impl Node {
    /// A short name of the node's type, for "expected a list, found a string" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
            NodeKind::Scalar(s) if s.is_null() => "null",
            NodeKind::Scalar(s) if s.style == Style::Plain && s.as_bool().is_some() => "a boolean",
            NodeKind::Scalar(s) if s.style == Style::Plain && s.value.parse::<f64>().is_ok() => "a number",
            NodeKind::Scalar(_) => "a string",
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.as_scalar().is_some_and(Scalar::is_null)
    }

    /// The location of bytes `range` of the scalar's value, when they can be mapped back to
    /// the file exactly (plain or quoted without escapes); otherwise the whole scalar.
    pub fn sub_location(&self, source: &SourceFile, range: std::ops::Range<usize>) -> Location {
        let Some(scalar) = self.as_scalar() else {
            return self.location;
        };
        let quote = match scalar.style {
            Style::Plain => 0,
            Style::SingleQuoted | Style::DoubleQuoted => 1,
            Style::Block => return self.location,
        };
        let start = self.location.start + quote;
        let text = source.text();
        let verbatim = text.get(start..start + scalar.value.len()) == Some(scalar.value.as_str());
        if verbatim && range.end <= scalar.value.len() {
            Location::new(self.location.file, start + range.start..start + range.end)
        } else {
            self.location
        }
    }
}

impl Scalar {
    pub fn is_null(&self) -> bool {
        self.style == Style::Plain && matches!(self.value.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }
}

/// One `---` document of a file.
#[derive(Clone, Debug)]
pub struct Document {
    pub root: Node,
}

/// Most nodes that aliases (`*a`) of one file may expand to. Every alias copies its anchor's
/// tree, so a few hundred bytes of nested aliases ("billion laughs") would otherwise expand to
/// gigabytes; real pipeline files expand to a few hundred nodes, if they use aliases at all.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// `size` counts the nodes of the frame's children (their whole trees), for the alias budget.
enum Frame {
    Seq {
        start: usize,
        anchor: usize,
        items: Vec<Node>,
        size: usize,
    },
    Map {
        start: usize,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        size: usize,
    },
}

/// Parses every document of a file. A syntax error ends that file (the YAML parser cannot
/// recover) and is reported as E001; documents before it are still returned.
pub fn parse_documents(file: FileId, source: &SourceFile, diags: &mut Diagnostics) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // Anchored nodes with the number of nodes in their tree.
    let mut anchors: BTreeMap<usize, (Node, usize)> = BTreeMap::new();
    let mut alias_nodes = 0usize;
    let offset = |m: saphyr_parser::Marker| source.offset_of(m.line().saturating_sub(1), m.col());
    let location = |span: Span| Location::new(file, offset(span.start)..offset(span.end).max(offset(span.start)));

    for event in Parser::new_from_str(source.text()) {
        let (event, span) = match event {
            Ok(ok) => ok,
            Err(err) => {
                let at = offset(*err.marker());
                let end = source.text()[at..].chars().next().map_or(at, |c| at + c.len_utf8());
                diags.push(
                    Diagnostic::new(Code::YamlSyntax, Location::new(file, at..end), format!("YAML syntax error: {}", err.info()))
                        .label("the YAML parser stopped here")
                        .help("check the indentation and the `:` and `-` before this point; nothing after it in this file was read"),
                );
                return docs;
            }
        };
        let (node, size) = match event {
            Event::Scalar(value, style, anchor, _tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted => Style::SingleQuoted,
                    ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                    ScalarStyle::Literal | ScalarStyle::Folded => Style::Block,
                };
                let node = Node {
                    kind: NodeKind::Scalar(Scalar {
                        value: value.into_owned(),
                        style,
                    }),
                    location: location(span),
                };
                if anchor > 0 {
                    anchors.insert(anchor, (node.clone(), 1));
                }
                (node, 1)
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some((node, size)) => {
                    alias_nodes = alias_nodes.saturating_add(*size);
                    if alias_nodes > MAX_ALIAS_NODES {
                        let at = location(span);
                        diags.push(
                            Diagnostic::new(
                                Code::YamlSyntax,
                                at,
                                format!("YAML aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                            )
                            .label("this alias goes over the limit")
                            .help("every `*alias` copies its anchor's whole tree; write the values out, or nest fewer aliases; nothing after this point in this file was read"),
                        );
                        return docs;
                    }
                    (
                        Node {
                            kind: node.kind.clone(),
                            location: location(span),
                        },
                        *size,
                    )
                }
                None => continue,
            },
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq {
                    start: offset(span.start),
                    anchor,
                    items: Vec::new(),
                    size: 0,
                });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map {
                    start: offset(span.start),
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                    size: 0,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let end = offset(span.end);
                let (kind, start, anchor, size) = match stack.pop() {
                    Some(Frame::Seq {
                        start,
                        anchor,
                        items,
                        size,
                    }) => (NodeKind::Seq(items), start, anchor, size.saturating_add(1)),
                    Some(Frame::Map {
                        start,
                        anchor,
                        entries,
                        size,
                        ..
                    }) => (NodeKind::Map(entries), start, anchor, size.saturating_add(1)),
                    None => continue,
                };
                let last_child_end = match &kind {
                    NodeKind::Seq(items) => items.last().map(|n| n.location.end),
                    NodeKind::Map(entries) => entries.last().map(|(_, v)| v.location.end),
                    NodeKind::Scalar(_) => None,
                };
                let end = last_child_end.map_or(end, |c| c.max(start)).max(start);
                let node = Node {
                    kind,
                    location: Location::new(file, start..end),
                };
                if anchor > 0 {
                    anchors.insert(anchor, (node.clone(), size));
                }
                (node, size)
            }
            Event::DocumentStart(_) => {
                anchors.clear();
                continue;
            }
            _ => continue,
        };
        match stack.last_mut() {
            Some(Frame::Seq { items, size: total, .. }) => {
                *total = total.saturating_add(size);
                items.push(node);
            }
            Some(Frame::Map {
                entries,
                pending_key,
                size: total,
                ..
            }) => {
                *total = total.saturating_add(size);
                match pending_key.take() {
                    Some(key) => entries.push((key, node)),
                    None => *pending_key = Some(node),
                }
            }
            None => {
                if !node.is_null() {
                    docs.push(Document { root: node });
                }
            }
        }
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (SourceFile, Vec<Document>, Diagnostics) {
        let source = SourceFile::new("t.yaml", text);
        let mut diags = Diagnostics::default();
        let docs = parse_documents(0, &source, &mut diags);
        (source, docs, diags)
    }

    #[test]
    fn spans_point_at_the_text() {
        let text = "a: 1\nsteps:\n  - name: tfsimple1\n    inputs: [\"x.outputs\", y]\n---\nb: é\n";
        let (source, docs, diags) = parse(text);
        assert!(diags.is_empty());
        assert_eq!(docs.len(), 2);
        let NodeKind::Map(entries) = &docs[0].root.kind else {
            panic!()
        };
        let NodeKind::Seq(steps) = &entries[1].1.kind else {
            panic!()
        };
        let NodeKind::Map(step) = &steps[0].kind else { panic!() };
        let name = &step[0].1;
        assert_eq!(&text[name.location.range()], "tfsimple1");
        let NodeKind::Seq(inputs) = &step[1].1.kind else {
            panic!()
        };
        assert_eq!(&text[inputs[0].location.range()], "\"x.outputs\"");
        let sub = inputs[0].sub_location(&source, 2..9);
        assert_eq!(&text[sub.range()], "outputs");
        assert_eq!(&text[inputs[1].location.range()], "y");
        let NodeKind::Map(b) = &docs[1].root.kind else { panic!() };
        assert_eq!(&text[b[0].1.location.range()], "é");
    }

    #[test]
    fn syntax_error_is_reported_with_position() {
        let (source, _docs, diags) = parse("a:\n  b: 1\n c: 2\n");
        let d: Vec<_> = diags.iter().collect();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, Code::YamlSyntax);
        let (line, _) = source.line_col(d[0].location.start);
        assert_eq!(line, 3);
    }

    #[test]
    fn aliases_resolve() {
        let (_, docs, diags) = parse("a: &x [1, 2]\nb: *x\n");
        assert!(diags.is_empty());
        let NodeKind::Map(e) = &docs[0].root.kind else { panic!() };
        assert_eq!(e[0].1.kind, e[1].1.kind);
    }

    /// Regression (fuzz target `compile_yaml`, fuzz/corpus/compile_yaml/regression-billion-laughs.yaml):
    /// 452 bytes of nested aliases expanded to 10^8 nodes and over 2 GB before the alias budget.
    #[test]
    fn nested_aliases_stop_at_the_budget() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let (_, docs, diags) = parse(&text);
        let d: Vec<_> = diags.iter().collect();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, Code::YamlSyntax);
        assert_eq!(
            d[0].message,
            format!("YAML aliases expand to more than {MAX_ALIAS_NODES} nodes")
        );
        assert!(docs.is_empty(), "the document was not finished");
        // Within the budget, aliases of aliases still resolve.
        let (_, docs, diags) = parse("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n");
        assert!(diags.is_empty());
        assert_eq!(docs.len(), 1);
    }
}
