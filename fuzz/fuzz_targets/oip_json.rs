//! Arbitrary bytes as an Open Inference Protocol JSON request body, with Triton's binary tensor
//! data extension: the first 4 bytes are the `Inference-Header-Content-Length` (see
//! `flowc_fuzz::split_oip`), split as the pipeline gateway splits a body. The JSON is decoded
//! as the gateway (`request_from_json_and_binary`) and the REST model server
//! (`request_from_json`) decode it, then encoded back to JSON (plain and binary outputs) and
//! decoded again. Nothing may panic, and what decoded once must decode again the same.
#![no_main]

use flowc_runtime::json::{
    request_from_json, request_from_json_and_binary, request_to_json, response_from_json, response_to_json,
    response_to_json_and_binary, OutputForm,
};
use flowc_runtime::proto::inference::ModelInferRequest;
use flowc_runtime::tensor::{request_to_response, InferMessage, Tensor, TensorData};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Whether JSON can carry every value: non-finite floats become `null` on the way out.
fn json_safe(tensors: &[Tensor]) -> bool {
    tensors.iter().all(|t| match &t.data {
        TensorData::Fp32(v) => v.iter().all(|x| x.is_finite()),
        TensorData::Fp64(v) => v.iter().all(|x| x.is_finite()),
        TensorData::Fp16(v) => v.iter().all(|h| h & 0x7c00 != 0x7c00),
        // Non-UTF-8 BYTES elements are written lossily: still strings, but other bytes.
        TensorData::Bytes(v) => v.iter().all(|b| std::str::from_utf8(b).is_ok()),
        _ => true,
    })
}

/// Names, datatypes and shapes (the data of floats may move by an ulp through JSON text).
fn outline(tensors: &[Tensor]) -> Vec<(String, &'static str, Vec<i64>)> {
    tensors
        .iter()
        .map(|t| (t.name.clone(), t.datatype().as_str(), t.shape.clone()))
        .collect()
}

fn reparse(v: &Value) -> Value {
    let text = serde_json::to_vec(v).expect("a Value serialises");
    serde_json::from_slice(&text).expect("serialised JSON parses")
}

fn check(value: &Value, request: &ModelInferRequest) {
    let message = InferMessage::from_request(request).expect("a request built from JSON decodes");
    let safe = json_safe(&message.tensors);

    // Request → JSON → request (the REST model client's path, and the model server's).
    let json = request_to_json(request).expect("a decodable request encodes as JSON");
    match request_from_json(&reparse(&json)) {
        Ok(back) => {
            let back = InferMessage::from_request(&back).expect("decodes");
            assert_eq!(outline(&back.tensors), outline(&message.tensors));
            assert_eq!(back.id, message.id);
        }
        Err(e) => assert!(!safe, "re-encoded request does not decode: {e}\n{json}"),
    }

    // As the gateway answers: request → response → JSON with the outputs the request asks
    // for, binary ones after the JSON; reading that back as a request gives the same tensors.
    let form = OutputForm::of_request(value);
    let response = request_to_response(request.clone());
    let (json, binary) = response_to_json_and_binary(&response, &form).expect("a decodable response encodes");
    let mut as_request = json.clone();
    if let Some(o) = as_request.as_object_mut() {
        let outputs = o.remove("outputs").unwrap_or_default();
        o.insert("inputs".into(), outputs);
    }
    let kept: Vec<Tensor> = message
        .tensors
        .iter()
        .filter(|t| form.only.is_empty() || form.only.contains(&t.name))
        .cloned()
        .collect();
    match request_from_json_and_binary(&reparse(&as_request), &binary) {
        Ok(back) => {
            let back = InferMessage::from_request(&back).expect("decodes");
            assert_eq!(outline(&back.tensors), outline(&kept));
        }
        Err(e) => assert!(!json_safe(&kept), "binary response does not decode: {e}\n{json}"),
    }

    // Plain JSON response → response.
    let json = response_to_json(&response).expect("encodes");
    match response_from_json(&reparse(&json)) {
        Ok(back) => {
            let back = InferMessage::from_response(&back).expect("decodes");
            assert_eq!(outline(&back.tensors), outline(&message.tensors));
        }
        Err(e) => assert!(!safe, "re-encoded response does not decode: {e}\n{json}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (header, binary) = flowc_fuzz::split_oip(data);
    let Ok(value) = serde_json::from_slice::<Value>(header) else {
        return;
    };
    // `request_from_json` (the REST model server's path) is this with no binary part.
    if let Ok(request) = request_from_json_and_binary(&value, binary) {
        check(&value, &request);
    }
    let _ = response_from_json(&value);
});
