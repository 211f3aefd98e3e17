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
//!
//! The module by concern: the types here; [`codec`], both wire forms (typed contents, raw
//! bytes) and the decoded [`InferMessage`]; [`convert`], the §5.1 conversions that need no
//! decoding, and tensor selection; [`batch`], merging along dim 0 (§5.5).

mod batch;
mod codec;
mod convert;

pub use batch::{concat_dim0, merge_batch};
pub use codec::{
    decode_request, decode_response, encode_inputs, encode_outputs, request_encoding, response_encoding, InferMessage,
};
pub use convert::{
    rename, request_to_response, response_to_request, retain_request_inputs, retain_response_outputs, select,
};

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::proto::inference::InferParameter;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::inference::infer_parameter::ParameterChoice;
    use crate::proto::inference::{InferTensorContents, ModelInferRequest, ModelInferResponse};

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
