//! Names derived from the plan's vocabulary: topic and group names of a namespace (§4.1),
//! and the "did you mean" suggestion every tool makes for a misspelled name.

use crate::Side;

/// Topic names of one namespace (§4.1).
#[derive(Clone, Debug)]
pub struct TopicNames {
    base: String,
}

impl TopicNames {
    pub fn new(prefix: &str, namespace: &str) -> Self {
        TopicNames {
            base: format!("{prefix}.{namespace}"),
        }
    }

    pub fn model(&self, model: &str, side: Side) -> String {
        format!("{}.model.{model}.{side}", self.base)
    }

    pub fn pipeline(&self, pipeline: &str, side: Side) -> String {
        format!("{}.pipeline.{pipeline}.{side}", self.base)
    }

    pub fn errors(&self) -> String {
        format!("{}.errors.errors", self.base)
    }

    /// flowc's internal topics of a pipeline: `<prefix>.<ns>.pipeline.<p>.<part>.<what>`.
    pub fn internal(&self, pipeline: &str, part: &str, what: &str) -> String {
        format!("{}.pipeline.{pipeline}.{part}.{what}", self.base)
    }

    pub fn consumer_group(&self, pipeline: &str, part: &str) -> String {
        format!("{}.pipeline.{pipeline}.{part}", self.base)
    }

    pub fn model_group(&self, model: &str) -> String {
        format!("{}.model.{model}.gateway", self.base)
    }
}

/// The closest candidate to `name`, if any is close enough to be a plausible typo.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let score = strsim::jaro_winkler(name, candidate);
        let close = score >= 0.8 || strsim::levenshtein(name, candidate) <= 2.min(name.len() / 2);
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}
