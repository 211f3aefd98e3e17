//! Generates the Open Inference Protocol messages from `proto/inference.proto`, and with the
//! `grpc` feature the `GRPCInferenceService` client and server stubs (needs `protoc`: see
//! scripts/setup-build-deps.sh).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        // `bytes` fields as `bytes::Bytes`: decoding a record from a `Bytes` buffer then slices
        // raw tensor contents instead of copying them.
        .bytes(".inference")
        .compile_protos(&["proto/inference.proto"], &["proto"])?;
    Ok(())
}
