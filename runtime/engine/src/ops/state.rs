//! Stored forms of operator state (protobuf via prost derive: compact, versionable).

use prost::Message;

use crate::envelope::StoredEnvelope;

/// A join buffer of one key: the latest record of each input port that has one.
#[derive(Clone, PartialEq, Message)]
pub struct JoinState {
    #[prost(message, repeated, tag = "1")]
    pub parts: Vec<JoinPart>,
}

#[derive(Clone, PartialEq, Message)]
pub struct JoinPart {
    #[prost(uint32, tag = "1")]
    pub port: u32,
    #[prost(message, optional, tag = "2")]
    pub envelope: Option<StoredEnvelope>,
}

/// A trigger gate's buffer of one key: the data waiting, the triggers that fired.
#[derive(Clone, PartialEq, Message)]
pub struct GateState {
    #[prost(message, optional, tag = "1")]
    pub data: Option<StoredEnvelope>,
    #[prost(uint32, repeated, tag = "2")]
    pub fired: Vec<u32>,
}

/// A cycle guard's visit counter of one key.
#[derive(Clone, PartialEq, Message)]
pub struct GuardState {
    #[prost(uint32, tag = "1")]
    pub visits: u32,
}

/// A batch being filled: its members in arrival order.
#[derive(Clone, PartialEq, Message)]
pub struct BatchState {
    #[prost(message, repeated, tag = "1")]
    pub members: Vec<StoredEnvelope>,
}
