//! Arbitrary bytes as protobuf record values read from a topic (see
//! `flowc_fuzz::split_record`: the whole value, and its two halves as a second pair of
//! messages). Each is decoded as a `ModelInferRequest` and as a `ModelInferResponse` (prost, from
//! `Bytes` as sources do), then put through every §5.1 conversion by topic suffix
//! (`inputs→outputs`, `outputs→inputs`, `inputs→inputs` / `outputs→outputs` selection and
//! renames), the decoded form and both wire encodings, and the batch merge (§5.5) with itself
//! and with the other message. Nothing may panic, and the conversions must agree with decoding.
#![no_main]

use std::collections::HashMap;

use bytes::Bytes;
use flowc_runtime::proto::inference::{ModelInferRequest, ModelInferResponse};
use flowc_runtime::tensor::{
    self, merge_batch, request_to_response, response_to_request, retain_request_inputs, retain_response_outputs,
    Encoding, InferMessage, Tensor, TensorError,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// A tensor bit for bit (floats compared by bits, so NaN equals itself).
type Exact = (String, Vec<i64>, &'static str, Bytes);

fn exact(tensors: &[Tensor]) -> Vec<Exact> {
    tensors
        .iter()
        .map(|t| {
            let raw = t.to_raw().expect("a decoded tensor has a raw form");
            (t.name.clone(), t.shape.clone(), t.datatype().as_str(), raw)
        })
        .collect()
}

/// A wire tensor's name, datatype, shape, sorted parameters and contents, the last two as
/// protobuf bytes.
type Wire = (String, String, Vec<i64>, Vec<(String, Vec<u8>)>, Option<Vec<u8>>);

/// A wire tensor's fields as bytes (floats inside contents and parameters compare by bits).
fn wire(
    name: &str,
    datatype: &str,
    shape: &[i64],
    parameters: &tensor::Parameters,
    contents: Option<&flowc_runtime::proto::inference::InferTensorContents>,
) -> Wire {
    let mut p: Vec<(String, Vec<u8>)> = parameters.iter().map(|(k, v)| (k.clone(), v.encode_to_vec())).collect();
    p.sort();
    (
        name.to_string(),
        datatype.to_string(),
        shape.to_vec(),
        p,
        contents.map(Message::encode_to_vec),
    )
}

fn inputs(r: &ModelInferRequest) -> Vec<Wire> {
    r.inputs
        .iter()
        .map(|t| wire(&t.name, &t.datatype, &t.shape, &t.parameters, t.contents.as_ref()))
        .collect()
}

fn outputs(r: &ModelInferResponse) -> Vec<Wire> {
    r.outputs
        .iter()
        .map(|t| wire(&t.name, &t.datatype, &t.shape, &t.parameters, t.contents.as_ref()))
        .collect()
}

fn exact_result(r: &Result<Vec<Tensor>, TensorError>) -> Result<Vec<Exact>, TensorError> {
    r.as_ref().map(|t| exact(t)).map_err(Clone::clone)
}

/// Which tensors the selection keeps: names of odd length (arbitrary but deterministic).
fn keep(name: &str) -> bool {
    name.len() % 2 == 1
}

/// Both encodings of a decoded message decode back to the same tensors.
fn check_reencode(message: &InferMessage) {
    let want = exact(&message.tensors);
    for encoding in [Encoding::Typed, Encoding::Raw] {
        let m = InferMessage {
            encoding,
            ..message.clone()
        };
        let request = m.to_request().expect("decoded tensors encode as a request");
        let bytes = Bytes::from(request.encode_to_vec());
        let back = ModelInferRequest::decode(bytes).expect("an encoded request decodes");
        let back = InferMessage::from_request(&back).expect("an encoded request's tensors decode");
        assert_eq!(exact(&back.tensors), want);
        let response = m.to_response().expect("decoded tensors encode as a response");
        let back = InferMessage::from_response(&response).expect("an encoded response's tensors decode");
        assert_eq!(exact(&back.tensors), want);
    }
}

/// §5.5: merging a message with itself doubles dim 0 of every tensor; merging two messages
/// either fails with an error or gives tensors that encode and decode.
fn check_batch(a: &InferMessage, b: Option<&InferMessage>) {
    if let Ok(merged) = merge_batch(&[a.tensors.clone(), a.tensors.clone()]) {
        assert_eq!(merged.len(), a.tensors.len());
        for (m, t) in merged.iter().zip(&a.tensors) {
            assert_eq!(m.shape[0], t.shape[0] * 2, "dim 0 doubles");
            assert_eq!(m.shape[1..], t.shape[1..]);
            assert_eq!(m.data.len(), t.data.len() * 2);
            m.check().expect("a merged tensor matches its shape");
        }
        check_reencode(&InferMessage {
            tensors: merged,
            ..a.clone()
        });
    }
    if let Some(b) = b {
        if let Ok(merged) = merge_batch(&[a.tensors.clone(), b.tensors.clone(), a.tensors.clone()]) {
            merged
                .iter()
                .for_each(|m| m.check().expect("a merged tensor matches its shape"));
            check_reencode(&InferMessage {
                tensors: merged,
                ..b.clone()
            });
        }
    }
    let _ = merge_batch(&[]);
    let _ = merge_batch(std::slice::from_ref(&a.tensors));
}

/// Selection and renames on decoded tensors (joins and batches work on these).
fn check_select(message: &InferMessage) {
    let names: Vec<&str> = message
        .tensors
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| keep(n))
        .collect();
    let mut selected = tensor::select(message.tensors.clone(), &names);
    assert!(selected.iter().all(|t| keep(&t.name)));
    let renames: HashMap<String, String> = names.iter().map(|n| (n.to_string(), format!("{n}x"))).collect();
    tensor::rename(&mut selected, &renames);
    assert!(selected.iter().all(|t| !keep(&t.name)));
}

fn request(value: &Bytes, other: Option<&InferMessage>) -> Option<InferMessage> {
    let request = ModelInferRequest::decode(value.clone()).ok()?;
    let decoded = tensor::decode_request(&request);

    // inputs → outputs and back: the same tensors, in the same wire form.
    let response = request_to_response(request.clone());
    assert_eq!(
        exact_result(&tensor::decode_response(&response)),
        exact_result(&decoded)
    );
    assert_eq!(tensor::response_encoding(&response), tensor::request_encoding(&request));
    let back = response_to_request(response);
    assert_eq!(back.id, request.id);
    assert_eq!(inputs(&back), inputs(&request));
    assert_eq!(back.raw_input_contents, request.raw_input_contents);
    assert!(back.model_name.is_empty() && back.outputs.is_empty());

    // inputs → inputs: selection without decoding keeps exactly the selected decoded tensors.
    let mut selected = request.clone();
    if retain_request_inputs(&mut selected, keep).is_ok() {
        assert!(selected.inputs.iter().all(|t| keep(&t.name)));
        if let Ok(all) = &decoded {
            let want: Vec<Tensor> = all.iter().filter(|t| keep(&t.name)).cloned().collect();
            let got = tensor::decode_request(&selected).expect("a selection of decodable tensors decodes");
            assert_eq!(exact(&got), exact(&want));
        }
    }

    let message = InferMessage::from_request(&request).ok()?;
    check_reencode(&message);
    check_select(&message);
    check_batch(&message, other);
    Some(message)
}

fn response(value: &Bytes, other: Option<&InferMessage>) -> Option<InferMessage> {
    let response = ModelInferResponse::decode(value.clone()).ok()?;
    let decoded = tensor::decode_response(&response);

    // outputs → inputs and back.
    let request = response_to_request(response.clone());
    assert_eq!(exact_result(&tensor::decode_request(&request)), exact_result(&decoded));
    let back = request_to_response(request);
    assert_eq!(back.id, response.id);
    assert_eq!(outputs(&back), outputs(&response));
    assert_eq!(back.raw_output_contents, response.raw_output_contents);

    // outputs → outputs.
    let mut selected = response.clone();
    if retain_response_outputs(&mut selected, keep).is_ok() {
        if let Ok(all) = &decoded {
            let want: Vec<Tensor> = all.iter().filter(|t| keep(&t.name)).cloned().collect();
            let got = tensor::decode_response(&selected).expect("a selection of decodable tensors decodes");
            assert_eq!(exact(&got), exact(&want));
        }
    }

    let message = InferMessage::from_response(&response).ok()?;
    check_reencode(&message);
    check_select(&message);
    check_batch(&message, other);
    Some(message)
}

fuzz_target!(|data: &[u8]| {
    let (whole, a, b) = flowc_fuzz::split_record(data);
    let whole = Bytes::copy_from_slice(whole);
    let (a, b) = (Bytes::copy_from_slice(a), Bytes::copy_from_slice(b));
    let first = request(&a, None);
    request(&b, first.as_ref());
    let first = response(&a, None);
    response(&b, first.as_ref());
    let w = request(&whole, None);
    response(&whole, w.as_ref());
});
