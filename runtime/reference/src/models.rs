//! flowc's reference models (PIPELINES.md §9): small, exact models for tests and demos, served by
//! the built-in reference server ([`crate::server`]) under the name of any Model whose
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
//! | `iris` | FP32 [n,4] → INT64 `predict` [n,1]: the iris class (0 setosa, 1 versicolor, 2 virginica) by linear discriminant analysis |
//! | `outlier` | FP32 [n,4] → INT64 `is_outlier` [n], FP64 `instance_score` [n]: Mahalanobis distance to the iris data, outlier above [`OUTLIER_THRESHOLD`] |
//! | `drift` | FP32 [n,4] → INT64 `is_drift` [1], FP64 `p_val` [4]: two-sample Kolmogorov–Smirnov test per feature against the iris data, drift when a p-value is below [`DRIFT_ALPHA`] / 4 |
//!
//! Requests may carry their data typed or raw; the response uses the request's form and keeps its
//! id and parameters. When the request names outputs, only those are returned.
//!
//! `iris`, `outlier` and `drift` share their reference data, the iris flower data set (Fisher 1936,
//! via UCI, CC BY 4.0) embedded from `runtime/reference/data/iris.csv`, and are fitted to it at first use.
//! Like MLServer they take the request's single input tensor whatever its name, FP32 or FP64, of
//! shape [n, 4] (sepal length, sepal width, petal length, petal width in cm).

use std::sync::OnceLock;

use flowc_oip::proto::inference::{ModelInferRequest, ModelInferResponse};
use flowc_oip::tensor::{DataType, InferMessage, Tensor, TensorData, TensorError};

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
    "iris",
    "outlier",
    "drift",
];

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
    /// An input tensor has the right datatype but an unusable shape, size or value (or the request
    /// has not the one input tensor a model takes).
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

    /// The reference model does not exist (gRPC NOT_FOUND, HTTP 404).
    pub fn is_unknown_model(&self) -> bool {
        matches!(self, ModelError::Unknown { .. })
    }
}

/// Runs reference model `reference` on `request`.
pub fn infer(reference: &str, request: &ModelInferRequest) -> Result<ModelInferResponse, ModelError> {
    if !known(reference) {
        return Err(ModelError::Unknown {
            name: reference.to_string(),
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
        "iris" => {
            let (x, rows) = feature_rows(inputs, 0)?;
            let model = iris();
            let classes = rows.iter().map(|r| model.predict(r) as i64).collect();
            vec![output("predict", vec![x.shape[0], 1], TensorData::Int64(classes))?]
        }
        "outlier" => {
            let (x, rows) = feature_rows(inputs, 0)?;
            let model = iris();
            let scores: Vec<f64> = rows.iter().map(|r| model.mahalanobis(r)).collect();
            let flags = scores.iter().map(|s| i64::from(*s > OUTLIER_THRESHOLD)).collect();
            vec![
                output("is_outlier", vec![x.shape[0]], TensorData::Int64(flags))?,
                output("instance_score", vec![x.shape[0]], TensorData::Fp64(scores))?,
            ]
        }
        "drift" => {
            let (_, rows) = feature_rows(inputs, 1)?;
            let p_val = iris().drift_p_values(&rows);
            let drift = p_val.iter().any(|p| *p < DRIFT_ALPHA / FEATURES as f64);
            vec![
                output("is_drift", vec![1], TensorData::Int64(vec![i64::from(drift)]))?,
                output("p_val", vec![FEATURES as i64], TensorData::Fp64(p_val.to_vec()))?,
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

// ---------------------------------------------------------------- iris, outlier, drift

/// The iris flower data set: R. A. Fisher (1936), via the UCI Machine Learning Repository, CC BY
/// 4.0. After a `#` comment line and a header line, 150 rows of sepal length, sepal width, petal
/// length, petal width (cm) and class (0 setosa, 1 versicolor, 2 virginica), 50 of each.
const IRIS_CSV: &str = include_str!("../data/iris.csv");

/// Features per row of the iris data (and width of the `iris`, `outlier` and `drift` input).
const FEATURES: usize = 4;
/// Iris classes.
const CLASSES: usize = 3;

/// The 0.999 quantile of the chi-square distribution with 4 degrees of freedom,
/// χ²₄⁻¹(0.999) = 18.4668269529… (scipy `chi2.ppf(0.999, 4)`; for 4 degrees of freedom the CDF is
/// 1 − e^(−x/2)(1 + x/2), which the tests solve again). If the reference data were Gaussian, the
/// squared Mahalanobis distance of a row drawn from it would follow χ²₄ and exceed this once in
/// 1000 rows.
pub const OUTLIER_CHI2_QUANTILE: f64 = 18.46682695290317;

/// `outlier` flags a row whose Mahalanobis distance to the iris data (its `instance_score`) is
/// above √[`OUTLIER_CHI2_QUANTILE`] = 4.2973…; no row of the iris data itself is (the largest is
/// 3.62).
pub const OUTLIER_THRESHOLD: f64 = 4.297304614860711;

/// `drift` reports drift when some feature's Kolmogorov–Smirnov p-value is below `DRIFT_ALPHA / 4`
/// (a 5 % test over the 4 features, Bonferroni-corrected).
pub const DRIFT_ALPHA: f64 = 0.05;

type Row = [f64; FEATURES];
type Matrix = [[f64; FEATURES]; FEATURES];

/// The iris data and the three models fitted to it.
struct Iris {
    /// `iris`: linear discriminant analysis. Class c scores `weights[c]·x + bias[c]`, the
    /// highest score wins.
    weights: [Row; CLASSES],
    bias: [f64; CLASSES],
    /// `outlier`: the mean of all rows and the inverse of their sample covariance.
    mean: Row,
    inverse_covariance: Matrix,
    /// `drift`: each feature's values over all rows, at FP32 precision, sorted.
    sorted: [Vec<f32>; FEATURES],
}

/// The iris data, parsed and fitted on first use.
fn iris() -> &'static Iris {
    static IRIS: OnceLock<Iris> = OnceLock::new();
    IRIS.get_or_init(|| Iris::fit(IRIS_CSV))
}

impl Iris {
    /// Parses the embedded data and fits the models to it. Deterministic, no randomness; panics
    /// only if the embedded data is malformed (which the tests rule out).
    ///
    /// The classifier is Fisher's linear discriminant analysis: per-class means μ_c, the pooled
    /// within-class covariance Σ (divided by n − 3), and class c scores
    /// `x·Σ⁻¹μ_c − ½ μ_c·Σ⁻¹μ_c + ln(n_c / n)` (the log of a Gaussian density with a shared
    /// covariance, up to terms equal for all classes). It classifies 147 of the 150 training
    /// rows correctly (training accuracy 0.98; rows 71, 84 and 134 are missed), as scikit-learn's
    /// `LinearDiscriminantAnalysis` does.
    fn fit(csv: &str) -> Iris {
        let (rows, classes) = parse_iris(csv);
        let n = rows.len();

        let mut count = [0usize; CLASSES];
        let mut class_mean = [[0.0; FEATURES]; CLASSES];
        for (row, &c) in rows.iter().zip(&classes) {
            count[c] += 1;
            add(&mut class_mean[c], row, 1.0);
        }
        for (m, &k) in class_mean.iter_mut().zip(&count) {
            assert!(k > 0, "iris.csv: a class without rows");
            m.iter_mut().for_each(|v| *v /= k as f64);
        }
        let mut within = [[0.0; FEATURES]; FEATURES];
        for (row, &c) in rows.iter().zip(&classes) {
            add_outer(&mut within, &sub(row, &class_mean[c]));
        }
        scale(&mut within, 1.0 / (n - CLASSES) as f64);
        let within_inverse = invert(within).expect("iris.csv: singular within-class covariance");
        let mut weights = [[0.0; FEATURES]; CLASSES];
        let mut bias = [0.0; CLASSES];
        for c in 0..CLASSES {
            weights[c] = mat_vec(&within_inverse, &class_mean[c]);
            bias[c] = -0.5 * dot(&class_mean[c], &weights[c]) + (count[c] as f64 / n as f64).ln();
        }

        let mut mean = [0.0; FEATURES];
        rows.iter().for_each(|r| add(&mut mean, r, 1.0 / n as f64));
        let mut covariance = [[0.0; FEATURES]; FEATURES];
        rows.iter().for_each(|r| add_outer(&mut covariance, &sub(r, &mean)));
        scale(&mut covariance, 1.0 / (n - 1) as f64);
        let inverse_covariance = invert(covariance).expect("iris.csv: singular covariance");

        let sorted = std::array::from_fn(|k| {
            let mut column: Vec<f32> = rows.iter().map(|r| r[k] as f32).collect();
            column.sort_by(f32::total_cmp);
            column
        });
        Iris {
            weights,
            bias,
            mean,
            inverse_covariance,
            sorted,
        }
    }

    /// The iris class of `x` (ties, which do not occur in practice, go to the lower class).
    fn predict(&self, x: &Row) -> usize {
        let score = |c: usize| dot(&self.weights[c], x) + self.bias[c];
        (1..CLASSES).fold(0, |best, c| if score(c) > score(best) { c } else { best })
    }

    /// The Mahalanobis distance √((x−μ)ᵀ S⁻¹ (x−μ)) of `x` to the iris data (mean μ, sample
    /// covariance S of all 150 rows).
    fn mahalanobis(&self, x: &Row) -> f64 {
        let d = sub(x, &self.mean);
        dot(&d, &mat_vec(&self.inverse_covariance, &d)).max(0.0).sqrt()
    }

    /// Per feature, the p-value of the two-sample Kolmogorov–Smirnov test of `batch` against the
    /// iris data. Values are compared at FP32 precision, so that the data's one-decimal values
    /// tie exactly whether a request sends them as FP32 or FP64.
    fn drift_p_values(&self, batch: &[Row]) -> [f64; FEATURES] {
        std::array::from_fn(|k| {
            let mut column: Vec<f32> = batch.iter().map(|r| r[k] as f32).collect();
            column.sort_by(f32::total_cmp);
            let d = ks_statistic(&column, &self.sorted[k]);
            ks_p_value(d, column.len(), self.sorted[k].len())
        })
    }
}

/// The rows (features) and classes of the iris data in `csv`, in file order: `#` comment lines,
/// a header line, then rows of 4 numbers and a class 0, 1 or 2. Panics if it is malformed.
fn parse_iris(csv: &str) -> (Vec<Row>, Vec<usize>) {
    let mut rows = Vec::new();
    let mut classes = Vec::new();
    let lines = csv.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    for (i, line) in lines.skip(1).enumerate() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        assert_eq!(fields.len(), FEATURES + 1, "iris.csv data row {i}: {line}");
        let mut row = [0.0; FEATURES];
        for (v, f) in row.iter_mut().zip(&fields) {
            *v = f.parse().unwrap_or_else(|e| panic!("iris.csv data row {i}: {f}: {e}"));
        }
        let class: usize = fields[FEATURES]
            .parse()
            .unwrap_or_else(|e| panic!("iris.csv data row {i}: class {}: {e}", fields[FEATURES]));
        assert!(class < CLASSES, "iris.csv data row {i}: class {class}");
        rows.push(row);
        classes.push(class);
    }
    (rows, classes)
}

/// The rows of the single input tensor of `iris`, `outlier` and `drift` (any name, FP32 or FP64,
/// shape [n, 4] with n ≥ `min_rows`, finite values), widened to f64.
fn feature_rows(inputs: &[Tensor], min_rows: usize) -> Result<(&Tensor, Vec<Row>), ModelError> {
    let expected_shape = || {
        let rows = if min_rows > 0 {
            format!(" with n ≥ {min_rows}")
        } else {
            String::new()
        };
        format!("shape [n, {FEATURES}]{rows} (sepal length, sepal width, petal length, petal width)")
    };
    let x = match inputs {
        [x] => x,
        _ => {
            let names: Vec<&str> = inputs.iter().map(|t| t.name.as_str()).collect();
            return Err(ModelError::BadShape {
                tensor: "request".to_string(),
                expected: format!("a single input tensor (FP32 or FP64, {})", expected_shape()),
                got: if names.is_empty() {
                    "none".to_string()
                } else {
                    format!("{} tensors ({})", names.len(), names.join(", "))
                },
            });
        }
    };
    let values: Vec<f64> = match &x.data {
        TensorData::Fp32(v) => v.iter().map(|&v| f64::from(v)).collect(),
        TensorData::Fp64(v) => v.clone(),
        _ => return Err(wrong_type(x, DataType::Fp32)),
    };
    let n = match x.shape[..] {
        [n, k] if k == FEATURES as i64 && n >= min_rows as i64 => n as usize,
        _ => {
            return Err(ModelError::BadShape {
                tensor: x.name.clone(),
                expected: expected_shape(),
                got: format!("shape {:?}", x.shape),
            })
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::BadShape {
            tensor: x.name.clone(),
            expected: "finite values".to_string(),
            got: format!("{} at [{}, {}]", values[i], i / FEATURES, i % FEATURES),
        });
    }
    debug_assert_eq!(values.len(), n * FEATURES, "decoded tensors match their shape");
    let rows = values
        .chunks_exact(FEATURES)
        .map(|c| std::array::from_fn(|k| c[k]))
        .collect();
    Ok((x, rows))
}

/// The two-sample Kolmogorov–Smirnov statistic D = sup_x |F_a(x) − F_b(x)| of two sorted,
/// non-empty samples without NaN (F the empirical distribution functions; ties across the
/// samples step both functions at once).
fn ks_statistic(a: &[f32], b: &[f32]) -> f64 {
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// The asymptotic p-value of a two-sample Kolmogorov–Smirnov statistic `d` of samples of sizes
/// `n` and `m`: Q_KS((√nₑ + 0.12 + 0.11/√nₑ)·d) with the effective size nₑ = nm/(n+m)
/// (Stephens 1970; Numerical Recipes §14.3).
fn ks_p_value(d: f64, n: usize, m: usize) -> f64 {
    let en = (n as f64 * m as f64 / (n + m) as f64).sqrt();
    kolmogorov_q((en + 0.12 + 0.11 / en) * d)
}

/// The Kolmogorov distribution's survival function Q_KS(z) = 2 Σ_{j≥1} (−1)^(j−1) e^(−2j²z²),
/// for z < 1.18 from its equivalent form 1 − (√(2π)/z) Σ_{j≥1} e^(−(2j−1)²π²/(8z²)) (which
/// converges fast there); four terms of either give double precision (Numerical Recipes 3rd ed.,
/// §6.14).
fn kolmogorov_q(z: f64) -> f64 {
    if z <= 0.0 {
        return 1.0;
    }
    let q = if z < 1.18 {
        let y = (-std::f64::consts::PI.powi(2) / (8.0 * z * z)).exp();
        1.0 - (2.0 * std::f64::consts::PI).sqrt() / z * (y + y.powi(9) + y.powi(25) + y.powi(49))
    } else {
        let x = (-2.0 * z * z).exp();
        2.0 * (x - x.powi(4) + x.powi(9) - x.powi(16))
    };
    q.clamp(0.0, 1.0)
}

fn dot(a: &Row, b: &Row) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sub(a: &Row, b: &Row) -> Row {
    std::array::from_fn(|k| a[k] - b[k])
}

/// `acc += f·x`.
fn add(acc: &mut Row, x: &Row, f: f64) {
    acc.iter_mut().zip(x).for_each(|(a, v)| *a += f * v);
}

/// `acc += d·dᵀ`.
fn add_outer(acc: &mut Matrix, d: &Row) {
    for (row, di) in acc.iter_mut().zip(d) {
        add(row, d, *di);
    }
}

fn scale(a: &mut Matrix, f: f64) {
    a.iter_mut().flatten().for_each(|v| *v *= f);
}

fn mat_vec(a: &Matrix, x: &Row) -> Row {
    std::array::from_fn(|i| dot(&a[i], x))
}

/// The inverse of `a` by Gauss–Jordan elimination with partial pivoting; `None` when `a` is
/// (numerically) singular.
fn invert(mut a: Matrix) -> Option<Matrix> {
    let mut inv: Matrix = std::array::from_fn(|i| std::array::from_fn(|j| f64::from(u8::from(i == j))));
    let norm = a.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    for col in 0..FEATURES {
        let pivot = (col..FEATURES).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() <= norm * 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let p = a[col][col];
        a[col].iter_mut().for_each(|v| *v /= p);
        inv[col].iter_mut().for_each(|v| *v /= p);
        for r in 0..FEATURES {
            if r != col {
                let f = a[r][col];
                let (pivot_a, pivot_inv) = (a[col], inv[col]);
                add(&mut a[r], &pivot_a, -f);
                add(&mut inv[r], &pivot_inv, -f);
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowc_oip::proto::inference::model_infer_request::InferRequestedOutputTensor;
    use flowc_oip::tensor::Encoding;

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
        for name in ["iris", "outlier", "drift"] {
            assert!(known(name), "{name}");
        }
        for name in ["foo", "", "Iris"] {
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
    fn unknown_and_not_implemented() {
        let r = typed(vec![fp32("INPUT", vec![1.0; 4])]);
        let e = infer("foo", &r).unwrap_err();
        assert!(e.is_unknown_model() && !e.is_bad_input());
        assert!(
            e.to_string()
                .starts_with("unknown reference model foo (known: sum-diff, "),
            "{e}"
        );
        assert!(e.to_string().ends_with(", counter, iris, outlier, drift)"), "{e}");
        assert!(e.is_unknown_model() && !e.is_bad_input());
    }

    #[test]
    fn undecodable_request_is_bad_input() {
        let mut r = typed(vec![int32("INPUT0", vec![1, 2]), int32("INPUT1", vec![1, 2])]);
        r.inputs[0].shape = vec![1, 3];
        let e = infer("sum-diff", &r).unwrap_err();
        assert!(matches!(e, ModelError::Tensor(_)) && e.is_bad_input(), "{e}");
        assert!(e.to_string().contains("INPUT0"), "{e}");
    }

    // ------------------------------------------------------------ iris, outlier, drift

    fn rows_tensor(name: &str, rows: &[Row]) -> Tensor {
        let data = rows.iter().flatten().map(|v| *v as f32).collect();
        t(name, vec![rows.len() as i64, FEATURES as i64], TensorData::Fp32(data))
    }

    fn iris_rows() -> (Vec<Row>, Vec<usize>) {
        parse_iris(IRIS_CSV)
    }

    /// 20 rows of the iris data, evenly spread over it (rows 3, 10, 18, …, 145).
    fn sample() -> Vec<Row> {
        let (rows, _) = iris_rows();
        (0..20).map(|i| rows[i * 150 / 20 + 3]).collect()
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn iris_data_is_fishers() {
        let (rows, classes) = iris_rows();
        assert_eq!(rows.len(), 150);
        for c in 0..CLASSES {
            assert_eq!(classes.iter().filter(|&&k| k == c).count(), 50);
        }
        assert_eq!((rows[0], classes[0]), ([5.1, 3.5, 1.4, 0.2], 0));
        assert_eq!((rows[149], classes[149]), ([5.9, 3.0, 5.1, 1.8], 2));
        // The two rows UCI's iris.names corrects (to Fisher's paper).
        assert_eq!(rows[34], [4.9, 3.1, 1.5, 0.2]);
        assert_eq!(rows[37], [4.9, 3.6, 1.4, 0.1]);
        let column_sums: Vec<f64> = (0..FEATURES).map(|k| rows.iter().map(|r| r[k]).sum()).collect();
        for (got, want) in column_sums.iter().zip([876.5, 458.6, 563.7, 179.9]) {
            assert!(close(*got, want, 1e-9), "{column_sums:?}");
        }
        assert!(IRIS_CSV.starts_with("# Iris") && IRIS_CSV.contains("CC BY 4.0"));
    }

    #[test]
    fn iris_training_accuracy() {
        let (rows, classes) = iris_rows();
        let model = iris();
        let missed: Vec<usize> = (0..rows.len())
            .filter(|&i| model.predict(&rows[i]) != classes[i])
            .collect();
        let accuracy = 1.0 - missed.len() as f64 / rows.len() as f64;
        assert!(accuracy >= 0.95, "training accuracy {accuracy}");
        // As scikit-learn's LinearDiscriminantAnalysis: 147 of 150, versicolor 71 and 84 taken
        // for virginica, virginica 134 for versicolor (1-based rows).
        assert_eq!(missed, [70, 83, 133]);
        assert!(close(accuracy, 0.98, 1e-12));
    }

    #[test]
    fn iris_predicts_each_class() {
        let (rows, _) = iris_rows();
        let x = rows_tensor("INPUT", &[rows[0], rows[50], rows[100], [5.1, 3.5, 1.4, 0.2]]);
        let want = t("predict", vec![4, 1], TensorData::Int64(vec![0, 1, 2, 0]));
        assert_eq!(ok("iris", vec![x.clone()]), vec![want.clone()]);
        // Any name, raw or typed, FP32 or FP64.
        let mut renamed = x.clone();
        renamed.name = "predict_proba_input".to_string();
        assert_eq!(
            run("iris", &request(vec![renamed], Encoding::Raw)).unwrap().tensors,
            vec![want.clone()]
        );
        let fp64 = t(
            "x",
            vec![4, 4],
            TensorData::Fp64([rows[0], rows[50], rows[100], rows[0]].concat()),
        );
        assert_eq!(ok("iris", vec![fp64]), vec![want]);
        assert_eq!(
            ok("iris", vec![rows_tensor("x", &[])]),
            vec![t("predict", vec![0, 1], TensorData::Int64(vec![]))]
        );
    }

    #[test]
    fn iris_outlier_drift_input_errors() {
        for model in ["iris", "outlier", "drift"] {
            let e = err(model, vec![fp32("INPUT", vec![1.0; 4])]);
            assert!(e.is_bad_input(), "{e}");
            let want = if model == "drift" {
                "[n, 4] with n ≥ 1"
            } else {
                "[n, 4]"
            };
            assert_eq!(
                e.to_string(),
                format!(
                    "INPUT: expected shape {want} (sepal length, sepal width, petal length, petal width), got \
                     shape [4]"
                )
            );
            let e = err(model, vec![t("x", vec![2, 3], TensorData::Fp32(vec![1.0; 6]))]);
            assert!(e.to_string().starts_with("x: expected shape [n, 4]"), "{e}");
            assert!(e.to_string().ends_with("got shape [2, 3]"), "{e}");
            assert_eq!(
                err(model, vec![int32("x", vec![1, 2, 3, 4])]).to_string(),
                "x: expected FP32, got INT32"
            );
            let e = err(
                model,
                vec![rows_tensor("a", &[[1.0; 4]]), rows_tensor("b", &[[1.0; 4]])],
            );
            assert!(e
                .to_string()
                .starts_with("request: expected a single input tensor (FP32 or FP64, shape [n, 4]"));
            assert!(e.to_string().ends_with(", got 2 tensors (a, b)"), "{e}");
            assert!(err(model, vec![]).to_string().ends_with(", got none"));
            let nan = t(
                "x",
                vec![2, 4],
                TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0, 5.0, f32::NAN, 1.0, 1.0]),
            );
            assert_eq!(
                err(model, vec![nan]).to_string(),
                "x: expected finite values, got NaN at [1, 1]"
            );
        }
        assert_eq!(
            err("drift", vec![rows_tensor("x", &[])]).to_string(),
            "x: expected shape [n, 4] with n ≥ 1 (sepal length, sepal width, petal length, petal width), got \
             shape [0, 4]"
        );
    }

    #[test]
    fn outlier_threshold_is_the_chi_square_quantile() {
        // For 4 degrees of freedom P(χ² > x) = e^(−x/2)(1 + x/2): solve it = 0.001 by bisection.
        let tail = |x: f64| (-x / 2.0).exp() * (1.0 + x / 2.0);
        let (mut lo, mut hi) = (0.0, 100.0);
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if tail(mid) > 0.001 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        assert!(close(lo, OUTLIER_CHI2_QUANTILE, 1e-9), "{lo}");
        assert!(close(OUTLIER_THRESHOLD, OUTLIER_CHI2_QUANTILE.sqrt(), 1e-12));
    }

    #[test]
    fn outlier_scores_are_mahalanobis_distances() {
        let (rows, _) = iris_rows();
        let model = iris();
        // The stored inverse inverts the sample covariance.
        let mut covariance = [[0.0; FEATURES]; FEATURES];
        rows.iter()
            .for_each(|r| add_outer(&mut covariance, &sub(r, &model.mean)));
        scale(&mut covariance, 1.0 / 149.0);
        for (i, row) in covariance.iter().enumerate() {
            for j in 0..FEATURES {
                let v: f64 = (0..FEATURES).map(|k| row[k] * model.inverse_covariance[k][j]).sum();
                assert!(close(v, f64::from(u8::from(i == j)), 1e-9), "{i} {j} {v}");
            }
        }
        assert!(invert([
            [1.0, 2.0, 0.0, 0.0],
            [2.0, 4.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0; 4]
        ])
        .is_none());
        // Over the data itself, the squared distances average (n−1)/n times the dimension, 4.
        let squares: f64 = rows.iter().map(|r| model.mahalanobis(r).powi(2)).sum();
        assert!(close(squares / 150.0, 4.0 * 149.0 / 150.0, 1e-9), "{squares}");
        assert_eq!(model.mahalanobis(&model.mean), 0.0);
        // No flower of the data is an outlier (the farthest, row 132, a 7.9 cm virginica, is at 3.62).
        let max = rows.iter().map(|r| model.mahalanobis(r)).fold(0.0, f64::max);
        assert!(close(max, 3.6195431379, 1e-9), "{max}");
        let far = [5.1, 3.5, 6.0, 0.2];
        let answer = ok(
            "outlier",
            vec![rows_tensor("INPUT", &[[5.1, 3.5, 1.4, 0.2], far, rows[100]])],
        );
        assert_eq!(answer[0], t("is_outlier", vec![3], TensorData::Int64(vec![0, 1, 0])));
        let TensorData::Fp64(scores) = &answer[1].data else {
            panic!("{answer:?}")
        };
        assert_eq!(
            (answer[1].name.as_str(), &answer[1].shape),
            ("instance_score", &vec![3])
        );
        // scipy: the distance of FP32 [5.1, 3.5, 1.4, 0.2] to the data.
        assert!(close(scores[0], 1.4609817913, 1e-9), "{scores:?}");
        assert!(scores[1] > OUTLIER_THRESHOLD, "{scores:?}");
    }

    #[test]
    fn kolmogorov_distribution() {
        assert_eq!(kolmogorov_q(0.0), 1.0);
        // Critical values of the Kolmogorov distribution: 5 % at 1.3581, 1 % at 1.6276.
        assert!(close(kolmogorov_q(1.3581), 0.05, 1e-4));
        assert!(close(kolmogorov_q(1.6276), 0.01, 1e-4));
        assert!(close(kolmogorov_q(0.5), 0.9639452436648751, 1e-12));
        // The two series agree where they hand over.
        let series = |z: f64| {
            2.0 * (1..100)
                .map(|j| (-1f64).powi(j - 1) * (-2.0 * f64::from(j * j) * z * z).exp())
                .sum::<f64>()
        };
        for z in [0.8, 1.0, 1.17, 1.18, 1.19, 2.0, 3.0] {
            assert!(close(kolmogorov_q(z), series(z), 1e-14), "{z}");
        }
        let mut last = 1.0;
        for i in 1..400 {
            let q = kolmogorov_q(f64::from(i) / 100.0);
            assert!(q <= last && q >= 0.0, "{i}");
            last = q;
        }
    }

    #[test]
    fn ks_statistic_with_ties() {
        assert_eq!(ks_statistic(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(ks_statistic(&[1.0, 2.0], &[3.0, 4.0, 5.0]), 1.0);
        assert_eq!(ks_statistic(&[3.0, 4.0, 5.0], &[1.0, 2.0]), 1.0);
        // Ties across the samples step both functions together: at 1, 1/2 vs 2/4.
        assert_eq!(ks_statistic(&[1.0, 2.0], &[1.0, 1.0, 2.0, 2.0]), 0.0);
        assert_eq!(ks_statistic(&[1.0, 1.0], &[1.0, 2.0, 2.0, 2.0]), 0.75);
        assert!(close(ks_statistic(&[0.0, 2.0, 4.0], &[1.0, 3.0]), 1.0 / 3.0, 1e-15));
    }

    fn drift(rows: &[Row]) -> (i64, Vec<f64>) {
        let answer = ok("drift", vec![rows_tensor("INPUT", rows)]);
        match &answer[..] {
            [is_drift, p_val] => {
                assert_eq!((is_drift.name.as_str(), &is_drift.shape), ("is_drift", &vec![1]));
                assert_eq!((p_val.name.as_str(), &p_val.shape), ("p_val", &vec![4]));
                match (&is_drift.data, &p_val.data) {
                    (TensorData::Int64(d), TensorData::Fp64(p)) => (d[0], p.clone()),
                    _ => panic!("{answer:?}"),
                }
            }
            _ => panic!("{answer:?}"),
        }
    }

    #[test]
    fn drift_none_for_a_sample_of_the_data() {
        let (is_drift, p_val) = drift(&sample());
        assert_eq!(is_drift, 0, "{p_val:?}");
        // D = 0.1, 0.1, 0.12667, 0.10333 (as scipy's ks_2samp).
        let want = [
            0.9915758123305181,
            0.9915758123305181,
            0.9221894983498184,
            0.9876614468636256,
        ];
        for (p, w) in p_val.iter().zip(want) {
            assert!(close(*p, w, 1e-9), "{p_val:?}");
        }
        // FP64 requests tie with the data the same way.
        let fp64 = t("x", vec![20, 4], TensorData::Fp64(sample().concat()));
        let answer = ok("drift", vec![fp64]);
        assert_eq!(answer[1].data, TensorData::Fp64(p_val));
    }

    #[test]
    fn drift_when_one_feature_shifts() {
        let mut shifted = sample();
        shifted.iter_mut().for_each(|r| r[1] += 3.0);
        let (is_drift, p_val) = drift(&shifted);
        assert_eq!(is_drift, 1, "{p_val:?}");
        // Sepal widths 5.0–7.4 cm against 2.0–4.4: D = 1.
        assert!(p_val[1] < 1e-15, "{p_val:?}");
        assert_eq!(
            [p_val[0], p_val[2], p_val[3]],
            [drift(&sample()).1[0], drift(&sample()).1[2], drift(&sample()).1[3]]
        );

        let mut shifted = sample();
        shifted.iter_mut().for_each(|r| r[2] += 3.0);
        let (is_drift, p_val) = drift(&shifted);
        assert_eq!(is_drift, 1, "{p_val:?}");
        assert!(close(p_val[2], 1.5617160367927635e-06, 1e-12), "{p_val:?}");
        assert!(p_val[2] < DRIFT_ALPHA / 4.0 && p_val.iter().filter(|p| **p < 0.5).count() == 1);
    }

    #[test]
    fn detectors_sample_request() {
        // samples/detectors.yaml: 20 times [5.1, 3.5, 1.4, 0.2], setosa and no outlier; the
        // batch of 20 identical flowers is no sample of the data: drift.
        let x = [5.1, 3.5, 1.4, 0.2];
        assert_eq!(
            ok("iris", vec![rows_tensor("INPUT", &[x])]),
            vec![t("predict", vec![1, 1], TensorData::Int64(vec![0]))]
        );
        assert_eq!(
            ok("outlier", vec![rows_tensor("INPUT", &[x])])[0].data,
            TensorData::Int64(vec![0])
        );
        let (is_drift, p_val) = drift(&[x; 20]);
        assert_eq!(is_drift, 1);
        assert!(p_val.iter().all(|p| *p < 1e-8), "{p_val:?}");
    }
}
