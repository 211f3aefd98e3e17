//! pest's process-wide call limit: the grammar makes a number of parser calls that does not
//! depend on the length of the parts, and a limit that is hit is reported, not panicked on.
//!
//! Kept in its own test binary (one test) because `pest::set_call_limit` is global.

use std::num::NonZeroUsize;

use flowc_grammar::{parse_external_ref, parse_step_ref, RefErrorKind};

/// The smallest call limit under which `parse` succeeds.
fn min_limit(parse: impl Fn() -> bool) -> usize {
    (1..10_000)
        .find(|&limit| {
            pest::set_call_limit(NonZeroUsize::new(limit));
            parse()
        })
        .expect("parses within 10000 calls")
}

#[test]
fn calls_do_not_grow_with_input_length() {
    let short = "m.outputs.T".to_owned();
    let long_part = "x".repeat(100_000);
    let long = format!("{long_part}.outputs.{long_part}");
    let short_calls = min_limit(|| parse_step_ref(&short).is_ok());
    let long_calls = min_limit(|| parse_step_ref(&long).is_ok());
    assert_eq!(short_calls, long_calls);

    let ext = format!("{long_part}.step.{long_part}.inputs.{long_part}");
    let ext_calls = min_limit(|| parse_external_ref(&ext).is_ok());
    assert!(ext_calls < 100, "{ext_calls}");

    // Below the limit: an error over the whole input, no panic.
    pest::set_call_limit(NonZeroUsize::new(1));
    let error = parse_step_ref(&short).unwrap_err();
    assert_eq!(error.kind, RefErrorKind::EmptyPart);
    assert_eq!(error.span, 0..short.len());
    pest::set_call_limit(None);
    println!("calls: step ref {short_calls}, external ref {ext_calls}");
}
