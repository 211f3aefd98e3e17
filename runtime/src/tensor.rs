//! Open Inference Protocol tensors as owned, typed values.
//!
//! A record's tensors arrive in one of two wire forms (§4.2): typed `contents`, or one
//! `raw_input_contents` / `raw_output_contents` entry per tensor (little-endian, row-major, BYTES
//! elements as a 4-byte little-endian length and the bytes). Every operation must handle both, so
//! operators decode into [`Tensor`] and never look at the wire form; [`Encoding`] says which form
//! to write back.
//!
//! Design decisions:
//! - [`TensorData`] has one variant per datatype, so data and datatype cannot disagree and a raw
//!   UINT8 image stays one byte per element. [`Tensor::datatype`] is derived from the data.
//! - FP16 has no typed field in the protocol, so it is kept as raw IEEE 754 half bit patterns
//!   (`Vec<u16>`), never converted; a typed message with a non-empty FP16 tensor is an error, and
//!   encoding a message that holds an FP16 tensor always uses raw contents for the whole message
//!   (the protocol does not allow mixing the two forms in one message).
//! - Records come from the network: decoding never panics and never allocates from a declared
//!   shape alone; every count is checked against the bytes actually present.
//! - BYTES elements are [`Bytes`], so decoding from a `Bytes` record value slices instead of
//!   copying.
//! - The §5.1 conversions between request and response that need no decoding
//!   ([`request_to_response`], [`response_to_request`], [`retain_request_inputs`],
//!   [`retain_response_outputs`]) work on the protobuf messages directly and keep the encoding as
//!   it came; [`InferMessage`] is the decoded form for everything else (joins, batching).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::inference::model_infer_request::InferInputTensor;
use crate::proto::inference::model_infer_response::InferOutputTensor;
use crate::proto::inference::{InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse};

/// Parameters of a message or a tensor.
pub type Parameters = HashMap<String, InferParameter>;

/// A tensor datatype of the Open Inference Protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

impl DataType {
    /// Every datatype, in the order of the protocol's table.
    pub const ALL: [DataType; 13] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The protocol's name, e.g. `"FP32"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Bytes per element in raw contents; `None` for BYTES (length-prefixed elements).
    pub fn element_size(self) -> Option<usize> {
        match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => Some(1),
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 => Some(2),
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => Some(4),
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => Some(8),
            DataType::Bytes => None,
        }
    }

    /// The `InferTensorContents` field that carries this datatype; `None` for FP16.
    pub fn contents_field(self) -> Option<&'static str> {
        match self {
            DataType::Bool => Some("bool_contents"),
            DataType::Int8 | DataType::Int16 | DataType::Int32 => Some("int_contents"),
            DataType::Int64 => Some("int64_contents"),
            DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => Some("uint_contents"),
            DataType::Uint64 => Some("uint64_contents"),
            DataType::Fp16 => None,
            DataType::Fp32 => Some("fp32_contents"),
            DataType::Fp64 => Some("fp64_contents"),
            DataType::Bytes => Some("bytes_contents"),
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The datatype string is not one of the protocol's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown datatype '{0}' (expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)")]
pub struct UnknownDataType(pub String);

impl FromStr for DataType {
    type Err = UnknownDataType;

    /// Exact, upper-case names as the protocol spells them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataType::ALL
            .into_iter()
            .find(|dt| dt.as_str() == s)
            .ok_or_else(|| UnknownDataType(s.to_string()))
    }
}

/// A tensor's elements, flattened in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    /// IEEE 754 half-precision bit patterns, exactly as on the wire.
    Fp16(Vec<u16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Bytes>),
}

/// Applies `$body` to the vector inside any variant of a [`TensorData`].
macro_rules! with_vec {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

impl TensorData {
    /// No elements, of the given datatype.
    pub fn empty(datatype: DataType) -> Self {
        match datatype {
            DataType::Bool => TensorData::Bool(Vec::new()),
            DataType::Uint8 => TensorData::Uint8(Vec::new()),
            DataType::Uint16 => TensorData::Uint16(Vec::new()),
            DataType::Uint32 => TensorData::Uint32(Vec::new()),
            DataType::Uint64 => TensorData::Uint64(Vec::new()),
            DataType::Int8 => TensorData::Int8(Vec::new()),
            DataType::Int16 => TensorData::Int16(Vec::new()),
            DataType::Int32 => TensorData::Int32(Vec::new()),
            DataType::Int64 => TensorData::Int64(Vec::new()),
            DataType::Fp16 => TensorData::Fp16(Vec::new()),
            DataType::Fp32 => TensorData::Fp32(Vec::new()),
            DataType::Fp64 => TensorData::Fp64(Vec::new()),
            DataType::Bytes => TensorData::Bytes(Vec::new()),
        }
    }

    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Uint8(_) => DataType::Uint8,
            TensorData::Uint16(_) => DataType::Uint16,
            TensorData::Uint32(_) => DataType::Uint32,
            TensorData::Uint64(_) => DataType::Uint64,
            TensorData::Int8(_) => DataType::Int8,
            TensorData::Int16(_) => DataType::Int16,
            TensorData::Int32(_) => DataType::Int32,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp16(_) => DataType::Fp16,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_vec!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `other`'s elements; `false` (and nothing appended) if the datatypes differ.
    fn append(&mut self, other: &TensorData) -> bool {
        match (self, other) {
            (TensorData::Bool(a), TensorData::Bool(b)) => a.extend_from_slice(b),
            (TensorData::Uint8(a), TensorData::Uint8(b)) => a.extend_from_slice(b),
            (TensorData::Uint16(a), TensorData::Uint16(b)) => a.extend_from_slice(b),
            (TensorData::Uint32(a), TensorData::Uint32(b)) => a.extend_from_slice(b),
            (TensorData::Uint64(a), TensorData::Uint64(b)) => a.extend_from_slice(b),
            (TensorData::Int8(a), TensorData::Int8(b)) => a.extend_from_slice(b),
            (TensorData::Int16(a), TensorData::Int16(b)) => a.extend_from_slice(b),
            (TensorData::Int32(a), TensorData::Int32(b)) => a.extend_from_slice(b),
            (TensorData::Int64(a), TensorData::Int64(b)) => a.extend_from_slice(b),
            (TensorData::Fp16(a), TensorData::Fp16(b)) => a.extend_from_slice(b),
            (TensorData::Fp32(a), TensorData::Fp32(b)) => a.extend_from_slice(b),
            (TensorData::Fp64(a), TensorData::Fp64(b)) => a.extend_from_slice(b),
            (TensorData::Bytes(a), TensorData::Bytes(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }
}

/// Why a tensor or message could not be decoded, encoded or combined. Every variant names the
/// tensor so that an error record tells the user which one was malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    #[error("tensor '{tensor}': {source}")]
    UnknownDataType { tensor: String, source: UnknownDataType },
    #[error("tensor '{tensor}': shape {shape:?} is invalid (a dimension is negative or the element count overflows)")]
    InvalidShape { tensor: String, shape: Vec<i64> },
    #[error("tensor '{tensor}': shape {shape:?} needs {expected} elements but the data has {actual}")]
    ElementCount {
        tensor: String,
        shape: Vec<i64>,
        expected: usize,
        actual: usize,
    },
    #[error("tensor '{tensor}': {len} bytes of raw contents do not hold {expected} {datatype} elements of {size} bytes each")]
    RawLength {
        tensor: String,
        datatype: DataType,
        expected: usize,
        size: usize,
        len: usize,
    },
    #[error("tensor '{tensor}': BYTES raw contents end inside element {element} (at byte {offset} of {len})")]
    RawBytesTruncated {
        tensor: String,
        element: usize,
        offset: usize,
        len: usize,
    },
    #[error("tensor '{tensor}': BYTES raw contents hold {expected} elements followed by {trailing} unexpected bytes")]
    RawBytesTrailing {
        tensor: String,
        expected: usize,
        trailing: usize,
    },
    #[error("tensor '{tensor}': BYTES element {element} is longer than 4 GiB and has no raw form")]
    RawBytesTooLong { tensor: String, element: usize },
    #[error("tensor '{tensor}': {datatype} data belongs in {expected}, but {found} is set")]
    WrongContentsField {
        tensor: String,
        datatype: DataType,
        expected: &'static str,
        found: &'static str,
    },
    #[error("tensor '{tensor}': value {value} at element {element} is out of range for {datatype}")]
    OutOfRange {
        tensor: String,
        datatype: DataType,
        element: usize,
        value: i64,
    },
    #[error("tensor '{tensor}': FP16 has no typed contents in the protocol and must be sent as raw contents")]
    Fp16NotTyped { tensor: String },
    #[error("tensor '{tensor}': has typed contents although the message uses raw contents")]
    MixedContents { tensor: String },
    #[error(
        "message has {raw} raw content entries for {tensors} tensors (with raw contents, every tensor has exactly one)"
    )]
    RawCountMismatch { raw: usize, tensors: usize },
    #[error("cannot concatenate tensor '{tensor}': {reason}")]
    Concat { tensor: String, reason: String },
    #[error("cannot batch: member {member} {reason}")]
    Batch { member: usize, reason: String },
}

/// Which wire form a message's tensor data uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `contents` of each tensor.
    Typed,
    /// `raw_input_contents` / `raw_output_contents`, one entry per tensor.
    Raw,
}

impl Encoding {
    /// The form `tensors` are actually written in when `self` is asked for: raw whenever a tensor
    /// is FP16, which has no typed form.
    pub fn effective(self, tensors: &[Tensor]) -> Encoding {
        if tensors.iter().any(|t| t.datatype() == DataType::Fp16) {
            Encoding::Raw
        } else {
            self
        }
    }
}

/// The number of elements a shape holds: the product of its dimensions (1 for a scalar `[]`).
/// Negative dimensions (a model's "variable size" marker, never valid in data) and overflow are
/// errors.
pub fn element_count(tensor: &str, shape: &[i64]) -> Result<usize, TensorError> {
    let invalid = || TensorError::InvalidShape {
        tensor: tensor.to_string(),
        shape: shape.to_vec(),
    };
    shape.iter().try_fold(1usize, |acc, &dim| {
        let dim = usize::try_from(dim).map_err(|_| invalid())?;
        acc.checked_mul(dim).ok_or_else(invalid)
    })
}

/// One decoded tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub parameters: Parameters,
    pub data: TensorData,
}

impl Tensor {
    /// A tensor with no parameters; checks that the shape matches the data.
    pub fn new(name: impl Into<String>, shape: Vec<i64>, data: TensorData) -> Result<Tensor, TensorError> {
        let tensor = Tensor {
            name: name.into(),
            shape,
            parameters: Parameters::new(),
            data,
        };
        tensor.check()?;
        Ok(tensor)
    }

    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// The shape's element count equals the data's length.
    pub fn check(&self) -> Result<(), TensorError> {
        let expected = element_count(&self.name, &self.shape)?;
        let actual = self.data.len();
        if expected != actual {
            return Err(TensorError::ElementCount {
                tensor: self.name.clone(),
                shape: self.shape.clone(),
                expected,
                actual,
            });
        }
        Ok(())
    }

    /// Size of the first dimension (the batch dimension); `None` for a scalar.
    pub fn dim0(&self) -> Option<i64> {
        self.shape.first().copied()
    }

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

/// Concatenates tensors along dim 0 (batching, §5.5). All parts need the same datatype, rank ≥ 1
/// and the same trailing dimensions. The result has the first part's name and parameters.
pub fn concat_dim0(parts: &[Tensor]) -> Result<Tensor, TensorError> {
    let Some(first) = parts.first() else {
        return Err(TensorError::Concat {
            tensor: String::new(),
            reason: "no tensors to concatenate".to_string(),
        });
    };
    let fail = |reason: String| TensorError::Concat {
        tensor: first.name.clone(),
        reason,
    };
    if first.shape.is_empty() {
        return Err(fail("a scalar has no dimension 0".to_string()));
    }
    let trailing = &first.shape[1..];
    let mut dim0: i64 = 0;
    let mut data = TensorData::empty(first.datatype());
    for (i, part) in parts.iter().enumerate() {
        part.check()?;
        if part.datatype() != first.datatype() {
            return Err(fail(format!(
                "part {i} is {} but part 0 is {}",
                part.datatype(),
                first.datatype()
            )));
        }
        if part.shape.is_empty() || &part.shape[1..] != trailing {
            return Err(fail(format!(
                "part {i} has shape {:?}, which does not match part 0's trailing dimensions {:?}",
                part.shape, trailing
            )));
        }
        dim0 = dim0
            .checked_add(part.shape[0])
            .ok_or_else(|| fail("dimension 0 overflows".to_string()))?;
        data.append(&part.data);
    }
    let mut shape = first.shape.clone();
    shape[0] = dim0;
    // The parts' element counts fit, but the merged one may not: [2^31, 2^32, 0] holds no
    // element, [2^32, 2^32, 0] overflows the count before the 0 is reached.
    if element_count(&first.name, &shape).is_err() {
        return Err(fail(format!(
            "the merged shape {shape:?} is invalid (its element count overflows)"
        )));
    }
    Ok(Tensor {
        name: first.name.clone(),
        shape,
        parameters: first.parameters.clone(),
        data,
    })
}

/// Merges a batch of messages' tensors by name along dim 0 (§5.5). The first member fixes the
/// tensors and their order; a name that appears twice in a message is matched by occurrence.
/// Every member must hold the same tensors.
pub fn merge_batch(members: &[Vec<Tensor>]) -> Result<Vec<Tensor>, TensorError> {
    let Some(first) = members.first() else {
        return Ok(Vec::new());
    };
    let occurrence = |tensors: &[Tensor], index: usize| {
        tensors[..index]
            .iter()
            .filter(|t| t.name == tensors[index].name)
            .count()
    };
    let mut merged = Vec::with_capacity(first.len());
    for (index, tensor) in first.iter().enumerate() {
        let nth = occurrence(first, index);
        let mut parts = Vec::with_capacity(members.len());
        for (member, tensors) in members.iter().enumerate() {
            if tensors.len() != first.len() {
                return Err(TensorError::Batch {
                    member,
                    reason: format!("has {} tensors but member 0 has {}", tensors.len(), first.len()),
                });
            }
            let part = tensors
                .iter()
                .filter(|t| t.name == tensor.name)
                .nth(nth)
                .ok_or_else(|| TensorError::Batch {
                    member,
                    reason: format!("has no tensor '{}'", tensor.name),
                })?;
            parts.push(part.clone());
        }
        merged.push(concat_dim0(&parts)?);
    }
    Ok(merged)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::inference::infer_parameter::ParameterChoice;

    fn t(name: &str, shape: Vec<i64>, data: TensorData) -> Tensor {
        Tensor::new(name, shape, data).unwrap()
    }

    /// One tensor of every datatype, with awkward values (extremes, NaN-free floats, empty and
    /// non-UTF-8 bytes).
    fn every_datatype() -> Vec<Tensor> {
        vec![
            t("bool", vec![3], TensorData::Bool(vec![true, false, true])),
            t("u8", vec![1, 3], TensorData::Uint8(vec![0, 7, 255])),
            t("u16", vec![2], TensorData::Uint16(vec![0, u16::MAX])),
            t("u32", vec![2], TensorData::Uint32(vec![1, u32::MAX])),
            t("u64", vec![2], TensorData::Uint64(vec![1, u64::MAX])),
            t("i8", vec![2], TensorData::Int8(vec![i8::MIN, i8::MAX])),
            t("i16", vec![2], TensorData::Int16(vec![i16::MIN, i16::MAX])),
            t("i32", vec![2, 1], TensorData::Int32(vec![i32::MIN, i32::MAX])),
            t("i64", vec![2], TensorData::Int64(vec![i64::MIN, i64::MAX])),
            t("f32", vec![2], TensorData::Fp32(vec![-1.5, f32::MAX])),
            t("f64", vec![2], TensorData::Fp64(vec![-2.25, f64::MIN_POSITIVE])),
            t(
                "bytes",
                vec![3],
                TensorData::Bytes(vec![
                    Bytes::from_static(b"hello"),
                    Bytes::new(),
                    Bytes::from_static(&[0xff, 0x00]),
                ]),
            ),
        ]
    }

    fn fp16() -> Tensor {
        // 1.0 and -2.0 as IEEE 754 half.
        t("f16", vec![2], TensorData::Fp16(vec![0x3c00, 0xc000]))
    }

    fn request(tensors: &[Tensor], encoding: Encoding) -> ModelInferRequest {
        let (inputs, raw_input_contents) = encode_inputs(tensors, encoding).unwrap();
        ModelInferRequest {
            model_name: "m".into(),
            model_version: "1".into(),
            id: "req-1".into(),
            parameters: Parameters::from([(
                "p".to_string(),
                InferParameter {
                    parameter_choice: Some(ParameterChoice::StringParam("v".into())),
                },
            )]),
            inputs,
            outputs: Vec::new(),
            raw_input_contents,
        }
    }

    #[test]
    fn datatype_names_round_trip_and_unknown_is_an_error() {
        for dt in DataType::ALL {
            assert_eq!(dt.as_str().parse::<DataType>(), Ok(dt));
        }
        assert_eq!("fp32".parse::<DataType>(), Err(UnknownDataType("fp32".into())));
    }

    #[test]
    fn every_datatype_round_trips_typed_and_raw() {
        let tensors = every_datatype();
        for encoding in [Encoding::Typed, Encoding::Raw] {
            let req = request(&tensors, encoding);
            assert_eq!(request_encoding(&req), encoding);
            assert_eq!(decode_request(&req).unwrap(), tensors, "{encoding:?}");

            let (outputs, raw_output_contents) = encode_outputs(&tensors, encoding).unwrap();
            let resp = ModelInferResponse {
                outputs,
                raw_output_contents,
                ..Default::default()
            };
            assert_eq!(decode_response(&resp).unwrap(), tensors, "{encoding:?}");
        }
    }

    #[test]
    fn raw_layout_is_little_endian_and_bytes_length_prefixed() {
        let i32s = t("x", vec![2], TensorData::Int32(vec![1, -2]));
        assert_eq!(i32s.to_raw().unwrap().as_ref(), &[1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
        let bools = t("b", vec![2], TensorData::Bool(vec![true, false]));
        assert_eq!(bools.to_raw().unwrap().as_ref(), &[1, 0]);
        let strings = t(
            "s",
            vec![2],
            TensorData::Bytes(vec![Bytes::from_static(b"ab"), Bytes::new()]),
        );
        assert_eq!(
            strings.to_raw().unwrap().as_ref(),
            &[2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]
        );
        assert_eq!(fp16().to_raw().unwrap().as_ref(), &[0x00, 0x3c, 0x00, 0xc0]);
    }

    #[test]
    fn raw_bool_reads_any_non_zero_byte_as_true() {
        let b = Tensor::from_raw("b", "BOOL", &[3], &Parameters::new(), &Bytes::from_static(&[0, 2, 255])).unwrap();
        assert_eq!(b.data, TensorData::Bool(vec![false, true, true]));
    }

    #[test]
    fn fp16_is_raw_only() {
        // Asking for typed falls back to raw for the whole message.
        let tensors = vec![fp16(), t("i", vec![1], TensorData::Int64(vec![5]))];
        let req = request(&tensors, Encoding::Typed);
        assert_eq!(request_encoding(&req), Encoding::Raw);
        assert_eq!(decode_request(&req).unwrap(), tensors);

        assert_eq!(
            fp16().to_contents(),
            Err(TensorError::Fp16NotTyped { tensor: "f16".into() })
        );
        // A typed FP16 tensor with data cannot be read; an empty one can.
        let contents = InferTensorContents {
            fp32_contents: vec![1.0],
            ..Default::default()
        };
        assert!(matches!(
            Tensor::from_contents("h", "FP16", &[1], &Parameters::new(), Some(&contents)),
            Err(TensorError::Fp16NotTyped { .. })
        ));
        let empty = Tensor::from_contents("h", "FP16", &[0], &Parameters::new(), None).unwrap();
        assert_eq!(empty.data, TensorData::Fp16(vec![]));
    }

    #[test]
    fn element_count_mismatches_are_errors() {
        assert_eq!(
            Tensor::new("x", vec![2, 2], TensorData::Int32(vec![1, 2, 3])),
            Err(TensorError::ElementCount {
                tensor: "x".into(),
                shape: vec![2, 2],
                expected: 4,
                actual: 3
            })
        );
        let contents = InferTensorContents {
            fp32_contents: vec![1.0],
            ..Default::default()
        };
        assert!(matches!(
            Tensor::from_contents("x", "FP32", &[2], &Parameters::new(), Some(&contents)),
            Err(TensorError::ElementCount {
                expected: 2,
                actual: 1,
                ..
            })
        ));
        assert!(matches!(
            Tensor::from_raw("x", "FP32", &[2], &Parameters::new(), &Bytes::from_static(&[0; 7])),
            Err(TensorError::RawLength {
                expected: 2,
                size: 4,
                len: 7,
                ..
            })
        ));
        // A scalar holds one element.
        assert_eq!(element_count("s", &[]), Ok(1));
        assert!(Tensor::new("s", vec![], TensorData::Int64(vec![1])).is_ok());
    }

    #[test]
    fn hostile_shapes_are_errors_not_panics_or_huge_allocations() {
        let none = Parameters::new();
        for shape in [vec![-1, 4], vec![i64::MAX, i64::MAX, 4]] {
            assert!(matches!(
                Tensor::from_raw("x", "INT64", &shape, &none, &Bytes::new()),
                Err(TensorError::InvalidShape { .. })
            ));
        }
        // A huge declared count with a few bytes of data fails on the length check.
        assert!(matches!(
            Tensor::from_raw("x", "BYTES", &[1 << 40], &none, &Bytes::from_static(&[0; 8])),
            Err(TensorError::RawBytesTruncated { element: 2, .. })
        ));
        assert!(matches!(
            Tensor::from_raw("x", "INT8", &[1 << 62], &none, &Bytes::from_static(&[0; 8])),
            Err(TensorError::RawLength { .. })
        ));
    }

    #[test]
    fn malformed_bytes_raw_contents_are_errors() {
        let none = Parameters::new();
        // Length says 5 but only 2 bytes follow.
        let short = Bytes::from_static(&[5, 0, 0, 0, b'a', b'b']);
        assert_eq!(
            Tensor::from_raw("s", "BYTES", &[1], &none, &short),
            Err(TensorError::RawBytesTruncated {
                tensor: "s".into(),
                element: 0,
                offset: 0,
                len: 6
            })
        );
        // A length prefix cut in half.
        let cut = Bytes::from_static(&[1, 0, 0, 0, b'a', 1, 0]);
        assert!(matches!(
            Tensor::from_raw("s", "BYTES", &[2], &none, &cut),
            Err(TensorError::RawBytesTruncated { element: 1, .. })
        ));
        // One element declared, two present.
        let extra = Bytes::from_static(&[1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b']);
        assert_eq!(
            Tensor::from_raw("s", "BYTES", &[1], &none, &extra),
            Err(TensorError::RawBytesTrailing {
                tensor: "s".into(),
                expected: 1,
                trailing: 5
            })
        );
        // A length near u32::MAX must not overflow the offset arithmetic.
        let huge = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, b'a']);
        assert!(matches!(
            Tensor::from_raw("s", "BYTES", &[1], &none, &huge),
            Err(TensorError::RawBytesTruncated { .. })
        ));
    }

    #[test]
    fn typed_contents_must_use_the_datatypes_field_and_range() {
        let none = Parameters::new();
        let wrong = InferTensorContents {
            fp32_contents: vec![1.0],
            ..Default::default()
        };
        assert_eq!(
            Tensor::from_contents("x", "INT32", &[1], &none, Some(&wrong)),
            Err(TensorError::WrongContentsField {
                tensor: "x".into(),
                datatype: DataType::Int32,
                expected: "int_contents",
                found: "fp32_contents"
            })
        );
        let too_big = InferTensorContents {
            uint_contents: vec![1, 300],
            ..Default::default()
        };
        assert_eq!(
            Tensor::from_contents("x", "UINT8", &[2], &none, Some(&too_big)),
            Err(TensorError::OutOfRange {
                tensor: "x".into(),
                datatype: DataType::Uint8,
                element: 1,
                value: 300
            })
        );
        let too_small = InferTensorContents {
            int_contents: vec![-129],
            ..Default::default()
        };
        assert!(matches!(
            Tensor::from_contents("x", "INT8", &[1], &none, Some(&too_small)),
            Err(TensorError::OutOfRange { value: -129, .. })
        ));
        assert!(matches!(
            Tensor::from_contents("x", "BF16", &[1], &none, None),
            Err(TensorError::UnknownDataType { .. })
        ));
    }

    #[test]
    fn raw_messages_need_one_entry_per_tensor_and_no_typed_contents() {
        let tensors = vec![
            t("a", vec![1], TensorData::Int32(vec![1])),
            t("b", vec![1], TensorData::Int32(vec![2])),
        ];
        let mut req = request(&tensors, Encoding::Raw);
        req.raw_input_contents.pop();
        assert_eq!(
            decode_request(&req),
            Err(TensorError::RawCountMismatch { raw: 1, tensors: 2 })
        );

        let mut req = request(&tensors, Encoding::Raw);
        req.inputs[1].contents = Some(InferTensorContents {
            int_contents: vec![2],
            ..Default::default()
        });
        assert_eq!(
            decode_request(&req),
            Err(TensorError::MixedContents { tensor: "b".into() })
        );
    }

    #[test]
    fn select_keeps_upstream_order_and_duplicates_and_rename_maps_names() {
        let tensors = vec![
            t("a", vec![1], TensorData::Int32(vec![1])),
            t("b", vec![1], TensorData::Int32(vec![2])),
            t("a", vec![1], TensorData::Int32(vec![3])),
            t("c", vec![1], TensorData::Int32(vec![4])),
        ];
        let mut picked = select(tensors, &["c", "a"]);
        let names: Vec<_> = picked.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "a", "c"]);

        rename(&mut picked, &HashMap::from([("a".to_string(), "INPUT0".to_string())]));
        let names: Vec<_> = picked.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["INPUT0", "INPUT0", "c"]);
    }

    #[test]
    fn concat_dim0_joins_batches_and_rejects_mismatches() {
        let a = t("x", vec![1, 2], TensorData::Fp32(vec![1.0, 2.0]));
        let b = t("x", vec![2, 2], TensorData::Fp32(vec![3.0, 4.0, 5.0, 6.0]));
        let ab = concat_dim0(&[a.clone(), b]).unwrap();
        assert_eq!(ab.shape, vec![3, 2]);
        assert_eq!(ab.data, TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));

        let other_type = t("x", vec![1, 2], TensorData::Fp64(vec![1.0, 2.0]));
        let err = concat_dim0(&[a.clone(), other_type]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot concatenate tensor 'x': part 1 is FP64 but part 0 is FP32"
        );

        let other_shape = t("x", vec![1, 3], TensorData::Fp32(vec![1.0, 2.0, 3.0]));
        assert!(matches!(
            concat_dim0(&[a.clone(), other_shape]),
            Err(TensorError::Concat { .. })
        ));
        let scalar = t("x", vec![], TensorData::Fp32(vec![1.0]));
        assert!(matches!(concat_dim0(&[scalar]), Err(TensorError::Concat { .. })));
        // A part whose data does not match its shape is caught, not copied.
        let broken = Tensor {
            data: TensorData::Fp32(vec![1.0]),
            ..a.clone()
        };
        assert!(matches!(
            concat_dim0(&[a, broken]),
            Err(TensorError::ElementCount { .. })
        ));
    }

    /// Regression (fuzz target `record_tensor`, input in fuzz/corpus/record_tensor/
    /// `regression-merged-shape-overflows`): INT32 `x` of shape [2^31, 2^32, 0] (no elements)
    /// batched with itself gave a tensor of shape [2^32, 2^32, 0], whose element count overflows.
    #[test]
    fn merging_into_an_overflowing_shape_is_an_error() {
        use prost::Message;
        let record: &[u8] = &[
            0x2a, 0x17, 0x0a, 0x01, 0x78, 0x12, 0x05, 0x49, 0x4e, 0x54, 0x33, 0x32, 0x1a, 0x0b, 0x80, 0x80, 0x80, 0x80,
            0x08, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00,
        ];
        let request = ModelInferRequest::decode(record).unwrap();
        let tensors = decode_request(&request).unwrap();
        assert_eq!(tensors[0].shape, vec![1 << 31, 1 << 32, 0]);
        let err = merge_batch(&[tensors.clone(), tensors]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot concatenate tensor 'x': the merged shape [4294967296, 4294967296, 0] is invalid (its element count overflows)"
        );
    }

    #[test]
    fn merge_batch_concatenates_by_name() {
        let member = |v: i32| {
            vec![
                t("INPUT", vec![1, 2], TensorData::Int32(vec![v, v])),
                t("ids", vec![1], TensorData::Bytes(vec![Bytes::from(v.to_string())])),
            ]
        };
        // Order within a member does not matter; names do.
        let mut third = member(3);
        third.reverse();
        let merged = merge_batch(&[member(1), member(2), third]).unwrap();
        assert_eq!(merged[0].shape, vec![3, 2]);
        assert_eq!(merged[0].data, TensorData::Int32(vec![1, 1, 2, 2, 3, 3]));
        assert_eq!(merged[1].shape, vec![3]);
        assert_eq!(merged[1].data.len(), 3);

        let mut missing = member(4);
        missing[1].name = "other".into();
        assert_eq!(
            merge_batch(&[member(1), missing]),
            Err(TensorError::Batch {
                member: 1,
                reason: "has no tensor 'ids'".into()
            })
        );
    }

    #[test]
    fn request_response_conversions_keep_id_parameters_and_wire_form() {
        let tensors = every_datatype();
        for encoding in [Encoding::Typed, Encoding::Raw] {
            let req = request(&tensors, encoding);
            let resp = request_to_response(req.clone());
            assert_eq!(resp.id, "req-1");
            assert_eq!(resp.parameters, req.parameters);
            assert_eq!(resp.model_name, "");
            assert_eq!(response_encoding(&resp), encoding);
            assert_eq!(decode_response(&resp).unwrap(), tensors);

            let back = response_to_request(ModelInferResponse {
                model_name: "m".into(),
                model_version: "2".into(),
                ..resp
            });
            assert_eq!(back.model_name, "");
            assert_eq!(back.model_version, "");
            assert_eq!(back.id, "req-1");
            assert_eq!(back.parameters, req.parameters);
            assert_eq!(request_encoding(&back), encoding);
            assert_eq!(decode_request(&back).unwrap(), tensors);
        }
    }

    #[test]
    fn retain_keeps_raw_entries_aligned() {
        let tensors = vec![
            t("a", vec![1], TensorData::Int32(vec![1])),
            t("b", vec![1], TensorData::Int32(vec![2])),
            t("c", vec![1], TensorData::Int32(vec![3])),
        ];
        for encoding in [Encoding::Typed, Encoding::Raw] {
            let mut req = request(&tensors, encoding);
            retain_request_inputs(&mut req, |name| name != "b").unwrap();
            let kept = decode_request(&req).unwrap();
            assert_eq!(kept, vec![tensors[0].clone(), tensors[2].clone()]);

            let mut resp = request_to_response(request(&tensors, encoding));
            retain_response_outputs(&mut resp, |name| name == "c").unwrap();
            assert_eq!(decode_response(&resp).unwrap(), vec![tensors[2].clone()]);
        }
        let mut broken = request(&tensors, Encoding::Raw);
        broken.raw_input_contents.pop();
        assert!(retain_request_inputs(&mut broken, |_| true).is_err());
    }

    #[test]
    fn infer_message_round_trips_in_its_own_wire_form() {
        let tensors = every_datatype();
        for encoding in [Encoding::Typed, Encoding::Raw] {
            let req = request(&tensors, encoding);
            let msg = InferMessage::from_request(&req).unwrap();
            assert_eq!(msg.encoding, encoding);
            let resp = msg.to_response().unwrap();
            assert_eq!(response_encoding(&resp), encoding);
            let again = InferMessage::from_response(&resp).unwrap();
            assert_eq!(again, msg);
            let req2 = again.to_request().unwrap();
            assert_eq!(req2.inputs, req.inputs);
            assert_eq!(req2.raw_input_contents, req.raw_input_contents);
        }
    }

    #[test]
    fn decoding_from_a_record_value_survives_the_protobuf_round_trip() {
        use prost::Message;
        let req = request(&every_datatype(), Encoding::Raw);
        let value = Bytes::from(req.encode_to_vec());
        let decoded = ModelInferRequest::decode(value).unwrap();
        assert_eq!(decode_request(&decoded).unwrap(), every_datatype());
    }
}
