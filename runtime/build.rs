//! Generates the Open Inference Protocol messages and the `GRPCInferenceService` client and
//! server from `proto/inference.proto` (needs `protoc`: see scripts/setup-build-deps.sh).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // `bytes` fields as `bytes::Bytes`: decoding a record from a `Bytes` buffer then slices
        // raw tensor contents instead of copying them.
        .bytes(".inference")
        .compile_protos(&["proto/inference.proto"], &["proto"])?;
    Ok(())
}
