//! What a plan's content says about itself: fingerprints (stable hashes of the plan's JSON,
//! the same on every build) and the typed difference between two versions of a pipeline.
//! `apply` prints a [`PlanDiff`]; `apply`'s versioning and the worker decide from the same
//! fingerprints what runs anew.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::{PipelinePlan, SubTopology};

/// The first 8 bytes of the SHA-256 of `value`'s JSON, in hex.
fn hash_json<T: serde::Serialize>(value: &T) -> String {
    struct Hasher(Sha256);
    impl std::io::Write for Hasher {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hasher = Hasher(Sha256::new());
    // Serializing plain data into a hasher cannot fail.
    let _ = serde_json::to_writer(&mut hasher, value);
    hasher.0.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of a pipeline's plan: its content, its own `fingerprint` field left out.
pub fn fingerprint(plan: &PipelinePlan) -> String {
    if plan.fingerprint.is_empty() {
        hash_json(plan)
    } else {
        let mut copy = plan.clone();
        copy.fingerprint.clear();
        hash_json(&copy)
    }
}

impl SubTopology {
    /// What this sub-topology does, as a fingerprint: its content without its position in
    /// the plan (a step added before it, or a model's call deployed by a pipeline rather than
    /// by the Model alone, does not change what it does).
    pub fn fingerprint(&self) -> String {
        let mut copy = self.clone();
        copy.id = 0;
        hash_json(&copy)
    }
}

/// Names added and removed between two versions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl Change {
    fn between(old: BTreeSet<String>, new: BTreeSet<String>) -> Change {
        Change {
            added: new.difference(&old).cloned().collect(),
            removed: old.difference(&new).cloned().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// What changes when pipeline `old` is replaced by `new`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanDiff {
    pub topics: Change,
    pub stores: Change,
    pub sub_topologies: Change,
    /// Sub-topologies in both whose fingerprints differ: they run anew.
    pub changed: Vec<String>,
}

impl PlanDiff {
    pub fn between(old: &PipelinePlan, new: &PipelinePlan) -> PlanDiff {
        let prints = |p: &PipelinePlan| -> BTreeMap<String, String> {
            p.sub_topologies
                .iter()
                .map(|s| (s.name.clone(), s.fingerprint()))
                .collect()
        };
        let (a, b) = (prints(old), prints(new));
        PlanDiff {
            topics: Change::between(
                old.topics.iter().map(|t| t.name.clone()).collect(),
                new.topics.iter().map(|t| t.name.clone()).collect(),
            ),
            stores: Change::between(
                old.stores.iter().map(|s| s.name.clone()).collect(),
                new.stores.iter().map(|s| s.name.clone()).collect(),
            ),
            sub_topologies: Change::between(a.keys().cloned().collect(), b.keys().cloned().collect()),
            changed: b
                .iter()
                .filter(|(name, print)| a.get(*name).is_some_and(|old| old != *print))
                .map(|(name, _)| name.clone())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty() && self.stores.is_empty() && self.sub_topologies.is_empty() && self.changed.is_empty()
    }

    /// One line per change, as `flowc apply` prints them (`  + topic t`, `  ~ sub-topology s …`).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (what, change) in [
            ("topic", &self.topics),
            ("store", &self.stores),
            ("sub-topology", &self.sub_topologies),
        ] {
            lines.extend(change.added.iter().map(|x| format!("  + {what} {x}")));
            lines.extend(change.removed.iter().map(|x| format!("  - {what} {x}")));
        }
        lines.extend(self.changed.iter().map(|name| {
            format!(
                "  ~ sub-topology {name} (changed: runs anew as its own group, beside the old one while that drains)"
            )
        }));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Node, Op, Payload, Role, Store, StoreKind, Topic, TopicRole};

    fn sub(id: u32, name: &str, topic: &str) -> SubTopology {
        SubTopology {
            id,
            name: name.into(),
            role: Role::Step { step: name.into() },
            consumer_group: format!("g.{name}"),
            nodes: vec![Node {
                name: format!("{name}/source"),
                op: Op::Source {
                    topic: topic.into(),
                    payload: Payload::Request,
                    pipeline: Some("p".into()),
                },
            }],
            edges: Vec::new(),
        }
    }

    fn plan(subs: Vec<SubTopology>, topics: &[&str], stores: &[&str]) -> PipelinePlan {
        let mut p = PipelinePlan {
            execution: crate::Execution::PerHop,
            name: "p".into(),
            namespace: "default".into(),
            fingerprint: String::new(),
            synchronous: true,
            allow_cycles: false,
            max_step_revisits: 0,
            clean_topics_on_delete: false,
            models: Vec::new(),
            external_pipelines: Vec::new(),
            sub_topologies: subs,
            topics: topics
                .iter()
                .map(|t| Topic {
                    name: t.to_string(),
                    role: TopicRole::ModelInputs,
                    compacted: false,
                    owned: true,
                })
                .collect(),
            stores: stores
                .iter()
                .map(|s| Store {
                    name: s.to_string(),
                    sub_topology: "a".into(),
                    kind: StoreKind::Join,
                    changelog_topic: format!("{s}-changelog"),
                })
                .collect(),
            copartition_groups: Vec::new(),
        };
        p.fingerprint = fingerprint(&p);
        p
    }

    #[test]
    fn fingerprints_ignore_positions_and_their_own_field() {
        let a = sub(0, "a", "t1");
        let mut moved = a.clone();
        moved.id = 3;
        assert_eq!(a.fingerprint(), moved.fingerprint());
        assert_ne!(a.fingerprint(), sub(0, "a", "t2").fingerprint());
        let p = plan(vec![a], &["t1"], &[]);
        assert_eq!(p.fingerprint.len(), 16);
        assert_eq!(fingerprint(&p), p.fingerprint, "its own field is left out");
    }

    #[test]
    fn a_diff_names_what_is_added_removed_and_changed() {
        let old = plan(vec![sub(0, "a", "t1"), sub(1, "b", "t2")], &["t1", "t2"], &["s1"]);
        let new = plan(vec![sub(0, "a", "t9"), sub(1, "c", "t2")], &["t2", "t9"], &["s1"]);
        let diff = PlanDiff::between(&old, &new);
        assert_eq!(
            diff,
            PlanDiff {
                topics: Change {
                    added: vec!["t9".into()],
                    removed: vec!["t1".into()],
                },
                stores: Change::default(),
                sub_topologies: Change {
                    added: vec!["c".into()],
                    removed: vec!["b".into()],
                },
                changed: vec!["a".into()],
            }
        );
        assert_eq!(
            diff.lines(),
            [
                "  + topic t9",
                "  - topic t1",
                "  + sub-topology c",
                "  - sub-topology b",
                "  ~ sub-topology a (changed: runs anew as its own group, beside the old one while that drains)",
            ]
        );
        assert!(PlanDiff::between(&old, &old).is_empty());
    }
}
