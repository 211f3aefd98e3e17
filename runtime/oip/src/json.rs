//! Open Inference Protocol JSON (the REST form) ↔ tensors: `{"id", "parameters", "inputs":
//! [{"name", "datatype", "shape", "data"}]}` for requests, `outputs` for responses. `data`
//! may be flat or nested (row-major); BYTES elements are strings; FP16 values are numbers.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::proto::inference::infer_parameter::ParameterChoice;
use crate::proto::inference::InferParameter;
use crate::tensor::Parameters;

use crate::proto::inference::{ModelInferRequest, ModelInferResponse};
use crate::tensor::{DataType, Encoding, InferMessage, Tensor, TensorData, TensorError};

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("{0}")]
    Shape(String),
    #[error("tensor {tensor}: element {index} is {found}, expected {expected}")]
    Element {
        tensor: String,
        index: usize,
        found: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Tensor(#[from] crate::tensor::TensorError),
}

/// The JSON form of one tensor: a request's `inputs[]`, a response's `outputs[]`. `data` stays a
/// JSON value until the datatype says how to read its elements (flat or nested, row-major).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WireTensor {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// An inference request's JSON body; `inputs` are read one by one so that an error names the
/// input (`inputs[1]: missing field `shape``).
#[derive(Debug, Deserialize)]
struct WireRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<Value>,
}

/// An inference response's JSON body.
#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    model_name: Option<String>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    outputs: Vec<Value>,
}

/// What a request asks of the response's outputs: `outputs[]` and `parameters`.
#[derive(Debug, Default, Deserialize)]
struct WireOutputRequest {
    #[serde(default)]
    outputs: Vec<WireRequestedOutput>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct WireRequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// A request as written: `{"id", "parameters"?, "inputs", "outputs"?}`.
#[derive(Serialize)]
struct WireRequestOut<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<WireTensor>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    outputs: Vec<WireOutputName<'a>>,
}

#[derive(Serialize)]
struct WireOutputName<'a> {
    name: &'a str,
}

/// A response as written: `{"model_name", "model_version"?, "id", "parameters"?, "outputs"}`.
#[derive(Serialize)]
struct WireResponseOut<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    model_version: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Map<String, Value>>,
    outputs: Vec<WireTensor>,
}

/// `what`: the JSON form at `v`, or a `JsonError` naming `context` and serde's reason.
fn wire<'a, T: Deserialize<'a>>(v: &'a Value, context: &str) -> Result<T, JsonError> {
    T::deserialize(v).map_err(|e| JsonError::Shape(format!("{context}: {e}")))
}

fn is_true(parameters: &Option<Map<String, Value>>, key: &str) -> bool {
    parameters.as_ref().and_then(|p| p.get(key)).and_then(Value::as_bool) == Some(true)
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// One JSON tensor (`name`, `datatype`, `shape`, `data`).
pub fn tensor_from_json(v: &Value) -> Result<Tensor, JsonError> {
    tensor_from_wire(&wire(v, "a tensor")?)
}

/// One tensor of its JSON form.
pub fn tensor_from_wire(w: &WireTensor) -> Result<Tensor, JsonError> {
    let name = w.name.as_str();
    let datatype: DataType = w
        .datatype
        .parse()
        .map_err(|_| JsonError::Shape(format!("tensor {name}: unknown datatype {:?}", w.datatype)))?;
    let shape = w.shape.clone();
    let mut items = Vec::new();
    if let Some(data) = &w.data {
        flatten(data, &mut items);
    }
    let bad = |index: usize, found: &Value, expected: &'static str| JsonError::Element {
        tensor: name.to_string(),
        index,
        found: found.to_string(),
        expected,
    };
    macro_rules! ints {
        ($variant:ident, $t:ty) => {
            TensorData::$variant(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        x.as_i64()
                            .map(|n| n as i128)
                            .or_else(|| x.as_u64().map(|n| n as i128))
                            .and_then(|n| <$t>::try_from(n).ok())
                            .ok_or_else(|| bad(i, x, stringify!($t)))
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
    }
    let floats = |expected| -> Result<Vec<f64>, JsonError> {
        items
            .iter()
            .enumerate()
            .map(|(i, x)| x.as_f64().ok_or_else(|| bad(i, x, expected)))
            .collect()
    };
    let data = match datatype {
        DataType::Bool => TensorData::Bool(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| x.as_bool().ok_or_else(|| bad(i, x, "a boolean")))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Uint8 => ints!(Uint8, u8),
        DataType::Uint16 => ints!(Uint16, u16),
        DataType::Uint32 => ints!(Uint32, u32),
        DataType::Uint64 => ints!(Uint64, u64),
        DataType::Int8 => ints!(Int8, i8),
        DataType::Int16 => ints!(Int16, i16),
        DataType::Int32 => ints!(Int32, i32),
        DataType::Int64 => ints!(Int64, i64),
        DataType::Fp16 => TensorData::Fp16(
            floats("a number")?
                .into_iter()
                .map(|f| half::f16::from_f64(f).to_bits())
                .collect(),
        ),
        DataType::Fp32 => TensorData::Fp32(floats("a number")?.into_iter().map(|f| f as f32).collect()),
        DataType::Fp64 => TensorData::Fp64(floats("a number")?),
        DataType::Bytes => TensorData::Bytes(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    x.as_str()
                        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                        .ok_or_else(|| bad(i, x, "a string"))
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let mut tensor = Tensor::new(name, shape, data)?;
    tensor.parameters = parameters_from_map(w.parameters.as_ref());
    Ok(tensor)
}

/// A JSON inference request → the protobuf request written to a pipeline's inputs topic.
pub fn request_from_json(v: &Value) -> Result<ModelInferRequest, JsonError> {
    request_from_json_and_binary(v, &[])
}

/// The key of an input's (or output's) byte count in Triton's binary tensor data extension.
pub const BINARY_DATA_SIZE: &str = "binary_data_size";

/// A request in Triton's binary tensor data extension (what `tritonclient` sends by default):
/// the JSON header, then `binary`, the raw contents (little-endian; BYTES as 4-byte length +
/// bytes) of every input whose `parameters.binary_data_size` gives its byte count, in order.
/// Plain JSON requests have no binary part.
pub fn request_from_json_and_binary(v: &Value, binary: &[u8]) -> Result<ModelInferRequest, JsonError> {
    let request: WireRequest = wire(v, "the request")?;
    let mut offset = 0usize;
    let mut tensors = Vec::with_capacity(request.inputs.len());
    for (i, input) in request.inputs.iter().enumerate() {
        let input: WireTensor = wire(input, &format!("inputs[{i}]"))?;
        let size = input
            .parameters
            .as_ref()
            .and_then(|p| p.get(BINARY_DATA_SIZE))
            .and_then(Value::as_u64);
        let tensor = match size {
            None => tensor_from_wire(&input)?,
            Some(n) => {
                let name = input.name.as_str();
                let end = usize::try_from(n)
                    .ok()
                    .and_then(|n| offset.checked_add(n))
                    .filter(|end| *end <= binary.len())
                    .ok_or_else(|| {
                        JsonError::Shape(format!(
                            "input {name}: binary_data_size {n} at byte {offset} runs past the {} bytes of binary data",
                            binary.len()
                        ))
                    })?;
                let mut parameters = parameters_from_map(input.parameters.as_ref());
                parameters.remove(BINARY_DATA_SIZE);
                let raw = Bytes::copy_from_slice(&binary[offset..end]);
                offset = end;
                Tensor::from_raw(name, &input.datatype, &input.shape, &parameters, &raw)?
            }
        };
        tensors.push(tensor);
    }
    if offset != binary.len() {
        return Err(JsonError::Shape(format!(
            "{} bytes of binary data follow the JSON, but its inputs' binary_data_size add up to {offset}",
            binary.len()
        )));
    }
    Ok(InferMessage {
        id: request.id.unwrap_or_default(),
        parameters: parameters_from_map(request.parameters.as_ref()),
        tensors,
        encoding: Encoding::Typed,
    }
    .to_request()?)
}

/// Parameters as the map of a JSON object, by name (`None` when there are none).
pub fn parameters_to_map(parameters: &Parameters) -> Option<Map<String, Value>> {
    if parameters.is_empty() {
        return None;
    }
    let sorted: BTreeMap<&String, &InferParameter> = parameters.iter().collect();
    Some(
        sorted
            .into_iter()
            .map(|(k, p)| {
                let v = match &p.parameter_choice {
                    Some(ParameterChoice::BoolParam(b)) => json!(b),
                    Some(ParameterChoice::Int64Param(i)) => json!(i),
                    Some(ParameterChoice::StringParam(s)) => json!(s),
                    Some(ParameterChoice::DoubleParam(d)) => json!(d),
                    Some(ParameterChoice::Uint64Param(u)) => json!(u),
                    None => Value::Null,
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// A JSON `parameters` object → parameters. Numbers keep their kind (integer, unsigned beyond
/// `i64`, double); nested values are kept as their JSON text; `null`s are dropped. Anything but
/// an object has no parameters.
pub fn parameters_from_json(v: &Value) -> Parameters {
    parameters_from_map(v.as_object())
}

/// [`parameters_from_json`] of an object already read.
pub fn parameters_from_map(object: Option<&Map<String, Value>>) -> Parameters {
    let Some(object) = object else {
        return Parameters::default();
    };
    object
        .iter()
        .filter_map(|(k, v)| {
            let choice = match v {
                Value::Null => return None,
                Value::Bool(b) => ParameterChoice::BoolParam(*b),
                Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                    (Some(i), _) => ParameterChoice::Int64Param(i),
                    (None, Some(u)) => ParameterChoice::Uint64Param(u),
                    _ => ParameterChoice::DoubleParam(n.as_f64().unwrap_or(f64::NAN)),
                },
                Value::String(s) => ParameterChoice::StringParam(s.clone()),
                other => ParameterChoice::StringParam(other.to_string()),
            };
            Some((
                k.clone(),
                InferParameter {
                    parameter_choice: Some(choice),
                },
            ))
        })
        .collect()
}

/// A tensor as JSON (`data` flat, as the protocol's JSON form has it).
pub fn tensor_to_json(t: &Tensor) -> Value {
    serde_json::to_value(tensor_to_wire(t)).unwrap_or(Value::Null)
}

/// A tensor in its JSON form.
pub fn tensor_to_wire(t: &Tensor) -> WireTensor {
    let data = match &t.data {
        TensorData::Bool(v) => json!(v),
        TensorData::Uint8(v) => json!(v),
        TensorData::Uint16(v) => json!(v),
        TensorData::Uint32(v) => json!(v),
        TensorData::Uint64(v) => json!(v),
        TensorData::Int8(v) => json!(v),
        TensorData::Int16(v) => json!(v),
        TensorData::Int32(v) => json!(v),
        TensorData::Int64(v) => json!(v),
        TensorData::Fp16(v) => json!(v.iter().map(|h| half::f16::from_bits(*h).to_f32()).collect::<Vec<_>>()),
        TensorData::Fp32(v) => json!(v),
        TensorData::Fp64(v) => json!(v),
        TensorData::Bytes(v) => json!(v
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()),
    };
    WireTensor {
        name: t.name.clone(),
        datatype: t.datatype().as_str().to_string(),
        shape: t.shape.clone(),
        parameters: parameters_to_map(&t.parameters),
        data: Some(data),
    }
}

/// A request as Open Inference Protocol JSON: `{"id", "parameters"?, "inputs", "outputs"?}`
/// (`data` flat; the model name goes in the URL, not the body).
pub fn request_to_json(request: &ModelInferRequest) -> Result<Value, TensorError> {
    let message = InferMessage::from_request(request)?;
    let body = WireRequestOut {
        id: &message.id,
        parameters: parameters_to_map(&message.parameters),
        inputs: message.tensors.iter().map(tensor_to_wire).collect(),
        outputs: request
            .outputs
            .iter()
            .map(|o| WireOutputName { name: &o.name })
            .collect(),
    };
    Ok(serde_json::to_value(body).unwrap_or(Value::Null))
}

/// A response as Open Inference Protocol JSON: `{"model_name", "model_version"?, "id",
/// "parameters"?, "outputs"}`.
pub fn response_to_json(response: &ModelInferResponse) -> Result<Value, TensorError> {
    response_to_json_and_binary(response, &OutputForm::default()).map(|(v, _)| v)
}

/// Which outputs a JSON response carries, and which of them travel as binary data (Triton's
/// binary tensor data extension) instead of JSON `data`.
#[derive(Clone, Debug, Default)]
pub struct OutputForm {
    /// The request's `outputs` names; empty: every output.
    pub only: Vec<String>,
    /// Outputs sent as binary (`outputs[].parameters.binary_data`).
    pub binary: Vec<String>,
    /// Every output as binary (`parameters.binary_data_output`).
    pub all_binary: bool,
}

impl OutputForm {
    /// What a JSON request asks for.
    pub fn of_request(v: &Value) -> OutputForm {
        // A body that is no request is refused by the request's own reading, not here.
        let asked = WireOutputRequest::deserialize(v).unwrap_or_default();
        let names = |binary_only: bool| {
            asked
                .outputs
                .iter()
                .filter(|o| !binary_only || is_true(&o.parameters, "binary_data"))
                .map(|o| o.name.clone())
                .collect()
        };
        OutputForm {
            only: names(false),
            binary: names(true),
            all_binary: is_true(&asked.parameters, "binary_data_output"),
        }
    }
}

/// A response as JSON plus the binary part (empty unless `form` asks for binary outputs): each
/// binary output has `parameters.binary_data_size` and no `data`; its raw contents follow the
/// JSON in output order.
pub fn response_to_json_and_binary(
    response: &ModelInferResponse,
    form: &OutputForm,
) -> Result<(Value, Vec<u8>), TensorError> {
    let message = InferMessage::from_response(response)?;
    let mut binary = Vec::new();
    let mut outputs = Vec::new();
    for t in &message.tensors {
        if !form.only.is_empty() && !form.only.contains(&t.name) {
            continue;
        }
        let mut wire = tensor_to_wire(t);
        if form.all_binary || form.binary.contains(&t.name) {
            let raw = t.to_raw()?;
            wire.data = None;
            // Beside the tensor's own parameters, not instead of them.
            wire.parameters
                .get_or_insert_with(Map::new)
                .insert(BINARY_DATA_SIZE.into(), json!(raw.len()));
            binary.extend_from_slice(&raw);
        }
        outputs.push(wire);
    }
    let body = WireResponseOut {
        model_name: &response.model_name,
        model_version: &response.model_version,
        id: &message.id,
        parameters: parameters_to_map(&message.parameters),
        outputs,
    };
    Ok((serde_json::to_value(body).unwrap_or(Value::Null), binary))
}

/// A JSON inference response → the protobuf response (typed contents).
pub fn response_from_json(v: &Value) -> Result<ModelInferResponse, JsonError> {
    let wire_response: WireResponse = wire(v, "the response")?;
    let tensors = wire_response
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| tensor_from_wire(&wire(o, &format!("outputs[{i}]"))?))
        .collect::<Result<Vec<_>, _>>()?;
    let mut response = InferMessage {
        id: wire_response.id.unwrap_or_default(),
        parameters: parameters_from_map(wire_response.parameters.as_ref()),
        tensors,
        encoding: Encoding::Typed,
    }
    .to_response()?;
    response.model_name = wire_response.model_name.unwrap_or_default();
    response.model_version = wire_response.model_version.unwrap_or_default();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_tensor_data_extension() {
        let header = json!({"id": "b", "inputs": [
            {"name": "x", "datatype": "INT32", "shape": [2], "parameters": {"binary_data_size": 8}},
            {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["hi"], "parameters": {"content_type": "str"}},
            {"name": "f", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]});
        let mut binary = Vec::new();
        binary.extend_from_slice(&7i32.to_le_bytes());
        binary.extend_from_slice(&(-1i32).to_le_bytes());
        binary.extend_from_slice(&2.5f32.to_le_bytes());
        let request = request_from_json_and_binary(&header, &binary).expect("decodes");
        let message = InferMessage::from_request(&request).expect("tensors");
        assert_eq!(message.tensors[0].data, TensorData::Int32(vec![7, -1]));
        assert!(message.tensors[0].parameters.is_empty(), "binary_data_size is not kept");
        assert_eq!(
            message.tensors[1].data,
            TensorData::Bytes(vec![Bytes::from_static(b"hi")])
        );
        assert_eq!(
            tensor_to_json(&message.tensors[1])["parameters"],
            json!({"content_type": "str"})
        );
        assert_eq!(message.tensors[2].data, TensorData::Fp32(vec![2.5]));

        let short = request_from_json_and_binary(&header, &binary[..10])
            .unwrap_err()
            .to_string();
        assert_eq!(
            short,
            "input f: binary_data_size 4 at byte 8 runs past the 10 bytes of binary data"
        );
        let mut long = binary.clone();
        long.push(0);
        let long = request_from_json_and_binary(&header, &long).unwrap_err().to_string();
        assert_eq!(
            long,
            "13 bytes of binary data follow the JSON, but its inputs' binary_data_size add up to 12"
        );
        assert!(request_from_json(&header).is_err(), "binary inputs need their bytes");
    }

    #[test]
    fn every_datatype_round_trips_through_json() {
        let request = json!({"id": "r", "inputs": [
            {"name": "b", "datatype": "BOOL", "shape": [2], "data": [true, false]},
            {"name": "u8", "datatype": "UINT8", "shape": [2], "data": [0, 255]},
            {"name": "i64", "datatype": "INT64", "shape": [1, 2], "data": [[-5, 7]]},
            {"name": "h", "datatype": "FP16", "shape": [3], "data": [1.5, -2.0, 0.0]},
            {"name": "f", "datatype": "FP32", "shape": [2], "data": [0.25, 4]},
            {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["hello"]}]});
        let proto = request_from_json(&request).expect("converts");
        let back = InferMessage::from_request(&proto).expect("decodes");
        let json_back: Vec<Value> = back.tensors.iter().map(tensor_to_json).collect();
        assert_eq!(json_back[2]["data"], json!([-5, 7]));
        assert_eq!(json_back[3]["data"], json!([1.5, -2.0, 0.0]));
        assert_eq!(json_back[5]["data"], json!(["hello"]));
        assert_eq!(back.id, "r");
    }

    #[test]
    fn bad_elements_name_the_tensor_and_the_index() {
        let err = tensor_from_json(&json!({"name": "x", "datatype": "UINT8", "shape": [2], "data": [1, 300]}))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "tensor x: element 1 is 300, expected u8");
    }

    #[test]
    fn malformed_bodies_name_what_is_wrong_and_where() {
        let err = |body: Value| request_from_json(&body).unwrap_err().to_string();
        assert_eq!(err(json!({"id": "r"})), "the request: missing field `inputs`");
        assert_eq!(
            err(json!({"inputs": [
                {"name": "x", "datatype": "INT32", "shape": [1], "data": [1]},
                {"name": "y", "shape": [1]}]})),
            "inputs[1]: missing field `datatype`"
        );
        assert_eq!(
            err(json!({"inputs": [{"name": "x", "datatype": "INT32", "shape": ["2"], "data": [1, 2]}]})),
            "inputs[0]: invalid type: string \"2\", expected i64"
        );
        assert_eq!(
            err(json!({"inputs": [{"name": "x", "datatype": "INT33", "shape": [1], "data": [1]}]})),
            "tensor x: unknown datatype \"INT33\""
        );
        assert_eq!(
            err(json!({"id": 5, "inputs": []})),
            "the request: invalid type: integer `5`, expected a string"
        );
        let response = response_from_json(&json!({"outputs": [{"name": "o"}]})).unwrap_err();
        assert_eq!(response.to_string(), "outputs[0]: missing field `datatype`");
        // What a request asks of the outputs is read from the same body, leniently.
        let form = OutputForm::of_request(&json!({"inputs": [], "outputs": [{"name": "a"}, {"name": "b",
            "parameters": {"binary_data": true}}], "parameters": {"binary_data_output": false}}));
        assert_eq!(
            (form.only, form.binary, form.all_binary),
            (vec!["a".to_string(), "b".to_string()], vec!["b".to_string()], false)
        );
    }

    #[test]
    fn fp16_values_round_to_nearest_half() {
        let data = |values: &str| {
            let v: Value = serde_json::from_str(&format!(
                r#"{{"name": "h", "datatype": "FP16", "shape": [4], "data": {values}}}"#
            ))
            .unwrap();
            tensor_from_json(&v).unwrap().data
        };
        // 1, -2, the largest half, and an overflow to infinity.
        assert_eq!(
            data("[1.0, -2.0, 65504.0, 1e6]"),
            TensorData::Fp16(vec![0x3c00, 0xc000, 0x7bff, 0x7c00])
        );
        let third = Tensor {
            name: "h".into(),
            shape: vec![2],
            parameters: Default::default(),
            data: TensorData::Fp16(vec![0x3555, 0x0001]),
        };
        assert_eq!(
            tensor_to_json(&third)["data"],
            json!([0.333_251_95_f32, 2f32.powi(-24)])
        );
    }

    #[test]
    fn outputs_as_binary_data_and_only_those_requested() {
        let response = InferMessage {
            id: "r".into(),
            parameters: Default::default(),
            tensors: vec![Tensor::new("a", vec![2], TensorData::Int32(vec![1, 2])).unwrap(), {
                let mut b = Tensor::new("b", vec![1], TensorData::Fp64(vec![0.5])).unwrap();
                b.parameters = parameters_from_json(&json!({"content_type": "np"}));
                b
            }],
            encoding: Encoding::Typed,
        }
        .to_response()
        .unwrap();
        let form = OutputForm::of_request(&json!({"inputs": [], "outputs": [
            {"name": "a", "parameters": {"binary_data": true}}]}));
        let (v, binary) = response_to_json_and_binary(&response, &form).unwrap();
        assert_eq!(
            v["outputs"],
            json!([{"name": "a", "datatype": "INT32", "shape": [2], "parameters": {"binary_data_size": 8}}])
        );
        assert_eq!(binary, [1, 0, 0, 0, 2, 0, 0, 0]);
        let all = OutputForm::of_request(&json!({"parameters": {"binary_data_output": true}}));
        let (v, binary) = response_to_json_and_binary(&response, &all).unwrap();
        // A binary output keeps its own parameters beside its size.
        assert_eq!(
            v["outputs"][1]["parameters"],
            json!({"binary_data_size": 8, "content_type": "np"})
        );
        assert_eq!(binary.len(), 16);
        let (v, binary) = response_to_json_and_binary(&response, &OutputForm::default()).unwrap();
        assert_eq!(v["outputs"][1]["data"], json!([0.5]));
        assert!(binary.is_empty());
    }

    #[test]
    fn requests_and_responses_round_trip_through_json() {
        let mut parameters = Parameters::default();
        parameters.insert(
            "content_type".into(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::StringParam("np".into())),
            },
        );
        parameters.insert(
            "n".into(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::Int64Param(-3)),
            },
        );
        let message = InferMessage {
            id: "r1".into(),
            parameters,
            tensors: vec![Tensor::new("x", vec![1, 2], TensorData::Fp64(vec![0.5, 2.0])).unwrap()],
            encoding: Encoding::Raw,
        };
        let request = message.to_request().unwrap();
        let v = request_to_json(&request).unwrap();
        assert_eq!(v["id"], "r1");
        assert_eq!(v["parameters"], json!({"content_type": "np", "n": -3}));
        assert_eq!(v["inputs"][0]["data"], json!([0.5, 2.0]));
        let back = request_from_json(&v).unwrap();
        assert_eq!(InferMessage::from_request(&back).unwrap().tensors, message.tensors);
        assert_eq!(parameters_from_json(&v["parameters"]), message.parameters);

        let mut response = message.to_response().unwrap();
        response.model_name = "m".into();
        let v = response_to_json(&response).unwrap();
        assert_eq!(v["model_name"], "m");
        let back = response_from_json(&v).unwrap();
        assert_eq!(back.model_name, "m");
        assert_eq!(back.id, "r1");
        assert_eq!(back.parameters, message.parameters);
        assert_eq!(InferMessage::from_response(&back).unwrap().tensors, message.tensors);
    }
}
