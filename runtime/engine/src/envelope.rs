//! What flows between the nodes of a task: a record's key, headers and partition with its value
//! decoded once at the source, and its stored form for state stores.

use bytes::Bytes;
use prost::Message;

use crate::record::{Headers, Record};
use flowc_oip::proto::inference::{ModelInferRequest, ModelInferResponse};

/// A record's value inside a task.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Straight off a topic, not decoded yet (only sources see this).
    Raw(Bytes),
    Request(ModelInferRequest),
    Response(ModelInferResponse),
    /// UTF-8 error text (the errors topic).
    Error(Bytes),
    /// A control record: only its key matters.
    Control,
}

impl Payload {
    /// Names of the tensors it carries, in order (none for error and control records).
    pub fn tensor_names(&self) -> Vec<&str> {
        match self {
            Payload::Request(r) => r.inputs.iter().map(|t| t.name.as_str()).collect(),
            Payload::Response(r) => r.outputs.iter().map(|t| t.name.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub key: String,
    pub headers: Headers,
    /// The partition the record that started this flow was read from (§4.2).
    pub partition: i32,
    pub timestamp_ms: i64,
    pub payload: Payload,
}

impl Envelope {
    pub fn from_record(record: Record) -> Envelope {
        Envelope {
            key: record.key,
            headers: record.headers,
            partition: record.partition,
            timestamp_ms: record.timestamp_ms,
            payload: Payload::Raw(record.value),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The bytes a sink writes for this payload.
    pub fn value_bytes(&self) -> Bytes {
        match &self.payload {
            Payload::Raw(b) | Payload::Error(b) => b.clone(),
            Payload::Request(r) => Bytes::from(r.encode_to_vec()),
            Payload::Response(r) => Bytes::from(r.encode_to_vec()),
            Payload::Control => Bytes::new(),
        }
    }

    pub(crate) fn to_stored(&self) -> StoredEnvelope {
        let (kind, message) = match &self.payload {
            Payload::Request(r) => (KIND_REQUEST, r.encode_to_vec()),
            Payload::Response(r) => (KIND_RESPONSE, r.encode_to_vec()),
            Payload::Raw(b) | Payload::Error(b) => (KIND_BYTES, b.to_vec()),
            Payload::Control => (KIND_CONTROL, Vec::new()),
        };
        StoredEnvelope {
            key: self.key.clone(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| StoredHeader {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            partition: self.partition,
            timestamp_ms: self.timestamp_ms,
            kind,
            message,
        }
    }
}

const KIND_REQUEST: u32 = 0;
const KIND_RESPONSE: u32 = 1;
const KIND_BYTES: u32 = 2;
const KIND_CONTROL: u32 = 3;

/// An envelope as kept in a state store (and its changelog): protobuf, so stored state is
/// compact, fast to read back, and can evolve by adding fields.
#[derive(Clone, PartialEq, Message)]
pub struct StoredEnvelope {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<StoredHeader>,
    #[prost(int32, tag = "3")]
    pub partition: i32,
    #[prost(int64, tag = "4")]
    pub timestamp_ms: i64,
    #[prost(uint32, tag = "5")]
    pub kind: u32,
    #[prost(bytes = "vec", tag = "6")]
    pub message: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredHeader {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

impl StoredEnvelope {
    pub(crate) fn into_envelope(self) -> Result<Envelope, prost::DecodeError> {
        let payload = match self.kind {
            KIND_REQUEST => Payload::Request(ModelInferRequest::decode(self.message.as_slice())?),
            KIND_RESPONSE => Payload::Response(ModelInferResponse::decode(self.message.as_slice())?),
            KIND_CONTROL => Payload::Control,
            _ => Payload::Error(Bytes::from(self.message)),
        };
        Ok(Envelope {
            key: self.key,
            headers: self.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            partition: self.partition,
            timestamp_ms: self.timestamp_ms,
            payload,
        })
    }
}
