//! The Open Inference Protocol (KServe V2) as flowc speaks it: the protobuf messages, tensors
//! in both wire forms with the §5.1 conversions and batching, the JSON (REST) form, and the
//! [`ModelBackend`] every model call goes through (see ARCHITECTURE.md).
//!
//! With features, the transports: `grpc` (the tonic service stubs and [`grpc::GrpcModels`]),
//! `rest` ([`rest::RestModels`]) and `rest-server` (the JSON answers of a REST server).
//!
//! Invariant: no Kafka and no pipeline state; without features, no network either (the step
//! engine depends on this crate that way: `cargo tree -p flowc-engine -e normal` lists no
//! tonic, hyper, axum or ureq).

pub mod backend;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "rest-server")]
pub mod http;
pub mod json;
#[cfg(feature = "rest")]
pub mod rest;
pub mod tensor;

pub use backend::{CallAnswer, ModelBackend, ModelCallError};

pub mod proto {
    //! Generated Open Inference Protocol (KServe V2) messages, and with the `grpc` feature the
    //! `GRPCInferenceService` client and server.
    #[allow(clippy::all, missing_docs)]
    pub mod inference {
        include!(concat!(env!("OUT_DIR"), "/inference.rs"));
    }
}

#[cfg(test)]
mod tests {
    //! The generated messages use the KServe V2 field numbers: records must be readable by
    //! Seldon, MLServer and Triton. A tag byte is `field_number << 3 | wire_type` (0 varint,
    //! 1 fixed64, 2 length-delimited).
    use bytes::Bytes;
    use prost::Message;

    use crate::proto::inference::infer_parameter::ParameterChoice;
    use crate::proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
    use crate::proto::inference::{InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse};

    fn param(choice: ParameterChoice) -> InferParameter {
        InferParameter {
            parameter_choice: Some(choice),
        }
    }

    #[test]
    fn request_and_response_field_numbers() {
        let request = ModelInferRequest {
            model_name: "m".into(),
            model_version: "v".into(),
            id: "i".into(),
            outputs: vec![InferRequestedOutputTensor {
                name: "o".into(),
                ..Default::default()
            }],
            raw_input_contents: vec![Bytes::from_static(b"r")],
            ..Default::default()
        };
        assert_eq!(
            request.encode_to_vec(),
            [
                0x0a, 1, b'm', // model_name = 1
                0x12, 1, b'v', // model_version = 2
                0x1a, 1, b'i', // id = 3
                0x32, 3, 0x0a, 1, b'o', // outputs = 6 { name = 1 }
                0x3a, 1, b'r', // raw_input_contents = 7
            ]
        );
        let input = ModelInferRequest {
            inputs: vec![InferInputTensor {
                name: "t".into(),
                datatype: "BOOL".into(),
                shape: vec![1],
                contents: Some(InferTensorContents {
                    bool_contents: vec![true],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            input.encode_to_vec(),
            [
                0x2a, 17, // inputs = 5
                0x0a, 1, b't', // name = 1
                0x12, 4, b'B', b'O', b'O', b'L', // datatype = 2
                0x1a, 1, 1, // shape = 3 (packed)
                0x2a, 3, 0x0a, 1, 1, // contents = 5 { bool_contents = 1 }
            ]
        );
        let response = ModelInferResponse {
            id: "i".into(),
            raw_output_contents: vec![Bytes::from_static(b"r")],
            ..Default::default()
        };
        assert_eq!(
            response.encode_to_vec(),
            [0x1a, 1, b'i', 0x32, 1, b'r'] // id = 3, raw_output_contents = 6
        );
    }

    #[test]
    fn parameter_and_contents_field_numbers() {
        assert_eq!(param(ParameterChoice::BoolParam(true)).encode_to_vec(), [0x08, 1]);
        assert_eq!(param(ParameterChoice::Int64Param(3)).encode_to_vec(), [0x10, 3]);
        assert_eq!(
            param(ParameterChoice::StringParam("s".into())).encode_to_vec(),
            [0x1a, 1, b's']
        );
        let mut double = vec![0x21];
        double.extend_from_slice(&1.0f64.to_le_bytes());
        assert_eq!(param(ParameterChoice::DoubleParam(1.0)).encode_to_vec(), double);
        assert_eq!(param(ParameterChoice::Uint64Param(7)).encode_to_vec(), [0x28, 7]);

        let contents = InferTensorContents {
            int_contents: vec![1],
            int64_contents: vec![2],
            uint_contents: vec![3],
            uint64_contents: vec![4],
            fp32_contents: vec![0.0],
            fp64_contents: vec![0.0],
            bytes_contents: vec![Bytes::from_static(b"x")],
            ..Default::default()
        };
        let mut expected = vec![
            0x12, 1, 1, // int_contents = 2
            0x1a, 1, 2, // int64_contents = 3
            0x22, 1, 3, // uint_contents = 4
            0x2a, 1, 4, // uint64_contents = 5
            0x32, 4, // fp32_contents = 6
        ];
        expected.extend_from_slice(&[0; 4]);
        expected.extend_from_slice(&[0x3a, 8]); // fp64_contents = 7
        expected.extend_from_slice(&[0; 8]);
        expected.extend_from_slice(&[0x42, 1, b'x']); // bytes_contents = 8
        assert_eq!(contents.encode_to_vec(), expected);
    }
}
