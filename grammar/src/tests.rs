//! Unit tests: every valid form and every error kind, with exact spans.

use super::*;
use RefErrorKind::*;
use Side::{Inputs, Outputs};

fn s(value: &str, span: Span) -> Spanned<String> {
    Spanned::new(value.to_owned(), span)
}

fn sd(value: Side, span: Span) -> Spanned<Side> {
    Spanned::new(value, span)
}

fn err(kind: RefErrorKind, span: Span) -> RefError {
    RefError { kind, span }
}

fn bad_side(found: &str, span: Span) -> RefError {
    err(
        BadSide {
            found: found.to_owned(),
        },
        span,
    )
}

fn bad_ext(found: &str, span: Span) -> RefError {
    err(
        BadExternalPart {
            found: found.to_owned(),
        },
        span,
    )
}

fn too_many(found: usize, max: usize, span: Span) -> RefError {
    err(TooManyParts { found, max }, span)
}

fn step_ref(name: Spanned<String>, side: Option<Spanned<Side>>, tensor: Option<Spanned<String>>) -> StepRef {
    StepRef { name, side, tensor }
}

fn ext(
    pipeline: Spanned<String>,
    step: Option<Spanned<String>>,
    side: Option<Spanned<Side>>,
    tensor: Option<Spanned<String>>,
) -> ExternalRef {
    ExternalRef {
        pipeline,
        step,
        side,
        tensor,
    }
}

/// All four parse functions, for errors that every form reports the same way.
fn all_forms(text: &str) -> [Option<RefError>; 4] {
    [
        parse_step_ref(text).err(),
        parse_external_ref(text).err(),
        parse_tensor_map_key(text).err(),
        parse_external_tensor_map_key(text).err(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Valid forms

#[test]
fn step_ref_bare() {
    assert_eq!(parse_step_ref("m"), Ok(step_ref(s("m", 0..1), None, None)));
    assert_eq!(
        parse_step_ref("preprocess"),
        Ok(step_ref(s("preprocess", 0..10), None, None))
    );
}

#[test]
fn step_ref_with_side() {
    assert_eq!(
        parse_step_ref("m.outputs"),
        Ok(step_ref(s("m", 0..1), Some(sd(Outputs, 2..9)), None))
    );
    assert_eq!(
        parse_step_ref("m.inputs"),
        Ok(step_ref(s("m", 0..1), Some(sd(Inputs, 2..8)), None))
    );
}

#[test]
fn step_ref_with_tensor() {
    assert_eq!(
        parse_step_ref("m.outputs.T"),
        Ok(step_ref(s("m", 0..1), Some(sd(Outputs, 2..9)), Some(s("T", 10..11))))
    );
    assert_eq!(
        parse_step_ref("tfsimple1.inputs.INPUT0"),
        Ok(step_ref(
            s("tfsimple1", 0..9),
            Some(sd(Inputs, 10..16)),
            Some(s("INPUT0", 17..23))
        ))
    );
}

#[test]
fn step_ref_any_character_but_dot_in_names() {
    // Names are validated by the compiler, not the grammar.
    assert_eq!(
        parse_step_ref("ä b.outputs.τ\n\t"),
        Ok(step_ref(
            s("ä b", 0..4),
            Some(sd(Outputs, 5..12)),
            Some(s("τ\n\t", 13..17))
        ))
    );
    assert_eq!(parse_step_ref("Model_1"), Ok(step_ref(s("Model_1", 0..7), None, None)));
    assert_eq!(parse_step_ref(" "), Ok(step_ref(s(" ", 0..1), None, None)));
}

#[test]
fn keywords_are_fine_as_names_and_tensors() {
    assert_eq!(
        parse_step_ref("outputs.inputs.outputs"),
        Ok(step_ref(
            s("outputs", 0..7),
            Some(sd(Inputs, 8..14)),
            Some(s("outputs", 15..22))
        ))
    );
    assert_eq!(parse_step_ref("step"), Ok(step_ref(s("step", 0..4), None, None)));
}

#[test]
fn external_ref_pipeline_forms() {
    assert_eq!(parse_external_ref("Q"), Ok(ext(s("Q", 0..1), None, None, None)));
    assert_eq!(
        parse_external_ref("Q.inputs"),
        Ok(ext(s("Q", 0..1), None, Some(sd(Inputs, 2..8)), None))
    );
    assert_eq!(
        parse_external_ref("Q.outputs"),
        Ok(ext(s("Q", 0..1), None, Some(sd(Outputs, 2..9)), None))
    );
    assert_eq!(
        parse_external_ref("Q.inputs.T"),
        Ok(ext(s("Q", 0..1), None, Some(sd(Inputs, 2..8)), Some(s("T", 9..10))))
    );
    assert_eq!(
        parse_external_ref("pipe.outputs.OUT"),
        Ok(ext(
            s("pipe", 0..4),
            None,
            Some(sd(Outputs, 5..12)),
            Some(s("OUT", 13..16))
        ))
    );
}

#[test]
fn external_ref_step_forms() {
    assert_eq!(
        parse_external_ref("Q.step.S"),
        Ok(ext(s("Q", 0..1), Some(s("S", 7..8)), None, None))
    );
    assert_eq!(
        parse_external_ref("Q.step.S.inputs"),
        Ok(ext(s("Q", 0..1), Some(s("S", 7..8)), Some(sd(Inputs, 9..15)), None))
    );
    assert_eq!(
        parse_external_ref("Q.step.S.outputs"),
        Ok(ext(s("Q", 0..1), Some(s("S", 7..8)), Some(sd(Outputs, 9..16)), None))
    );
    assert_eq!(
        parse_external_ref("Q.step.S.inputs.T"),
        Ok(ext(
            s("Q", 0..1),
            Some(s("S", 7..8)),
            Some(sd(Inputs, 9..15)),
            Some(s("T", 16..17))
        ))
    );
    assert_eq!(
        parse_external_ref("pipe.step.tfsimple1.outputs.OUTPUT0"),
        Ok(ext(
            s("pipe", 0..4),
            Some(s("tfsimple1", 10..19)),
            Some(sd(Outputs, 20..27)),
            Some(s("OUTPUT0", 28..35))
        ))
    );
}

#[test]
fn external_ref_keywords_as_names() {
    // A step named `inputs`: the part after `step` is always the step name.
    assert_eq!(
        parse_external_ref("Q.step.inputs"),
        Ok(ext(s("Q", 0..1), Some(s("inputs", 7..13)), None, None))
    );
    assert_eq!(
        parse_external_ref("step.step.step.outputs.step"),
        Ok(ext(
            s("step", 0..4),
            Some(s("step", 10..14)),
            Some(sd(Outputs, 15..22)),
            Some(s("step", 23..27))
        ))
    );
}

#[test]
fn tensor_map_keys() {
    assert_eq!(
        parse_tensor_map_key("s.outputs.T"),
        Ok(TensorMapKey {
            name: s("s", 0..1),
            side: sd(Outputs, 2..9),
            tensor: s("T", 10..11),
        })
    );
    assert_eq!(
        parse_tensor_map_key("P.inputs.ä"),
        Ok(TensorMapKey {
            name: s("P", 0..1),
            side: sd(Inputs, 2..8),
            tensor: s("ä", 9..11),
        })
    );
}

#[test]
fn external_tensor_map_keys() {
    assert_eq!(
        parse_external_tensor_map_key("Q.inputs.T"),
        Ok(ext(s("Q", 0..1), None, Some(sd(Inputs, 2..8)), Some(s("T", 9..10))))
    );
    assert_eq!(
        parse_external_tensor_map_key("Q.outputs.T"),
        Ok(ext(s("Q", 0..1), None, Some(sd(Outputs, 2..9)), Some(s("T", 10..11))))
    );
    assert_eq!(
        parse_external_tensor_map_key("Q.step.S.inputs.T"),
        Ok(ext(
            s("Q", 0..1),
            Some(s("S", 7..8)),
            Some(sd(Inputs, 9..15)),
            Some(s("T", 16..17))
        ))
    );
    assert_eq!(
        parse_external_tensor_map_key("Q.step.S.outputs.T"),
        Ok(ext(
            s("Q", 0..1),
            Some(s("S", 7..8)),
            Some(sd(Outputs, 9..16)),
            Some(s("T", 17..18))
        ))
    );
}

#[test]
fn long_names() {
    let name = "n".repeat(1 << 20);
    let text = format!("{name}.outputs.{name}");
    let r = parse_step_ref(&text).unwrap();
    assert_eq!(r.name.span, 0..name.len());
    assert_eq!(r.tensor.unwrap().span, name.len() + 9..text.len());
    let many_dots = ".".repeat(1 << 16);
    assert_eq!(parse_step_ref(&many_dots), Err(err(LeadingDot, 0..1)));
    let text = format!("a.outputs.T{many_dots}");
    assert_eq!(
        parse_step_ref(&text),
        Err(too_many(3 + many_dots.len(), 3, 12..text.len()))
    );
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn empty() {
    assert_eq!(all_forms(""), std::array::from_fn(|_| Some(err(Empty, 0..0))));
}

#[test]
fn leading_dot() {
    for text in [".a.outputs", ".", "..", ".outputs.T", ".step.S.outputs.T"] {
        assert_eq!(
            all_forms(text),
            std::array::from_fn(|_| Some(err(LeadingDot, 0..1))),
            "{text:?}"
        );
    }
}

#[test]
fn empty_part_step_ref() {
    assert_eq!(parse_step_ref("a..outputs"), Err(err(EmptyPart, 2..2)));
    assert_eq!(parse_step_ref("a."), Err(err(EmptyPart, 2..2)));
    assert_eq!(parse_step_ref("a.outputs."), Err(err(EmptyPart, 10..10)));
    assert_eq!(parse_step_ref("a.outputs..x"), Err(err(EmptyPart, 10..10)));
    assert_eq!(parse_step_ref("ä..x"), Err(err(EmptyPart, 3..3)));
}

#[test]
fn empty_part_external_ref() {
    assert_eq!(parse_external_ref("Q."), Err(err(EmptyPart, 2..2)));
    assert_eq!(parse_external_ref("Q..outputs"), Err(err(EmptyPart, 2..2)));
    assert_eq!(parse_external_ref("Q.outputs."), Err(err(EmptyPart, 10..10)));
    assert_eq!(parse_external_ref("Q.step..outputs"), Err(err(EmptyPart, 7..7)));
    assert_eq!(parse_external_ref("Q.step.S."), Err(err(EmptyPart, 9..9)));
    assert_eq!(parse_external_ref("Q.step.S..T"), Err(err(EmptyPart, 9..9)));
    assert_eq!(parse_external_ref("Q.step.S.inputs."), Err(err(EmptyPart, 16..16)));
}

#[test]
fn empty_part_tensor_map_keys() {
    // In the middle: EmptyPart; at the end: Missing* (see below).
    assert_eq!(parse_tensor_map_key("s..T"), Err(err(EmptyPart, 2..2)));
    assert_eq!(parse_tensor_map_key("s.outputs.."), Err(err(EmptyPart, 10..10)));
    assert_eq!(parse_external_tensor_map_key("Q..outputs.T"), Err(err(EmptyPart, 2..2)));
    assert_eq!(
        parse_external_tensor_map_key("Q.outputs..T"),
        Err(err(EmptyPart, 10..10))
    );
    assert_eq!(
        parse_external_tensor_map_key("Q.step..outputs.T"),
        Err(err(EmptyPart, 7..7))
    );
    assert_eq!(parse_external_tensor_map_key("Q.step.S..T"), Err(err(EmptyPart, 9..9)));
}

#[test]
fn bad_side_step_ref() {
    assert_eq!(parse_step_ref("a.output"), Err(bad_side("output", 2..8)));
    assert_eq!(parse_step_ref("a.outputsX"), Err(bad_side("outputsX", 2..10)));
    assert_eq!(parse_step_ref("a.Outputs.T"), Err(bad_side("Outputs", 2..9)));
    assert_eq!(parse_step_ref("a.b.c"), Err(bad_side("b", 2..3)));
    assert_eq!(parse_step_ref("a.step.S"), Err(bad_side("step", 2..6)));
    assert_eq!(parse_step_ref("a. inputs"), Err(bad_side(" inputs", 2..9)));
    assert_eq!(parse_step_ref("ä.öutputs"), Err(bad_side("öutputs", 3..11)));
}

#[test]
fn bad_side_external() {
    assert_eq!(parse_external_ref("Q.step.S.x"), Err(bad_side("x", 9..10)));
    assert_eq!(
        parse_external_ref("Q.step.S.outputz.T"),
        Err(bad_side("outputz", 9..16))
    );
    assert_eq!(parse_external_tensor_map_key("Q.step.S.x.T"), Err(bad_side("x", 9..10)));
    assert_eq!(parse_external_tensor_map_key("Q.step.S.x"), Err(bad_side("x", 9..10)));
}

#[test]
fn bad_side_tensor_map_key() {
    assert_eq!(parse_tensor_map_key("s.x.T"), Err(bad_side("x", 2..3)));
    assert_eq!(parse_tensor_map_key("s.x"), Err(bad_side("x", 2..3)));
    assert_eq!(parse_tensor_map_key("s.inputsT"), Err(bad_side("inputsT", 2..9)));
}

#[test]
fn bad_external_part() {
    assert_eq!(parse_external_ref("Q.foo"), Err(bad_ext("foo", 2..5)));
    assert_eq!(parse_external_ref("Q.stepX.S"), Err(bad_ext("stepX", 2..7)));
    assert_eq!(parse_external_ref("Q.Step.S"), Err(bad_ext("Step", 2..6)));
    assert_eq!(parse_external_ref("Q.output.T"), Err(bad_ext("output", 2..8)));
    assert_eq!(parse_external_tensor_map_key("Q.foo.T"), Err(bad_ext("foo", 2..5)));
    assert_eq!(parse_external_tensor_map_key("Q.foo"), Err(bad_ext("foo", 2..5)));
}

#[test]
fn missing_step_name() {
    for text in ["Q.step", "ä.step"] {
        let end = text.len();
        assert_eq!(parse_external_ref(text), Err(err(MissingStepName, end..end)));
        assert_eq!(parse_external_tensor_map_key(text), Err(err(MissingStepName, end..end)));
    }
    assert_eq!(parse_external_ref("Q.step."), Err(err(MissingStepName, 7..7)));
    assert_eq!(
        parse_external_tensor_map_key("Q.step."),
        Err(err(MissingStepName, 7..7))
    );
}

#[test]
fn missing_side() {
    assert_eq!(parse_tensor_map_key("s"), Err(err(MissingSide, 1..1)));
    assert_eq!(parse_tensor_map_key("s."), Err(err(MissingSide, 2..2)));
    assert_eq!(parse_external_tensor_map_key("Q"), Err(err(MissingSide, 1..1)));
    assert_eq!(parse_external_tensor_map_key("Q."), Err(err(MissingSide, 2..2)));
    assert_eq!(parse_external_tensor_map_key("Q.step.S"), Err(err(MissingSide, 8..8)));
    assert_eq!(parse_external_tensor_map_key("Q.step.S."), Err(err(MissingSide, 9..9)));
}

#[test]
fn missing_tensor() {
    assert_eq!(parse_tensor_map_key("s.outputs"), Err(err(MissingTensor, 9..9)));
    assert_eq!(parse_tensor_map_key("s.inputs."), Err(err(MissingTensor, 9..9)));
    assert_eq!(
        parse_external_tensor_map_key("Q.outputs"),
        Err(err(MissingTensor, 9..9))
    );
    assert_eq!(
        parse_external_tensor_map_key("Q.inputs."),
        Err(err(MissingTensor, 9..9))
    );
    assert_eq!(
        parse_external_tensor_map_key("Q.step.S.inputs"),
        Err(err(MissingTensor, 15..15))
    );
    assert_eq!(
        parse_external_tensor_map_key("Q.step.S.outputs."),
        Err(err(MissingTensor, 17..17))
    );
}

#[test]
fn too_many_parts() {
    assert_eq!(parse_step_ref("a.outputs.T.x"), Err(too_many(4, 3, 12..13)));
    assert_eq!(parse_step_ref("a.outputs.T.x.y"), Err(too_many(5, 3, 12..15)));
    // A trailing `.` after a complete reference is an extra (empty) part.
    assert_eq!(parse_step_ref("a.outputs.T."), Err(too_many(4, 3, 12..12)));
    assert_eq!(parse_step_ref("a.outputs.T..x"), Err(too_many(5, 3, 12..14)));
    assert_eq!(parse_external_ref("Q.outputs.T.x"), Err(too_many(4, 3, 12..13)));
    assert_eq!(parse_external_ref("Q.step.S.outputs.T.x"), Err(too_many(6, 5, 19..20)));
    assert_eq!(parse_tensor_map_key("s.inputs.T.x"), Err(too_many(4, 3, 11..12)));
    assert_eq!(
        parse_external_tensor_map_key("Q.inputs.T.x"),
        Err(too_many(4, 3, 11..12))
    );
    assert_eq!(
        parse_external_tensor_map_key("Q.step.S.outputs.T.x.ÿ"),
        Err(too_many(7, 5, 19..23))
    );
}

#[test]
fn first_problem_from_the_left_wins() {
    assert_eq!(parse_step_ref("a.x.T.y"), Err(bad_side("x", 2..3)));
    assert_eq!(parse_step_ref("a..T.y"), Err(err(EmptyPart, 2..2)));
    assert_eq!(parse_external_ref("Q.foo.a.b.c.d.e"), Err(bad_ext("foo", 2..5)));
    assert_eq!(parse_tensor_map_key("s..x"), Err(err(EmptyPart, 2..2)));
}

// ---------------------------------------------------------------------------------------------
// Messages and other API

#[test]
fn messages() {
    let msg = |text: &str| parse_step_ref(text).unwrap_err().to_string();
    assert_eq!(msg("a.output"), "expected `inputs` or `outputs`, found `output`");
    assert_eq!(
        msg("a.outputs.T.x"),
        "reference has 4 parts; at most 3 are allowed (`step.side.tensor`)"
    );
    assert_eq!(
        parse_external_ref("Q.step.S.outputs.T.x").unwrap_err().to_string(),
        "reference has 6 parts; at most 5 are allowed (`pipeline.step.name.side.tensor`)"
    );
    assert_eq!(
        parse_external_ref("Q.foo").unwrap_err().to_string(),
        "expected `inputs`, `outputs` or `step`, found `foo`"
    );
    assert_eq!(msg(""), "reference is empty");
    assert_eq!(msg(".a"), "reference starts with `.`");
    assert_eq!(msg("a..b"), "empty part in reference (stray `.`?)");
    assert_eq!(
        parse_external_ref("Q.step").unwrap_err().to_string(),
        "missing step name after `step`"
    );
    assert_eq!(
        parse_tensor_map_key("s").unwrap_err().to_string(),
        "missing side: expected `.inputs` or `.outputs` here"
    );
    assert_eq!(
        parse_tensor_map_key("s.inputs").unwrap_err().to_string(),
        "missing tensor name: expected `.tensor` here"
    );
}

#[test]
fn display_round_trips() {
    for text in ["m", "m.outputs", "m.inputs.T"] {
        assert_eq!(parse_step_ref(text).unwrap().to_string(), text);
    }
    for text in ["Q", "Q.inputs", "Q.outputs.T", "Q.step.S", "Q.step.S.inputs.T"] {
        assert_eq!(parse_external_ref(text).unwrap().to_string(), text);
    }
    assert_eq!(parse_tensor_map_key("s.outputs.T").unwrap().to_string(), "s.outputs.T");
}

#[test]
fn side_names() {
    assert_eq!(Inputs.as_str(), "inputs");
    assert_eq!(Outputs.to_string(), "outputs");
    assert!(Inputs < Outputs);
}

#[test]
fn serializes() {
    let r = parse_step_ref("m.inputs").unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        serde_json::json!({
            "name": {"value": "m", "span": {"start": 0, "end": 1}},
            "side": {"value": "inputs", "span": {"start": 2, "end": 8}},
            "tensor": null,
        })
    );
    let e = parse_step_ref("m.x").unwrap_err();
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        serde_json::json!({"kind": {"BadSide": {"found": "x"}}, "span": {"start": 2, "end": 3}})
    );
}
