//! Property tests: no input panics, `Ok` spans are exact, valid references round-trip, and the
//! pest-based parsers agree with a plain split-on-`.` model of PIPELINES.md §2 on every input.

use flowc_grammar::{
    parse_external_ref, parse_external_tensor_map_key, parse_step_ref, parse_tensor_map_key, ExternalRef, RefError,
    RefErrorKind, Side, Span, Spanned, StepRef, TensorMapKey,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Checks on results

fn check_span(text: &str, span: &Span) {
    assert!(span.start <= span.end, "{span:?} in {text:?}");
    assert!(span.end <= text.len(), "{span:?} in {text:?}");
    assert!(text.is_char_boundary(span.start), "{span:?} in {text:?}");
    assert!(text.is_char_boundary(span.end), "{span:?} in {text:?}");
}

fn check_string(text: &str, part: &Spanned<String>) {
    check_span(text, &part.span);
    assert_eq!(&text[part.span.clone()], part.value);
    assert!(!part.value.is_empty() && !part.value.contains('.'));
}

fn check_side(text: &str, side: &Spanned<Side>) {
    check_span(text, &side.span);
    assert_eq!(&text[side.span.clone()], side.value.as_str());
}

/// The parts, in order, with what separates consecutive ones: joining them must give `text`.
fn check_reassembles(text: &str, parts: &[(&str, Span)]) {
    let mut rebuilt = String::new();
    let mut at = 0;
    for (i, (value, span)) in parts.iter().enumerate() {
        if i > 0 {
            rebuilt.push('.');
            assert_eq!(&text[at..span.start], ".", "separator in {text:?}");
        } else {
            assert_eq!(span.start, 0);
        }
        rebuilt.push_str(value);
        at = span.end;
    }
    assert_eq!(at, text.len());
    assert_eq!(rebuilt, text);
}

fn check_error(text: &str, error: &RefError) {
    check_span(text, &error.span);
    match &error.kind {
        RefErrorKind::BadSide { found } | RefErrorKind::BadExternalPart { found } => {
            assert_eq!(&text[error.span.clone()], found);
        }
        RefErrorKind::TooManyParts { found, max } => {
            assert!(found > max);
            assert_eq!(*found, text.split('.').count());
        }
        _ => {}
    }
    assert!(!error.kind.to_string().is_empty());
}

fn check_step_ref(text: &str, r: &StepRef) {
    check_string(text, &r.name);
    let mut parts = vec![(r.name.value.as_str(), r.name.span.clone())];
    if let Some(side) = &r.side {
        check_side(text, side);
        parts.push((side.value.as_str(), side.span.clone()));
    }
    if let Some(tensor) = &r.tensor {
        assert!(r.side.is_some());
        check_string(text, tensor);
        parts.push((tensor.value.as_str(), tensor.span.clone()));
    }
    check_reassembles(text, &parts);
    assert_eq!(r.to_string(), text);
}

fn check_external_ref(text: &str, r: &ExternalRef) {
    check_string(text, &r.pipeline);
    let mut parts = vec![(r.pipeline.value.as_str(), r.pipeline.span.clone())];
    if let Some(step) = &r.step {
        check_string(text, step);
        let keyword = r.pipeline.span.end + 1..step.span.start - 1;
        assert_eq!(&text[keyword.clone()], "step");
        parts.push(("step", keyword));
        parts.push((step.value.as_str(), step.span.clone()));
    }
    if let Some(side) = &r.side {
        check_side(text, side);
        parts.push((side.value.as_str(), side.span.clone()));
    }
    if let Some(tensor) = &r.tensor {
        assert!(r.side.is_some());
        check_string(text, tensor);
        parts.push((tensor.value.as_str(), tensor.span.clone()));
    }
    check_reassembles(text, &parts);
    assert_eq!(r.to_string(), text);
}

fn check_tensor_map_key(text: &str, k: &TensorMapKey) {
    check_string(text, &k.name);
    check_side(text, &k.side);
    check_string(text, &k.tensor);
    check_reassembles(
        text,
        &[
            (k.name.value.as_str(), k.name.span.clone()),
            (k.side.value.as_str(), k.side.span.clone()),
            (k.tensor.value.as_str(), k.tensor.span.clone()),
        ],
    );
    assert_eq!(k.to_string(), text);
}

/// Parses `text` with all four forms and checks every result.
fn check_all(text: &str) {
    match parse_step_ref(text) {
        Ok(r) => check_step_ref(text, &r),
        Err(e) => check_error(text, &e),
    }
    match parse_external_ref(text) {
        Ok(r) => check_external_ref(text, &r),
        Err(e) => check_error(text, &e),
    }
    match parse_tensor_map_key(text) {
        Ok(k) => check_tensor_map_key(text, &k),
        Err(e) => check_error(text, &e),
    }
    match parse_external_tensor_map_key(text) {
        Ok(r) => {
            assert!(r.side.is_some() && r.tensor.is_some());
            check_external_ref(text, &r)
        }
        Err(e) => check_error(text, &e),
    }
}

// ---------------------------------------------------------------------------------------------
// A model of §2, written independently of the grammar: split on `.`, check left to right.

struct Part<'a> {
    text: &'a str,
    span: Span,
}

fn split(text: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut start = 0;
    for piece in text.split('.') {
        parts.push(Part {
            text: piece,
            span: start..start + piece.len(),
        });
        start += piece.len() + 1;
    }
    parts
}

fn side_of(s: &str) -> Option<Side> {
    match s {
        "inputs" => Some(Side::Inputs),
        "outputs" => Some(Side::Outputs),
        _ => None,
    }
}

fn fail<T>(kind: RefErrorKind, span: Span) -> Result<T, RefError> {
    Err(RefError { kind, span })
}

/// What the model found: first name, step, side, tensor.
type Model = (
    Spanned<String>,
    Option<Spanned<String>>,
    Option<Spanned<Side>>,
    Option<Spanned<String>>,
);

#[derive(Clone, Copy, PartialEq)]
enum Form {
    Step,
    External,
    MapKey,
    ExternalMapKey,
}

fn model(form: Form, text: &str) -> Result<Model, RefError> {
    if text.is_empty() {
        return fail(RefErrorKind::Empty, 0..0);
    }
    let parts = split(text);
    let n = parts.len();
    if parts[0].text.is_empty() {
        return fail(RefErrorKind::LeadingDot, 0..1);
    }
    let strict = matches!(form, Form::MapKey | Form::ExternalMapKey);
    let string = |i: usize| Spanned::new(parts[i].text.to_owned(), parts[i].span.clone());
    let empty_at = |i: usize| parts[i].span.start..parts[i].span.start;
    let end = text.len()..text.len();

    // Checks part `i`, a required-if-present side; `missing` is the kind for a required side
    // that is absent at the end.
    let side_at = |i: usize, required: bool| -> Result<Option<Spanned<Side>>, RefError> {
        if i >= n {
            return if required {
                fail(RefErrorKind::MissingSide, end.clone())
            } else {
                Ok(None)
            };
        }
        let p = &parts[i];
        if p.text.is_empty() {
            let kind = if required && i == n - 1 {
                RefErrorKind::MissingSide
            } else {
                RefErrorKind::EmptyPart
            };
            return fail(kind, empty_at(i));
        }
        match side_of(p.text) {
            Some(side) => Ok(Some(Spanned::new(side, p.span.clone()))),
            None => fail(
                RefErrorKind::BadSide {
                    found: p.text.to_owned(),
                },
                p.span.clone(),
            ),
        }
    };
    let tensor_at = |i: usize, required: bool| -> Result<Option<Spanned<String>>, RefError> {
        if i >= n {
            return if required {
                fail(RefErrorKind::MissingTensor, end.clone())
            } else {
                Ok(None)
            };
        }
        if parts[i].text.is_empty() {
            let kind = if required && i == n - 1 {
                RefErrorKind::MissingTensor
            } else {
                RefErrorKind::EmptyPart
            };
            return fail(kind, empty_at(i));
        }
        Ok(Some(string(i)))
    };
    let at_most = |max: usize| -> Result<(), RefError> {
        if n > max {
            fail(
                RefErrorKind::TooManyParts { found: n, max },
                parts[max].span.start..text.len(),
            )
        } else {
            Ok(())
        }
    };

    match form {
        Form::Step | Form::MapKey => {
            let side = side_at(1, strict)?;
            let tensor = if side.is_some() { tensor_at(2, strict)? } else { None };
            at_most(3)?;
            Ok((string(0), None, side, tensor))
        }
        Form::External | Form::ExternalMapKey => {
            if n == 1 {
                return if strict {
                    fail(RefErrorKind::MissingSide, end)
                } else {
                    Ok((string(0), None, None, None))
                };
            }
            let second = &parts[1];
            if second.text.is_empty() {
                let kind = if strict && n == 2 {
                    RefErrorKind::MissingSide
                } else {
                    RefErrorKind::EmptyPart
                };
                return fail(kind, empty_at(1));
            }
            if second.text == "step" {
                if n == 2 {
                    return fail(RefErrorKind::MissingStepName, end);
                }
                if parts[2].text.is_empty() {
                    let kind = if n == 3 {
                        RefErrorKind::MissingStepName
                    } else {
                        RefErrorKind::EmptyPart
                    };
                    return fail(kind, empty_at(2));
                }
                let side = side_at(3, strict)?;
                let tensor = if side.is_some() { tensor_at(4, strict)? } else { None };
                at_most(5)?;
                Ok((string(0), Some(string(2)), side, tensor))
            } else if side_of(second.text).is_some() {
                let side = side_at(1, strict)?;
                let tensor = tensor_at(2, strict)?;
                at_most(3)?;
                Ok((string(0), None, side, tensor))
            } else {
                fail(
                    RefErrorKind::BadExternalPart {
                        found: second.text.to_owned(),
                    },
                    second.span.clone(),
                )
            }
        }
    }
}

/// Asserts that all four parsers agree with the model on `text`.
fn agree(text: &str) {
    let m = model(Form::Step, text);
    let expected = m.map(|(name, _, side, tensor)| StepRef { name, side, tensor });
    assert_eq!(parse_step_ref(text), expected, "step ref {text:?}");

    let m = model(Form::External, text);
    let expected = m.map(|(pipeline, step, side, tensor)| ExternalRef {
        pipeline,
        step,
        side,
        tensor,
    });
    assert_eq!(parse_external_ref(text), expected, "external ref {text:?}");

    let m = model(Form::MapKey, text);
    let expected = m.map(|(name, _, side, tensor)| TensorMapKey {
        name,
        side: side.expect("model: side"),
        tensor: tensor.expect("model: tensor"),
    });
    assert_eq!(parse_tensor_map_key(text), expected, "tensorMap key {text:?}");

    let m = model(Form::ExternalMapKey, text);
    let expected = m.map(|(pipeline, step, side, tensor)| ExternalRef {
        pipeline,
        step,
        side,
        tensor,
    });
    assert_eq!(
        parse_external_tensor_map_key(text),
        expected,
        "input.tensorMap key {text:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Parts that hit the grammar's interesting cases, plus arbitrary dot-free text.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("inputs".to_owned()),
        3 => Just("outputs".to_owned()),
        3 => Just("step".to_owned()),
        3 => Just(String::new()),
        2 => Just("m".to_owned()),
        1 => Just("output".to_owned()),
        1 => Just("Step".to_owned()),
        // Keywords with something glued on: not keywords.
        2 => "(inputs|outputs|step)[^.]{1,2}",
        1 => "[^.]{1,2}(inputs|outputs|step)",
        1 => Just("ä".to_owned()),
        1 => Just("τ\u{0}\n".to_owned()),
        2 => "[^.]{1,6}",
    ]
}

/// Joined parts: any mix of the above, 1 to 8 parts.
fn dotted() -> impl Strategy<Value = String> {
    prop::collection::vec(part(), 1..8).prop_map(|parts| parts.join("."))
}

/// A non-empty name without `.`.
fn name() -> impl Strategy<Value = String> {
    "[^.]{1,12}"
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Inputs), Just(Side::Outputs)]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        // Integration tests have no `lib.rs` next to them for proptest to find; the failing
        // input is printed anyway.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_strings_never_panic_and_spans_are_exact(text in any::<String>()) {
        check_all(&text);
        agree(&text);
    }

    #[test]
    fn dotted_strings_agree_with_the_model(text in dotted()) {
        check_all(&text);
        agree(&text);
    }

    #[test]
    fn bytes_from_a_small_alphabet_agree_with_the_model(text in "[.a-z\u{e4}]{0,24}") {
        check_all(&text);
        agree(&text);
    }

    #[test]
    fn valid_step_refs_round_trip(
        n in name(),
        s in proptest::option::of(side()),
        t in proptest::option::of(name()),
    ) {
        let t = s.and(t);
        let mut text = n.clone();
        if let Some(s) = s {
            text = format!("{text}.{s}");
        }
        if let Some(t) = &t {
            text = format!("{text}.{t}");
        }
        let r = parse_step_ref(&text).expect("valid step ref");
        prop_assert_eq!(&r.name.value, &n);
        prop_assert_eq!(r.side.as_ref().map(|s| s.value), s);
        prop_assert_eq!(r.tensor.as_ref().map(|t| t.value.clone()), t);
        check_step_ref(&text, &r);
        if let (Some(_), Some(_)) = (&r.side, &r.tensor) {
            let k = parse_tensor_map_key(&text).expect("valid tensorMap key");
            check_tensor_map_key(&text, &k);
        }
    }

    #[test]
    fn valid_external_refs_round_trip(
        q in name(),
        step in proptest::option::of(name()),
        s in proptest::option::of(side()),
        t in proptest::option::of(name()),
    ) {
        let t = s.and(t);
        let mut text = q.clone();
        if let Some(step) = &step {
            text = format!("{text}.step.{step}");
        }
        if let Some(s) = s {
            text = format!("{text}.{s}");
        }
        if let Some(t) = &t {
            text = format!("{text}.{t}");
        }
        let r = parse_external_ref(&text).expect("valid external ref");
        prop_assert_eq!(&r.pipeline.value, &q);
        prop_assert_eq!(r.step.as_ref().map(|s| s.value.clone()), step);
        prop_assert_eq!(r.side.as_ref().map(|s| s.value), s);
        prop_assert_eq!(r.tensor.as_ref().map(|t| t.value.clone()), t);
        check_external_ref(&text, &r);
        if r.tensor.is_some() {
            let k = parse_external_tensor_map_key(&text).expect("valid input.tensorMap key");
            prop_assert_eq!(k, r);
        }
    }
}

#[test]
fn model_agrees_on_the_documented_examples() {
    for text in [
        "",
        ".a.outputs",
        "a..outputs",
        "a.outputs.",
        "a.output",
        "a.outputsX",
        "Q.step",
        "Q.step.",
        "Q.foo",
        "s",
        "s.",
        "s.outputs",
        "a.outputs.T.x",
        "Q.step.S.outputs.T.x",
        "Q.outputs.T.x",
        "a.outputs.T.",
    ] {
        check_all(text);
        agree(text);
    }
}
