//! Tensor selection, tensorMap renames and conversion by topic suffix (§5.1), without decoding
//! tensor data: only names are looked at, so raw and typed messages stay as they came.

use flowc_plan::{Payload as PlanPayload, Port, Rename, Selection};

use crate::envelope::{Envelope, Payload};
use crate::operator::{Ctx, OpError, Operator};
use flowc_oip::tensor::{request_to_response, response_to_request, retain_request_inputs, retain_response_outputs};

pub struct Select {
    only: Option<Vec<String>>,
    renames: Vec<Rename>,
    to: PlanPayload,
}

impl Select {
    pub fn new(tensors: &Selection, renames: &[Rename], _from: PlanPayload, to: PlanPayload) -> Self {
        Select {
            only: match tensors {
                Selection::All => None,
                Selection::Only(names) => Some(names.clone()),
            },
            renames: renames.to_vec(),
            to,
        }
    }

    fn keep(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.iter().any(|n| n == name))
    }

    fn rename(&self, name: &mut String) {
        if let Some(r) = self.renames.iter().find(|r| r.from == *name) {
            name.clone_from(&r.to);
        }
    }
}

impl Operator for Select {
    fn process(&mut self, _port: Port, mut envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        // Select by upstream names first, then rename (§2.1: selection uses names before renames).
        let payload = match std::mem::replace(&mut envelope.payload, Payload::Control) {
            Payload::Request(mut r) => {
                retain_request_inputs(&mut r, |n| self.keep(n))?;
                if r.inputs.is_empty() {
                    return Ok(());
                }
                r.inputs.iter_mut().for_each(|t| self.rename(&mut t.name));
                match self.to {
                    PlanPayload::Response => Payload::Response(request_to_response(r)),
                    _ => Payload::Request(r),
                }
            }
            Payload::Response(mut r) => {
                retain_response_outputs(&mut r, |n| self.keep(n))?;
                if r.outputs.is_empty() {
                    return Ok(());
                }
                r.outputs.iter_mut().for_each(|t| self.rename(&mut t.name));
                match self.to {
                    PlanPayload::Request => Payload::Request(response_to_request(r)),
                    _ => Payload::Response(r),
                }
            }
            other => other,
        };
        envelope.payload = payload;
        ctx.emit(envelope);
        Ok(())
    }
}
