//! Open Inference Protocol JSON (the REST form) ↔ tensors: `{"id", "parameters", "inputs":
//! [{"name", "datatype", "shape", "data"}]}` for requests, `outputs` for responses. `data`
//! may be flat or nested (row-major); BYTES elements are strings; FP16 values are numbers.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::proto::inference::infer_parameter::ParameterChoice;
use crate::proto::inference::InferParameter;
use crate::tensor::Parameters;

use crate::proto::inference::ModelInferRequest;
use crate::tensor::{DataType, Encoding, InferMessage, Tensor, TensorData};

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

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// IEEE 754 binary32 → binary16 bits (round to nearest even; overflow to infinity).
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rounded = (m + half - 1 + ((m >> shift) & 1)) >> shift;
        return sign | rounded as u16;
    }
    let rounded = mant + 0xfff + ((mant >> 13) & 1);
    if rounded & 0x80_0000 != 0 {
        return f32_to_f16_bits(f32::from_bits((bits & 0xff80_0000) + 0x80_0000));
    }
    sign | ((e as u16) << 10) | (rounded >> 13) as u16
}

/// binary16 bits → binary32.
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let mant = (h & 0x3ff) as f32;
    match exp {
        0 => sign * mant * 2f32.powi(-24),
        0x1f if mant == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        _ => sign * (1.0 + mant / 1024.0) * 2f32.powi(exp - 15),
    }
}

/// One JSON tensor (`name`, `datatype`, `shape`, `data`).
pub fn tensor_from_json(v: &Value) -> Result<Tensor, JsonError> {
    let name = v["name"]
        .as_str()
        .ok_or_else(|| JsonError::Shape("a tensor has no \"name\"".into()))?;
    let datatype: DataType = v["datatype"]
        .as_str()
        .ok_or_else(|| JsonError::Shape(format!("tensor {name} has no \"datatype\"")))?
        .parse()
        .map_err(|_| JsonError::Shape(format!("tensor {name}: unknown datatype {}", v["datatype"])))?;
    let shape = v["shape"]
        .as_array()
        .ok_or_else(|| JsonError::Shape(format!("tensor {name} has no \"shape\" array")))?
        .iter()
        .map(|d| {
            d.as_i64()
                .ok_or_else(|| JsonError::Shape(format!("tensor {name}: shape {d} is not an integer")))
        })
        .collect::<Result<Vec<i64>, _>>()?;
    let mut items = Vec::new();
    flatten(&v["data"], &mut items);
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
                .map(|f| f32_to_f16_bits(f as f32))
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
    tensor.parameters = parameters_from_json(&v["parameters"]);
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
    let inputs = v["inputs"]
        .as_array()
        .ok_or_else(|| JsonError::Shape("the request has no \"inputs\" array".into()))?;
    let mut offset = 0usize;
    let mut tensors = Vec::with_capacity(inputs.len());
    for input in inputs {
        let size = input["parameters"][BINARY_DATA_SIZE].as_u64();
        let tensor = match size {
            None => tensor_from_json(input)?,
            Some(n) => {
                let name = input["name"]
                    .as_str()
                    .ok_or_else(|| JsonError::Shape("a tensor has no \"name\"".into()))?;
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
                let shape: Vec<i64> = input["shape"]
                    .as_array()
                    .ok_or_else(|| JsonError::Shape(format!("tensor {name} has no \"shape\"")))?
                    .iter()
                    .map(|d| {
                        d.as_i64()
                            .ok_or_else(|| JsonError::Shape(format!("tensor {name}: bad shape {d}")))
                    })
                    .collect::<Result<_, _>>()?;
                let mut parameters = parameters_from_json(&input["parameters"]);
                parameters.remove(BINARY_DATA_SIZE);
                let raw = Bytes::copy_from_slice(&binary[offset..end]);
                offset = end;
                Tensor::from_raw(
                    name,
                    input["datatype"].as_str().unwrap_or_default(),
                    &shape,
                    &parameters,
                    &raw,
                )?
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
        id: v["id"].as_str().unwrap_or_default().to_string(),
        parameters: parameters_from_json(&v["parameters"]),
        tensors,
        encoding: Encoding::Typed,
    }
    .to_request()?)
}

/// Parameters as a JSON object (`None` when there are none).
pub fn parameters_to_json(parameters: &Parameters) -> Option<Value> {
    if parameters.is_empty() {
        return None;
    }
    let sorted: BTreeMap<&String, &InferParameter> = parameters.iter().collect();
    let object: Map<String, Value> = sorted
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
        .collect();
    Some(Value::Object(object))
}

/// A JSON `parameters` object → parameters. Numbers keep their kind (integer, unsigned beyond
/// `i64`, double); nested values are kept as their JSON text; `null`s are dropped.
pub fn parameters_from_json(v: &Value) -> Parameters {
    let Some(object) = v.as_object() else {
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
        TensorData::Fp16(v) => json!(v.iter().map(|h| f16_bits_to_f32(*h)).collect::<Vec<_>>()),
        TensorData::Fp32(v) => json!(v),
        TensorData::Fp64(v) => json!(v),
        TensorData::Bytes(v) => json!(v
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()),
    };
    let mut v = json!({"name": t.name, "datatype": t.datatype().as_str(), "shape": t.shape, "data": data});
    if let (Some(p), Some(o)) = (parameters_to_json(&t.parameters), v.as_object_mut()) {
        o.insert("parameters".into(), p);
    }
    v
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
    fn fp16_conversion_matches_known_values() {
        assert_eq!(f32_to_f16_bits(1.0), 0x3c00);
        assert_eq!(f32_to_f16_bits(-2.0), 0xc000);
        assert_eq!(f32_to_f16_bits(65504.0), 0x7bff);
        assert_eq!(f32_to_f16_bits(1e6), 0x7c00);
        assert_eq!(f16_bits_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
    }
}
