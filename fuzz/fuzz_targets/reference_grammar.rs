//! Arbitrary UTF-8 as a pipeline reference or tensorMap key → every entry point of the grammar
//! crate. Checks the crate's invariant: no panic; for `Ok`, every span is on char boundaries and
//! `&text[span] == value`, and the parts joined with `.` give back the input; for `Err`, the span
//! lies within the input, on char boundaries.
#![no_main]

use flowc_grammar::{
    parse_external_ref, parse_external_tensor_map_key, parse_step_ref, parse_tensor_map_key, ExternalRef, RefError,
    Side, Span, Spanned, StepRef,
};
use libfuzzer_sys::fuzz_target;

fn span_ok(text: &str, span: &Span) {
    assert!(
        span.start <= span.end && span.end <= text.len(),
        "span {span:?} of {text:?}"
    );
    assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
}

fn part(text: &str, p: &Spanned<String>) -> String {
    span_ok(text, &p.span);
    assert_eq!(&text[p.span.clone()], p.value);
    p.value.clone()
}

fn side(text: &str, s: &Spanned<Side>) -> String {
    span_ok(text, &s.span);
    assert_eq!(&text[s.span.clone()], s.value.as_str());
    s.value.as_str().to_string()
}

fn error(text: &str, e: &RefError) {
    span_ok(text, &e.span);
    let _ = e.to_string();
}

fn step_ref(text: &str, r: &StepRef) {
    let mut parts = vec![part(text, &r.name)];
    parts.extend(r.side.as_ref().map(|s| side(text, s)));
    parts.extend(r.tensor.as_ref().map(|t| part(text, t)));
    assert_eq!(parts.join("."), text);
    assert!(r.tensor.is_none() || r.side.is_some());
    assert_eq!(r.to_string(), text);
}

fn external_ref(text: &str, r: &ExternalRef) {
    let mut parts = vec![part(text, &r.pipeline)];
    if let Some(s) = &r.step {
        parts.push("step".to_string());
        parts.push(part(text, s));
    }
    parts.extend(r.side.as_ref().map(|s| side(text, s)));
    parts.extend(r.tensor.as_ref().map(|t| part(text, t)));
    assert_eq!(parts.join("."), text);
    assert!(r.tensor.is_none() || r.side.is_some());
    assert_eq!(r.to_string(), text);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_step_ref(text) {
        Ok(r) => step_ref(text, &r),
        Err(e) => error(text, &e),
    }
    match parse_external_ref(text) {
        Ok(r) => external_ref(text, &r),
        Err(e) => error(text, &e),
    }
    match parse_tensor_map_key(text) {
        Ok(k) => {
            let joined = [part(text, &k.name), side(text, &k.side), part(text, &k.tensor)].join(".");
            assert_eq!(joined, text);
            assert_eq!(k.to_string(), text);
        }
        Err(e) => error(text, &e),
    }
    match parse_external_tensor_map_key(text) {
        Ok(r) => {
            assert!(
                r.side.is_some() && r.tensor.is_some(),
                "an input.tensorMap key names a tensor"
            );
            external_ref(text, &r);
        }
        Err(e) => error(text, &e),
    }
});
