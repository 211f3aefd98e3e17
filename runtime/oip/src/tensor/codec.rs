//! Tensors on the wire: typed `contents` or raw little-endian bytes (§4.2), decoded into
//! [`Tensor`] and encoded back in the form a message came in.

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::inference::model_infer_request::InferInputTensor;
use crate::proto::inference::model_infer_response::InferOutputTensor;
use crate::proto::inference::{InferTensorContents, ModelInferRequest, ModelInferResponse};

use super::*;

impl Tensor {
    /// Decodes one tensor from typed contents. Exactly the field of `datatype` may be set; values
    /// out of range for a narrow datatype (e.g. 300 for UINT8) are errors.
    pub fn from_contents(
        name: &str,
        datatype: &str,
        shape: &[i64],
        parameters: &Parameters,
        contents: Option<&InferTensorContents>,
    ) -> Result<Tensor, TensorError> {
        let dt = parse_datatype(name, datatype)?;
        let expected = element_count(name, shape)?;
        let empty = InferTensorContents::default();
        let contents = contents.unwrap_or(&empty);
        let data = typed_data(name, dt, contents)?;
        let tensor = Tensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            parameters: parameters.clone(),
            data,
        };
        if tensor.data.len() != expected {
            return Err(TensorError::ElementCount {
                tensor: name.to_string(),
                shape: shape.to_vec(),
                expected,
                actual: tensor.data.len(),
            });
        }
        Ok(tensor)
    }

    /// Decodes one tensor from its raw contents entry.
    pub fn from_raw(
        name: &str,
        datatype: &str,
        shape: &[i64],
        parameters: &Parameters,
        raw: &Bytes,
    ) -> Result<Tensor, TensorError> {
        let dt = parse_datatype(name, datatype)?;
        let expected = element_count(name, shape)?;
        let data = raw_data(name, dt, expected, raw)?;
        Ok(Tensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            parameters: parameters.clone(),
            data,
        })
    }

    /// Typed contents; FP16 has none (see the module docs).
    pub fn to_contents(&self) -> Result<InferTensorContents, TensorError> {
        self.check()?;
        let mut c = InferTensorContents::default();
        match &self.data {
            TensorData::Bool(v) => c.bool_contents = v.clone(),
            TensorData::Uint8(v) => c.uint_contents = v.iter().map(|&x| x.into()).collect(),
            TensorData::Uint16(v) => c.uint_contents = v.iter().map(|&x| x.into()).collect(),
            TensorData::Uint32(v) => c.uint_contents = v.clone(),
            TensorData::Uint64(v) => c.uint64_contents = v.clone(),
            TensorData::Int8(v) => c.int_contents = v.iter().map(|&x| x.into()).collect(),
            TensorData::Int16(v) => c.int_contents = v.iter().map(|&x| x.into()).collect(),
            TensorData::Int32(v) => c.int_contents = v.clone(),
            TensorData::Int64(v) => c.int64_contents = v.clone(),
            TensorData::Fp16(_) => {
                return Err(TensorError::Fp16NotTyped {
                    tensor: self.name.clone(),
                })
            }
            TensorData::Fp32(v) => c.fp32_contents = v.clone(),
            TensorData::Fp64(v) => c.fp64_contents = v.clone(),
            TensorData::Bytes(v) => c.bytes_contents = v.clone(),
        }
        Ok(c)
    }

    /// Raw contents: little-endian elements; BYTES as 4-byte little-endian length + bytes.
    pub fn to_raw(&self) -> Result<Bytes, TensorError> {
        self.check()?;
        fn le<T, const N: usize>(v: &[T], to_bytes: impl Fn(&T) -> [u8; N]) -> Bytes {
            let mut out = BytesMut::with_capacity(v.len() * N);
            for x in v {
                out.put_slice(&to_bytes(x));
            }
            out.freeze()
        }
        Ok(match &self.data {
            TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect::<Vec<u8>>().into(),
            TensorData::Uint8(v) => Bytes::copy_from_slice(v),
            TensorData::Uint16(v) | TensorData::Fp16(v) => le(v, |x| x.to_le_bytes()),
            TensorData::Uint32(v) => le(v, |x| x.to_le_bytes()),
            TensorData::Uint64(v) => le(v, |x| x.to_le_bytes()),
            TensorData::Int8(v) => le(v, |x| x.to_le_bytes()),
            TensorData::Int16(v) => le(v, |x| x.to_le_bytes()),
            TensorData::Int32(v) => le(v, |x| x.to_le_bytes()),
            TensorData::Int64(v) => le(v, |x| x.to_le_bytes()),
            TensorData::Fp32(v) => le(v, |x| x.to_le_bytes()),
            TensorData::Fp64(v) => le(v, |x| x.to_le_bytes()),
            TensorData::Bytes(v) => {
                let total: usize = v.iter().map(|e| 4 + e.len()).sum();
                let mut out = BytesMut::with_capacity(total);
                for (element, e) in v.iter().enumerate() {
                    let len = u32::try_from(e.len()).map_err(|_| TensorError::RawBytesTooLong {
                        tensor: self.name.clone(),
                        element,
                    })?;
                    out.put_u32_le(len);
                    out.put_slice(e);
                }
                out.freeze()
            }
        })
    }

    fn to_input(&self, encoding: Encoding) -> Result<(InferInputTensor, Option<Bytes>), TensorError> {
        let (contents, raw) = self.encode_data(encoding)?;
        let t = InferInputTensor {
            name: self.name.clone(),
            datatype: self.datatype().as_str().to_string(),
            shape: self.shape.clone(),
            parameters: self.parameters.clone(),
            contents,
        };
        Ok((t, raw))
    }

    fn to_output(&self, encoding: Encoding) -> Result<(InferOutputTensor, Option<Bytes>), TensorError> {
        let (contents, raw) = self.encode_data(encoding)?;
        let t = InferOutputTensor {
            name: self.name.clone(),
            datatype: self.datatype().as_str().to_string(),
            shape: self.shape.clone(),
            parameters: self.parameters.clone(),
            contents,
        };
        Ok((t, raw))
    }

    fn encode_data(&self, encoding: Encoding) -> Result<(Option<InferTensorContents>, Option<Bytes>), TensorError> {
        Ok(match encoding {
            Encoding::Typed => (Some(self.to_contents()?), None),
            Encoding::Raw => (None, Some(self.to_raw()?)),
        })
    }
}

fn parse_datatype(tensor: &str, datatype: &str) -> Result<DataType, TensorError> {
    datatype.parse().map_err(|source| TensorError::UnknownDataType {
        tensor: tensor.to_string(),
        source,
    })
}

/// The non-empty typed fields, by name.
fn set_fields(c: &InferTensorContents) -> impl Iterator<Item = &'static str> + '_ {
    [
        ("bool_contents", c.bool_contents.is_empty()),
        ("int_contents", c.int_contents.is_empty()),
        ("int64_contents", c.int64_contents.is_empty()),
        ("uint_contents", c.uint_contents.is_empty()),
        ("uint64_contents", c.uint64_contents.is_empty()),
        ("fp32_contents", c.fp32_contents.is_empty()),
        ("fp64_contents", c.fp64_contents.is_empty()),
        ("bytes_contents", c.bytes_contents.is_empty()),
    ]
    .into_iter()
    .filter(|(_, empty)| !empty)
    .map(|(field, _)| field)
}

fn typed_data(tensor: &str, dt: DataType, c: &InferTensorContents) -> Result<TensorData, TensorError> {
    let Some(expected) = dt.contents_field() else {
        return fp16_typed(tensor, c);
    };
    if let Some(found) = set_fields(c).find(|&f| f != expected) {
        return Err(TensorError::WrongContentsField {
            tensor: tensor.to_string(),
            datatype: dt,
            expected,
            found,
        });
    }
    fn narrow<W: Copy + Into<i64>, N: TryFrom<W>>(tensor: &str, dt: DataType, v: &[W]) -> Result<Vec<N>, TensorError> {
        v.iter()
            .enumerate()
            .map(|(element, &x)| {
                N::try_from(x).map_err(|_| TensorError::OutOfRange {
                    tensor: tensor.to_string(),
                    datatype: dt,
                    element,
                    value: x.into(),
                })
            })
            .collect()
    }
    Ok(match dt {
        DataType::Bool => TensorData::Bool(c.bool_contents.clone()),
        DataType::Uint8 => TensorData::Uint8(narrow(tensor, dt, &c.uint_contents)?),
        DataType::Uint16 => TensorData::Uint16(narrow(tensor, dt, &c.uint_contents)?),
        DataType::Uint32 => TensorData::Uint32(c.uint_contents.clone()),
        DataType::Uint64 => TensorData::Uint64(c.uint64_contents.clone()),
        DataType::Int8 => TensorData::Int8(narrow(tensor, dt, &c.int_contents)?),
        DataType::Int16 => TensorData::Int16(narrow(tensor, dt, &c.int_contents)?),
        DataType::Int32 => TensorData::Int32(c.int_contents.clone()),
        DataType::Int64 => TensorData::Int64(c.int64_contents.clone()),
        DataType::Fp16 => return fp16_typed(tensor, c),
        DataType::Fp32 => TensorData::Fp32(c.fp32_contents.clone()),
        DataType::Fp64 => TensorData::Fp64(c.fp64_contents.clone()),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents.clone()),
    })
}

/// FP16 has no typed field: only an empty FP16 tensor can be decoded without raw contents.
fn fp16_typed(tensor: &str, c: &InferTensorContents) -> Result<TensorData, TensorError> {
    match set_fields(c).next() {
        None => Ok(TensorData::Fp16(Vec::new())),
        Some(_) => Err(TensorError::Fp16NotTyped {
            tensor: tensor.to_string(),
        }),
    }
}

fn raw_data(tensor: &str, dt: DataType, expected: usize, raw: &Bytes) -> Result<TensorData, TensorError> {
    let Some(size) = dt.element_size() else {
        return raw_bytes_elements(tensor, expected, raw).map(TensorData::Bytes);
    };
    // Checked before anything is allocated: the declared shape alone must not size a buffer.
    if expected.checked_mul(size) != Some(raw.len()) {
        return Err(TensorError::RawLength {
            tensor: tensor.to_string(),
            datatype: dt,
            expected,
            size,
            len: raw.len(),
        });
    }
    fn le<T, const N: usize>(raw: &[u8], from: impl Fn([u8; N]) -> T) -> Vec<T> {
        raw.chunks_exact(N)
            .map(|chunk| {
                let mut bytes = [0u8; N];
                bytes.copy_from_slice(chunk);
                from(bytes)
            })
            .collect()
    }
    Ok(match dt {
        DataType::Bool => TensorData::Bool(raw.iter().map(|&b| b != 0).collect()),
        DataType::Uint8 => TensorData::Uint8(raw.to_vec()),
        DataType::Uint16 => TensorData::Uint16(le(raw, u16::from_le_bytes)),
        DataType::Uint32 => TensorData::Uint32(le(raw, u32::from_le_bytes)),
        DataType::Uint64 => TensorData::Uint64(le(raw, u64::from_le_bytes)),
        DataType::Int8 => TensorData::Int8(le(raw, i8::from_le_bytes)),
        DataType::Int16 => TensorData::Int16(le(raw, i16::from_le_bytes)),
        DataType::Int32 => TensorData::Int32(le(raw, i32::from_le_bytes)),
        DataType::Int64 => TensorData::Int64(le(raw, i64::from_le_bytes)),
        DataType::Fp16 => TensorData::Fp16(le(raw, u16::from_le_bytes)),
        DataType::Fp32 => TensorData::Fp32(le(raw, f32::from_le_bytes)),
        DataType::Fp64 => TensorData::Fp64(le(raw, f64::from_le_bytes)),
        DataType::Bytes => TensorData::Bytes(raw_bytes_elements(tensor, expected, raw)?),
    })
}

/// Splits BYTES raw contents into exactly `expected` length-prefixed elements, sharing `raw`'s
/// buffer.
fn raw_bytes_elements(tensor: &str, expected: usize, raw: &Bytes) -> Result<Vec<Bytes>, TensorError> {
    // Every element takes at least its 4-byte length, which bounds the allocation by the input.
    let mut out = Vec::with_capacity(expected.min(raw.len() / 4));
    let mut offset = 0usize;
    for element in 0..expected {
        let truncated = || TensorError::RawBytesTruncated {
            tensor: tensor.to_string(),
            element,
            offset,
            len: raw.len(),
        };
        let header = raw.get(offset..offset + 4).ok_or_else(truncated)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let start = offset + 4;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= raw.len())
            .ok_or_else(truncated)?;
        out.push(raw.slice(start..end));
        offset = end;
    }
    if offset != raw.len() {
        return Err(TensorError::RawBytesTrailing {
            tensor: tensor.to_string(),
            expected,
            trailing: raw.len() - offset,
        });
    }
    Ok(out)
}

/// The fields of `InferInputTensor` and `InferOutputTensor`, which are the same.
struct WireTensor<'a> {
    name: &'a str,
    datatype: &'a str,
    shape: &'a [i64],
    parameters: &'a Parameters,
    contents: Option<&'a InferTensorContents>,
}

fn decode_all<'a>(
    tensors: impl ExactSizeIterator<Item = WireTensor<'a>>,
    raw: &[Bytes],
) -> Result<Vec<Tensor>, TensorError> {
    if raw.is_empty() {
        return tensors
            .map(|t| Tensor::from_contents(t.name, t.datatype, t.shape, t.parameters, t.contents))
            .collect();
    }
    if raw.len() != tensors.len() {
        return Err(TensorError::RawCountMismatch {
            raw: raw.len(),
            tensors: tensors.len(),
        });
    }
    tensors
        .zip(raw)
        .map(|(t, raw)| {
            if t.contents.is_some_and(|c| set_fields(c).next().is_some()) {
                return Err(TensorError::MixedContents {
                    tensor: t.name.to_string(),
                });
            }
            Tensor::from_raw(t.name, t.datatype, t.shape, t.parameters, raw)
        })
        .collect()
}

/// Decodes a request's input tensors, typed or raw.
pub fn decode_request(request: &ModelInferRequest) -> Result<Vec<Tensor>, TensorError> {
    let tensors = request.inputs.iter().map(|t| WireTensor {
        name: &t.name,
        datatype: &t.datatype,
        shape: &t.shape,
        parameters: &t.parameters,
        contents: t.contents.as_ref(),
    });
    decode_all(tensors, &request.raw_input_contents)
}

/// Decodes a response's output tensors, typed or raw.
pub fn decode_response(response: &ModelInferResponse) -> Result<Vec<Tensor>, TensorError> {
    let tensors = response.outputs.iter().map(|t| WireTensor {
        name: &t.name,
        datatype: &t.datatype,
        shape: &t.shape,
        parameters: &t.parameters,
        contents: t.contents.as_ref(),
    });
    decode_all(tensors, &response.raw_output_contents)
}

/// The wire form a request uses.
pub fn request_encoding(request: &ModelInferRequest) -> Encoding {
    if request.raw_input_contents.is_empty() {
        Encoding::Typed
    } else {
        Encoding::Raw
    }
}

/// The wire form a response uses.
pub fn response_encoding(response: &ModelInferResponse) -> Encoding {
    if response.raw_output_contents.is_empty() {
        Encoding::Typed
    } else {
        Encoding::Raw
    }
}

/// Encodes tensors as request inputs and their raw contents (empty when typed). Checks every
/// tensor's element count; see [`Encoding::effective`] for FP16.
pub fn encode_inputs(
    tensors: &[Tensor],
    encoding: Encoding,
) -> Result<(Vec<InferInputTensor>, Vec<Bytes>), TensorError> {
    let encoding = encoding.effective(tensors);
    let mut inputs = Vec::with_capacity(tensors.len());
    let mut raw = Vec::new();
    for t in tensors {
        let (input, bytes) = t.to_input(encoding)?;
        inputs.push(input);
        raw.extend(bytes);
    }
    Ok((inputs, raw))
}

/// Encodes tensors as response outputs and their raw contents (empty when typed).
pub fn encode_outputs(
    tensors: &[Tensor],
    encoding: Encoding,
) -> Result<(Vec<InferOutputTensor>, Vec<Bytes>), TensorError> {
    let encoding = encoding.effective(tensors);
    let mut outputs = Vec::with_capacity(tensors.len());
    let mut raw = Vec::new();
    for t in tensors {
        let (output, bytes) = t.to_output(encoding)?;
        outputs.push(output);
        raw.extend(bytes);
    }
    Ok((outputs, raw))
}

/// A decoded request or response: what joins and batching work on. It remembers the wire form it
/// came in, so that writing it back keeps raw messages raw and typed messages typed.
#[derive(Debug, Clone, PartialEq)]
pub struct InferMessage {
    pub id: String,
    pub parameters: Parameters,
    pub tensors: Vec<Tensor>,
    pub encoding: Encoding,
}

impl InferMessage {
    pub fn from_request(request: &ModelInferRequest) -> Result<InferMessage, TensorError> {
        Ok(InferMessage {
            id: request.id.clone(),
            parameters: request.parameters.clone(),
            tensors: decode_request(request)?,
            encoding: request_encoding(request),
        })
    }

    pub fn from_response(response: &ModelInferResponse) -> Result<InferMessage, TensorError> {
        Ok(InferMessage {
            id: response.id.clone(),
            parameters: response.parameters.clone(),
            tensors: decode_response(response)?,
            encoding: response_encoding(response),
        })
    }

    /// A request with no model name or version (a converted message belongs to no model).
    pub fn to_request(&self) -> Result<ModelInferRequest, TensorError> {
        let (inputs, raw_input_contents) = encode_inputs(&self.tensors, self.encoding)?;
        Ok(ModelInferRequest {
            model_name: String::new(),
            model_version: String::new(),
            id: self.id.clone(),
            parameters: self.parameters.clone(),
            inputs,
            outputs: Vec::new(),
            raw_input_contents,
        })
    }

    /// A response with no model name or version.
    pub fn to_response(&self) -> Result<ModelInferResponse, TensorError> {
        let (outputs, raw_output_contents) = encode_outputs(&self.tensors, self.encoding)?;
        Ok(ModelInferResponse {
            model_name: String::new(),
            model_version: String::new(),
            id: self.id.clone(),
            parameters: self.parameters.clone(),
            outputs,
            raw_output_contents,
        })
    }
}
