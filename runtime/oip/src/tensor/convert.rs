//! The §5.1 conversions between requests and responses that need no decoding (they keep the
//! wire form as it came), and choosing and renaming tensors.

use std::collections::HashMap;

use bytes::Bytes;

use crate::proto::inference::model_infer_request::InferInputTensor;
use crate::proto::inference::model_infer_response::InferOutputTensor;
use crate::proto::inference::{ModelInferRequest, ModelInferResponse};

use super::*;

/// The tensors whose names are in `names`, in their original order; duplicates are kept.
pub fn select<S: AsRef<str>>(tensors: Vec<Tensor>, names: &[S]) -> Vec<Tensor> {
    tensors
        .into_iter()
        .filter(|t| names.iter().any(|n| n.as_ref() == t.name))
        .collect()
}

/// Renames the tensors that `renames` has a key for (a step's `tensorMap`).
pub fn rename(tensors: &mut [Tensor], renames: &HashMap<String, String>) {
    for t in tensors {
        if let Some(new) = renames.get(&t.name) {
            t.name.clone_from(new);
        }
    }
}

fn input_to_output(t: InferInputTensor) -> InferOutputTensor {
    InferOutputTensor {
        name: t.name,
        datatype: t.datatype,
        shape: t.shape,
        parameters: t.parameters,
        contents: t.contents,
    }
}

fn output_to_input(t: InferOutputTensor) -> InferInputTensor {
    InferInputTensor {
        name: t.name,
        datatype: t.datatype,
        shape: t.shape,
        parameters: t.parameters,
        contents: t.contents,
    }
}

/// `inputs → outputs` (§5.1): the request's tensors become the response's, in the same wire form.
/// `id` and `parameters` are kept; model name and version are left empty (the pipeline gateway
/// fills in the name it answers for); requested outputs are dropped.
pub fn request_to_response(request: ModelInferRequest) -> ModelInferResponse {
    ModelInferResponse {
        model_name: String::new(),
        model_version: String::new(),
        id: request.id,
        parameters: request.parameters,
        outputs: request.inputs.into_iter().map(input_to_output).collect(),
        raw_output_contents: request.raw_input_contents,
    }
}

/// `outputs → inputs` (§5.1): the response's tensors become a request's, in the same wire form.
/// `id` and `parameters` are kept; model name and version are dropped (the next model is not the
/// one that answered).
pub fn response_to_request(response: ModelInferResponse) -> ModelInferRequest {
    ModelInferRequest {
        model_name: String::new(),
        model_version: String::new(),
        id: response.id,
        parameters: response.parameters,
        inputs: response.outputs.into_iter().map(output_to_input).collect(),
        outputs: Vec::new(),
        raw_input_contents: response.raw_output_contents,
    }
}

/// Keeps the wire tensors for which `keep(name)` holds, with their raw entries. Checks that raw
/// entries line up with tensors, since dropping by index would otherwise shift data onto the
/// wrong tensor.
fn retain_wire<T>(
    tensors: &mut Vec<T>,
    raw: &mut Vec<Bytes>,
    name: impl Fn(&T) -> &str,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<(), TensorError> {
    if !raw.is_empty() && raw.len() != tensors.len() {
        return Err(TensorError::RawCountMismatch {
            raw: raw.len(),
            tensors: tensors.len(),
        });
    }
    let kept: Vec<bool> = tensors.iter().map(|t| keep(name(t))).collect();
    let mut flags = kept.iter();
    tensors.retain(|_| *flags.next().unwrap_or(&false));
    if !raw.is_empty() {
        let mut flags = kept.iter();
        raw.retain(|_| *flags.next().unwrap_or(&false));
    }
    Ok(())
}

/// Filters a request's inputs by name without decoding them (`inputs → inputs`, §5.1).
pub fn retain_request_inputs(
    request: &mut ModelInferRequest,
    keep: impl FnMut(&str) -> bool,
) -> Result<(), TensorError> {
    retain_wire(&mut request.inputs, &mut request.raw_input_contents, |t| &t.name, keep)
}

/// Filters a response's outputs by name without decoding them (`outputs → outputs`, §5.1).
pub fn retain_response_outputs(
    response: &mut ModelInferResponse,
    keep: impl FnMut(&str) -> bool,
) -> Result<(), TensorError> {
    retain_wire(
        &mut response.outputs,
        &mut response.raw_output_contents,
        |t| &t.name,
        keep,
    )
}
