//! flowc's reference models (PIPELINES.md §9): small, exact models for tests and demos, served by
//! the built-in reference server ([`crate::model_server`]) under the name of any Model whose
//! `storageUri` is `flowc://<reference>`.
//!
//! | reference | inputs → outputs |
//! |---|---|
//! | `sum-diff` | INT32 `INPUT0`, `INPUT1` (same shape) → `OUTPUT0` = sum, `OUTPUT1` = difference |
//! | `add10` / `mul10` | FP32 `INPUT` → `OUTPUT` = x+10 / x·10 |
//! | `conditional` | INT32 `CHOICE`, `INPUT0`, `INPUT1` → only `OUTPUT0` = `INPUT0` if CHOICE[0] == 0, else only `OUTPUT1` = `INPUT1` |
//! | `choice-is-one` / `choice-is-two` | INT32 `choice` → `choice` only when choice[0] is 1 / 2, else no tensor |
//! | `identity` | every input tensor back as output |
//! | `counter` | INT32 `INPUT` → `output` = INPUT[0]+1 and INT32 `continue` = [1] while that is < 10, else `stop` = [1] |
//!
//! Requests may carry their data typed or raw; the response uses the request's form and keeps its
//! id and parameters. When the request names outputs, only those are returned. `iris`, `outlier`
//! and `drift` are listed in §9 but not implemented yet: they are not [`known`].

use crate::proto::inference::{ModelInferRequest, ModelInferResponse};
use crate::tensor::{DataType, InferMessage, Tensor, TensorData, TensorError};

/// The reference models [`infer`] runs.
pub const NAMES: &[&str] = &[
    "sum-diff",
    "add10",
    "mul10",
    "conditional",
    "choice-is-one",
    "choice-is-two",
    "identity",
    "counter",
];

/// Reference models of §9 that are not implemented yet (a later issue).
pub const NOT_YET: &[&str] = &["iris", "outlier", "drift"];

/// Whether [`infer`] runs `reference`.
pub fn known(reference: &str) -> bool {
    NAMES.contains(&reference)
}

/// Why a reference model gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// No reference model of this name.
    #[error("unknown reference model {name} (known: {})", NAMES.join(", "))]
    Unknown { name: String },
    /// A reference model of §9 that flowc does not implement yet.
    #[error("reference model {name} is not implemented yet")]
    NotImplemented { name: String },
    /// A required input tensor is absent.
    #[error("missing input tensor {tensor}")]
    MissingInput { tensor: String },
    /// An input tensor has the wrong datatype.
    #[error("{tensor}: expected {expected}, got {got}")]
    WrongType {
        tensor: String,
        expected: DataType,
        got: DataType,
    },
    /// An input tensor has the right datatype but an unusable shape or size.
    #[error("{tensor}: expected {expected}, got {got}")]
    BadShape {
        tensor: String,
        expected: String,
        got: String,
    },
    /// The request's tensors cannot be decoded (or the answer cannot be encoded).
    #[error("{0}")]
    Tensor(#[from] TensorError),
}

impl ModelError {
    /// The caller sent a request this model cannot take (gRPC INVALID_ARGUMENT, HTTP 400), as
    /// opposed to asking for a model that is not there ([`ModelError::is_unknown_model`]).
    pub fn is_bad_input(&self) -> bool {
        !self.is_unknown_model()
    }

    /// The reference model does not exist or is not implemented (gRPC NOT_FOUND, HTTP 404).
    pub fn is_unknown_model(&self) -> bool {
        matches!(self, ModelError::Unknown { .. } | ModelError::NotImplemented { .. })
    }
}

/// Runs reference model `reference` on `request`.
pub fn infer(reference: &str, request: &ModelInferRequest) -> Result<ModelInferResponse, ModelError> {
    if !known(reference) {
        return Err(if NOT_YET.contains(&reference) {
            ModelError::NotImplemented {
                name: reference.to_string(),
            }
        } else {
            ModelError::Unknown {
                name: reference.to_string(),
            }
        });
    }
    let message = InferMessage::from_request(request)?;
    let mut outputs = compute(reference, &message.tensors)?;
    if !request.outputs.is_empty() {
        outputs.retain(|t| request.outputs.iter().any(|o| o.name == t.name));
    }
    Ok(InferMessage {
        tensors: outputs,
        ..message
    }
    .to_response()?)
}

/// The output tensors of a known reference model.
fn compute(reference: &str, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
    Ok(match reference {
        "sum-diff" => {
            let (a, b) = (input(inputs, "INPUT0")?, input(inputs, "INPUT1")?);
            let (x, y) = (i32s(a)?, i32s(b)?);
            if b.shape != a.shape {
                return Err(ModelError::BadShape {
                    tensor: b.name.clone(),
                    expected: format!("shape {:?} (the shape of INPUT0)", a.shape),
                    got: format!("shape {:?}", b.shape),
                });
            }
            let sum = x.iter().zip(y).map(|(p, q)| p.wrapping_add(*q)).collect();
            let diff = x.iter().zip(y).map(|(p, q)| p.wrapping_sub(*q)).collect();
            vec![
                output("OUTPUT0", a.shape.clone(), TensorData::Int32(sum))?,
                output("OUTPUT1", a.shape.clone(), TensorData::Int32(diff))?,
            ]
        }
        "add10" | "mul10" => {
            let x = input(inputs, "INPUT")?;
            let out = f32s(x)?
                .iter()
                .map(|v| if reference == "add10" { v + 10.0 } else { v * 10.0 })
                .collect();
            vec![output("OUTPUT", x.shape.clone(), TensorData::Fp32(out))?]
        }
        "conditional" => {
            let choice = first_i32(input(inputs, "CHOICE")?)?;
            let (pick, name) = if choice == 0 {
                ("INPUT0", "OUTPUT0")
            } else {
                ("INPUT1", "OUTPUT1")
            };
            let mut picked = input(inputs, pick)?.clone();
            picked.name = name.to_string();
            vec![picked]
        }
        "choice-is-one" | "choice-is-two" => {
            let want = if reference == "choice-is-one" { 1 } else { 2 };
            let choice = input(inputs, "choice")?;
            if i32s(choice)?.first() == Some(&want) {
                vec![choice.clone()]
            } else {
                Vec::new()
            }
        }
        "identity" => inputs.to_vec(),
        "counter" => {
            let next = first_i32(input(inputs, "INPUT")?)?.saturating_add(1);
            let flag = if next < 10 { "continue" } else { "stop" };
            vec![
                output("output", vec![1], TensorData::Int32(vec![next]))?,
                output(flag, vec![1], TensorData::Int32(vec![1]))?,
            ]
        }
        other => {
            return Err(ModelError::Unknown {
                name: other.to_string(),
            })
        }
    })
}

fn input<'a>(tensors: &'a [Tensor], name: &str) -> Result<&'a Tensor, ModelError> {
    tensors
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| ModelError::MissingInput {
            tensor: name.to_string(),
        })
}

fn output(name: &str, shape: Vec<i64>, data: TensorData) -> Result<Tensor, ModelError> {
    Ok(Tensor::new(name, shape, data)?)
}

fn wrong_type(t: &Tensor, expected: DataType) -> ModelError {
    ModelError::WrongType {
        tensor: t.name.clone(),
        expected,
        got: t.datatype(),
    }
}

fn f32s(t: &Tensor) -> Result<&[f32], ModelError> {
    match &t.data {
        TensorData::Fp32(v) => Ok(v),
        _ => Err(wrong_type(t, DataType::Fp32)),
    }
}

fn i32s(t: &Tensor) -> Result<&[i32], ModelError> {
    match &t.data {
        TensorData::Int32(v) => Ok(v),
        _ => Err(wrong_type(t, DataType::Int32)),
    }
}

/// The first element of an INT32 tensor that must have one.
fn first_i32(t: &Tensor) -> Result<i32, ModelError> {
    i32s(t)?.first().copied().ok_or_else(|| ModelError::BadShape {
        tensor: t.name.clone(),
        expected: "at least 1 element".to_string(),
        got: "none".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::inference::model_infer_request::InferRequestedOutputTensor;
    use crate::tensor::Encoding;

    fn t(name: &str, shape: Vec<i64>, data: TensorData) -> Tensor {
        Tensor::new(name, shape, data).unwrap()
    }

    fn request(tensors: Vec<Tensor>, encoding: Encoding) -> ModelInferRequest {
        InferMessage {
            id: "req-1".to_string(),
            parameters: Default::default(),
            tensors,
            encoding,
        }
        .to_request()
        .unwrap()
    }

    fn typed(tensors: Vec<Tensor>) -> ModelInferRequest {
        request(tensors, Encoding::Typed)
    }

    /// Runs the model and decodes its answer.
    fn run(reference: &str, request: &ModelInferRequest) -> Result<InferMessage, ModelError> {
        let response = infer(reference, request)?;
        Ok(InferMessage::from_response(&response).unwrap())
    }

    fn ok(reference: &str, tensors: Vec<Tensor>) -> Vec<Tensor> {
        run(reference, &typed(tensors)).unwrap().tensors
    }

    fn err(reference: &str, tensors: Vec<Tensor>) -> ModelError {
        run(reference, &typed(tensors)).unwrap_err()
    }

    fn int32(name: &str, v: Vec<i32>) -> Tensor {
        t(name, vec![1, v.len() as i64], TensorData::Int32(v))
    }

    fn fp32(name: &str, v: Vec<f32>) -> Tensor {
        t(name, vec![v.len() as i64], TensorData::Fp32(v))
    }

    #[test]
    fn names_and_known() {
        for name in NAMES {
            assert!(known(name), "{name}");
        }
        for name in ["iris", "outlier", "drift", "foo", ""] {
            assert!(!known(name), "{name}");
        }
    }

    #[test]
    fn sum_diff_typed_and_raw() {
        let inputs = vec![int32("INPUT0", (1..=16).collect()), int32("INPUT1", vec![1; 16])];
        let want = vec![
            int32("OUTPUT0", (2..=17).collect()),
            int32("OUTPUT1", (0..=15).collect()),
        ];
        let answer = run("sum-diff", &typed(inputs.clone())).unwrap();
        assert_eq!(answer.tensors, want);
        assert_eq!(answer.encoding, Encoding::Typed);
        assert_eq!(answer.id, "req-1");

        let raw = request(inputs, Encoding::Raw);
        assert!(!raw.raw_input_contents.is_empty());
        let response = infer("sum-diff", &raw).unwrap();
        assert_eq!(response.raw_output_contents.len(), 2, "a raw request gets a raw answer");
        assert_eq!(InferMessage::from_response(&response).unwrap().tensors, want);
    }

    #[test]
    fn sum_diff_errors() {
        assert_eq!(
            err("sum-diff", vec![int32("INPUT0", vec![1])]).to_string(),
            "missing input tensor INPUT1"
        );
        let e = err("sum-diff", vec![fp32("INPUT0", vec![1.0]), int32("INPUT1", vec![1])]);
        assert_eq!(e.to_string(), "INPUT0: expected INT32, got FP32");
        assert!(e.is_bad_input());
        let e = err("sum-diff", vec![int32("INPUT0", vec![1, 2]), int32("INPUT1", vec![1])]);
        assert_eq!(
            e.to_string(),
            "INPUT1: expected shape [1, 2] (the shape of INPUT0), got shape [1, 1]"
        );
    }

    #[test]
    fn add10_and_mul10() {
        let x = vec![fp32("INPUT", vec![1.0, 2.0, 3.0, 4.0])];
        assert_eq!(
            ok("add10", x.clone()),
            vec![fp32("OUTPUT", vec![11.0, 12.0, 13.0, 14.0])]
        );
        assert_eq!(
            ok("mul10", x.clone()),
            vec![fp32("OUTPUT", vec![10.0, 20.0, 30.0, 40.0])]
        );
        let raw = infer("mul10", &request(x, Encoding::Raw)).unwrap();
        assert_eq!(
            InferMessage::from_response(&raw).unwrap().tensors,
            vec![fp32("OUTPUT", vec![10.0, 20.0, 30.0, 40.0])]
        );
        assert_eq!(
            err("add10", vec![int32("INPUT", vec![1])]).to_string(),
            "INPUT: expected FP32, got INT32"
        );
        assert_eq!(
            err("mul10", vec![fp32("INPUT0", vec![1.0])]).to_string(),
            "missing input tensor INPUT"
        );
    }

    #[test]
    fn conditional_picks_one_branch() {
        let inputs = |choice| {
            vec![
                t("CHOICE", vec![1], TensorData::Int32(vec![choice])),
                fp32("INPUT0", vec![1.0, 2.0]),
                fp32("INPUT1", vec![3.0, 4.0]),
            ]
        };
        assert_eq!(ok("conditional", inputs(0)), vec![fp32("OUTPUT0", vec![1.0, 2.0])]);
        assert_eq!(ok("conditional", inputs(1)), vec![fp32("OUTPUT1", vec![3.0, 4.0])]);
        assert_eq!(ok("conditional", inputs(7)), vec![fp32("OUTPUT1", vec![3.0, 4.0])]);
        let raw = infer("conditional", &request(inputs(0), Encoding::Raw)).unwrap();
        assert_eq!(raw.raw_output_contents.len(), 1);
        assert_eq!(raw.outputs[0].name, "OUTPUT0");
        assert_eq!(
            err("conditional", vec![t("CHOICE", vec![0], TensorData::Int32(vec![]))]).to_string(),
            "CHOICE: expected at least 1 element, got none"
        );
        assert_eq!(
            err("conditional", vec![t("CHOICE", vec![1], TensorData::Int32(vec![0]))]).to_string(),
            "missing input tensor INPUT0"
        );
    }

    #[test]
    fn choice_is_one_and_two() {
        let choice = |v| vec![t("choice", vec![1], TensorData::Int32(vec![v]))];
        assert_eq!(ok("choice-is-one", choice(1)), choice(1));
        assert_eq!(ok("choice-is-one", choice(2)), vec![]);
        assert_eq!(ok("choice-is-two", choice(2)), choice(2));
        assert_eq!(ok("choice-is-two", choice(1)), vec![]);
        let raw = infer("choice-is-two", &request(choice(2), Encoding::Raw)).unwrap();
        assert_eq!(InferMessage::from_response(&raw).unwrap().tensors, choice(2));
        assert_eq!(
            err("choice-is-one", vec![t("choice", vec![1], TensorData::Int64(vec![1]))]).to_string(),
            "choice: expected INT32, got INT64"
        );
    }

    #[test]
    fn identity_returns_every_input() {
        let inputs = vec![
            fp32("a", vec![1.5]),
            t("b", vec![2], TensorData::Bytes(vec!["x".into(), "yz".into()])),
            t("c", vec![1], TensorData::Bool(vec![true])),
        ];
        assert_eq!(ok("identity", inputs.clone()), inputs);
        let raw = run("identity", &request(inputs.clone(), Encoding::Raw)).unwrap();
        assert_eq!(raw.encoding, Encoding::Raw);
        assert_eq!(raw.tensors, inputs);
        assert_eq!(ok("identity", vec![]), vec![]);
    }

    #[test]
    fn counter_counts_to_ten() {
        let one = |name: &str, v| t(name, vec![1], TensorData::Int32(vec![v]));
        assert_eq!(
            ok("counter", vec![one("INPUT", 0)]),
            vec![one("output", 1), one("continue", 1)]
        );
        assert_eq!(
            ok("counter", vec![one("INPUT", 9)]),
            vec![one("output", 10), one("stop", 1)]
        );
        let raw = run("counter", &request(vec![one("INPUT", 3)], Encoding::Raw)).unwrap();
        assert_eq!(raw.tensors, vec![one("output", 4), one("continue", 1)]);
        assert_eq!(
            err("counter", vec![fp32("INPUT", vec![1.0])]).to_string(),
            "INPUT: expected INT32, got FP32"
        );
    }

    #[test]
    fn requested_outputs_only() {
        let mut r = typed(vec![int32("INPUT0", vec![3]), int32("INPUT1", vec![1])]);
        r.outputs.push(InferRequestedOutputTensor {
            name: "OUTPUT1".to_string(),
            ..Default::default()
        });
        assert_eq!(run("sum-diff", &r).unwrap().tensors, vec![int32("OUTPUT1", vec![2])]);
    }

    #[test]
    fn unknown_and_not_yet_implemented() {
        let r = typed(vec![fp32("INPUT", vec![1.0; 4])]);
        let e = infer("foo", &r).unwrap_err();
        assert!(e.is_unknown_model() && !e.is_bad_input());
        assert!(
            e.to_string()
                .starts_with("unknown reference model foo (known: sum-diff, "),
            "{e}"
        );
        for name in NOT_YET {
            let e = infer(name, &r).unwrap_err();
            assert_eq!(e, ModelError::NotImplemented { name: name.to_string() });
            assert!(e.is_unknown_model());
            assert!(e.to_string().contains("not implemented yet"), "{e}");
        }
    }

    #[test]
    fn undecodable_request_is_bad_input() {
        let mut r = typed(vec![int32("INPUT0", vec![1, 2]), int32("INPUT1", vec![1, 2])]);
        r.inputs[0].shape = vec![1, 3];
        let e = infer("sum-diff", &r).unwrap_err();
        assert!(matches!(e, ModelError::Tensor(_)) && e.is_bad_input(), "{e}");
        assert!(e.to_string().contains("INPUT0"), "{e}");
    }
}
