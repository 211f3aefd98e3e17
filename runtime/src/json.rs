//! Open Inference Protocol JSON (the REST form) ↔ tensors: `{"id", "parameters", "inputs":
//! [{"name", "datatype", "shape", "data"}]}` for requests, `outputs` for responses. `data`
//! may be flat or nested (row-major); BYTES elements are strings; FP16 values are numbers.

use bytes::Bytes;
use serde_json::{json, Value};

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
    Ok(Tensor::new(name, shape, data)?)
}

/// A JSON inference request → the protobuf request written to a pipeline's inputs topic.
pub fn request_from_json(v: &Value) -> Result<ModelInferRequest, JsonError> {
    let inputs = v["inputs"]
        .as_array()
        .ok_or_else(|| JsonError::Shape("the request has no \"inputs\" array".into()))?;
    let tensors = inputs.iter().map(tensor_from_json).collect::<Result<Vec<_>, _>>()?;
    Ok(InferMessage {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        parameters: Default::default(),
        tensors,
        encoding: Encoding::Typed,
    }
    .to_request()?)
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
    json!({"name": t.name, "datatype": t.datatype().as_str(), "shape": t.shape, "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

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
