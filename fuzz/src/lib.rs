//! Input layouts shared by the fuzz targets (`fuzz_targets/`) and the seed corpus generator
//! (`examples/make_corpus.rs`), so that seeds are written in exactly the form the targets read.

/// `oip_json` input: a 4-byte little-endian `Inference-Header-Content-Length`, then the HTTP
/// body. A length within the body splits it into the JSON header and the binary tensor data
/// (Triton's binary tensor data extension), as the pipeline gateway does; any larger length
/// (seeds use `u32::MAX`) means "no such header": the whole body is JSON.
pub fn split_oip(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, body)) = data.split_first_chunk::<4>() else {
        return (data, &[]);
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len <= body.len() {
        body.split_at(len)
    } else {
        (body, &[])
    }
}

/// Encodes an `oip_json` input: `json`, and `binary` after it when `Some`.
pub fn join_oip(json: &[u8], binary: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    match binary {
        Some(binary) => {
            out.extend_from_slice(&(json.len() as u32).to_le_bytes());
            out.extend_from_slice(json);
            out.extend_from_slice(binary);
        }
        None => {
            out.extend_from_slice(&u32::MAX.to_le_bytes());
            out.extend_from_slice(json);
        }
    }
    out
}

/// `record_tensor` input: a 2-byte little-endian split point, then a record value. The whole
/// value is one message; its two halves at the split point are two more (a batch partner).
pub fn split_record(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let Some((at, value)) = data.split_first_chunk::<2>() else {
        return (data, data, &[]);
    };
    let at = (u16::from_le_bytes(*at) as usize).min(value.len());
    let (a, b) = value.split_at(at);
    (value, a, b)
}

/// Encodes a `record_tensor` input from two record values: `first ++ second`, split between
/// them.
pub fn join_record(first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + first.len() + second.len());
    out.extend_from_slice(&(first.len().min(u16::MAX as usize) as u16).to_le_bytes());
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    out
}

/// `compile_yaml` input: several files separated by NUL bytes (NUL is not valid YAML text), so
/// that pipelines in one file may use models of another, as `flowc compile a.yaml b.yaml` does.
pub fn split_files(text: &str) -> impl Iterator<Item = &str> {
    text.split('\0').take(4)
}
