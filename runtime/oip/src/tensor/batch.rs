//! Batching (§5.5): tensors concatenated along dim 0.

use super::*;

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
