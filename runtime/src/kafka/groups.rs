//! What the broker says of consumer groups: state, members and each member's partitions, for
//! `flowc status`, apply's "does this group exist yet" and the members view.
//!
//! Through librdkafka's DescribeConsumerGroups admin call, which the rdkafka crate does not
//! wrap: it asks with ConsumerGroupDescribe (KIP-848), the only API that describes a group of
//! the consumer protocol (the classic DescribeGroups answers GROUP_ID_NOT_FOUND for one), and
//! falls back to DescribeGroups for classic groups and for brokers without it (tansu). This is
//! the only unsafe code of the Kafka node; every pointer it reads belongs to the result event
//! and is copied out before the event is destroyed.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;

use super::config::KafkaConfig;
use super::KafkaError;

/// One consumer group as the broker describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, `Dead` (no such group), …
    pub state: String,
    /// `Consumer` (KIP-848), `Classic`, or `Unknown` where the broker does not say.
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub client_id: String,
    pub host: String,
    /// Topic → partitions, as assigned to this member now.
    pub partitions: BTreeMap<String, Vec<i32>>,
}

impl GroupDescription {
    /// Whether the broker knows the group with members or committed state (not `Dead`).
    pub fn exists(&self) -> bool {
        self.state != "Dead"
    }
}

/// Describes `groups`, each within `config.timeout`. A group the broker does not know comes
/// back in state `Dead` with no members (on tansu it is left out); a group the broker could
/// not describe is an error naming it.
pub fn describe(config: &KafkaConfig, groups: &[&str]) -> Result<Vec<GroupDescription>, KafkaError> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    if config.flavor == super::broker::BrokerFlavor::Tansu {
        return describe_classic(config, groups);
    }
    let admin: AdminClient<DefaultClientContext> = config.admin().create()?;
    let names: Vec<CString> = groups
        .iter()
        .map(|g| CString::new(*g).map_err(|_| KafkaError::Deploy(format!("group name {g:?} holds a NUL byte"))))
        .collect::<Result<_, _>>()?;
    let mut pointers: Vec<*const std::os::raw::c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let wait = config.timeout;
    let rk = admin.inner().native_ptr();
    // SAFETY: `rk` is the live client of `admin`, which outlives every call here; `names`
    // outlives the request (librdkafka copies the group names); the queue, options and event
    // are destroyed exactly once, and nothing read from the event is used after that.
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let options =
            rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
        let mut errstr = [0 as std::os::raw::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            wait.as_millis().min(i32::MAX as u128) as i32,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        rd::rd_kafka_DescribeConsumerGroups(rk, pointers.as_mut_ptr(), pointers.len(), options, queue);
        // The admin request ends by its own timeout; a little more here so that its answer,
        // not ours, says what went wrong.
        let event = rd::rd_kafka_queue_poll(
            queue,
            (wait + Duration::from_secs(2)).as_millis().min(i32::MAX as u128) as i32,
        );
        let result = if event.is_null() {
            Err(KafkaError::Timeout(format!(
                "describing consumer groups {groups:?} at {}",
                config.bootstrap
            )))
        } else {
            let parsed = read_event(event, groups);
            rd::rd_kafka_event_destroy(event);
            parsed
        };
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_queue_destroy(queue);
        result
    }
}

/// tansu 0.6 answers DescribeConsumerGroups with groups that have no members: there, ListGroups
/// and DescribeGroups (rdkafka's `fetch_group_list`, asked as a client of the group), without
/// assignments; a group they do not name is left out, and callers fall back to the workers'
/// member reports (`members.rs`).
fn describe_classic(config: &KafkaConfig, groups: &[&str]) -> Result<Vec<GroupDescription>, KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut out = Vec::new();
    for group in groups {
        // Asked as a client of the group itself, as tansu answers only then.
        let consumer: BaseConsumer = config.classic_consumer(group).create()?;
        let Ok(listed) = consumer.fetch_group_list(Some(group), config.timeout) else {
            continue;
        };
        let Some(described) = listed.groups().first() else {
            continue;
        };
        out.push(GroupDescription {
            group: group.to_string(),
            state: described.state().to_string(),
            protocol: "Classic".into(),
            members: described
                .members()
                .iter()
                .map(|m| MemberDescription {
                    client_id: m.client_id().to_string(),
                    host: m.client_host().to_string(),
                    partitions: BTreeMap::new(),
                })
                .collect(),
        });
    }
    Ok(out)
}

/// The descriptions in a DescribeConsumerGroups result event.
///
/// # Safety
/// `event` is a live result event of DescribeConsumerGroups.
unsafe fn read_event(event: *mut rd::rd_kafka_event_t, asked: &[&str]) -> Result<Vec<GroupDescription>, KafkaError> {
    if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(KafkaError::Deploy(format!(
            "describing consumer groups {asked:?}: {}",
            text(rd::rd_kafka_event_error_string(event))
        )));
    }
    let result = rd::rd_kafka_event_DescribeConsumerGroups_result(event);
    if result.is_null() {
        return Err(KafkaError::Deploy("describing consumer groups: no result".into()));
    }
    let mut count = 0usize;
    let groups = rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let g = *groups.add(i);
        let name = text(rd::rd_kafka_ConsumerGroupDescription_group_id(g));
        let error = rd::rd_kafka_ConsumerGroupDescription_error(g);
        if !error.is_null() {
            let code = rd::rd_kafka_error_code(error);
            if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND {
                out.push(GroupDescription {
                    group: name,
                    state: "Dead".into(),
                    protocol: "Unknown".into(),
                    members: Vec::new(),
                });
                continue;
            }
            return Err(KafkaError::Deploy(format!(
                "describing consumer group {name}: {}",
                text(rd::rd_kafka_error_string(error))
            )));
        }
        let state = text(rd::rd_kafka_consumer_group_state_name(
            rd::rd_kafka_ConsumerGroupDescription_state(g),
        ));
        let protocol = text(rd::rd_kafka_consumer_group_type_name(
            rd::rd_kafka_ConsumerGroupDescription_type(g),
        ));
        let mut members = Vec::new();
        for m in 0..rd::rd_kafka_ConsumerGroupDescription_member_count(g) {
            let member = rd::rd_kafka_ConsumerGroupDescription_member(g, m);
            let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            let assignment = rd::rd_kafka_MemberDescription_assignment(member);
            let list = if assignment.is_null() {
                std::ptr::null()
            } else {
                rd::rd_kafka_MemberAssignment_partitions(assignment)
            };
            if !list.is_null() {
                for e in 0..(*list).cnt.max(0) as usize {
                    let tp = &*(*list).elems.add(e);
                    partitions.entry(text(tp.topic)).or_default().push(tp.partition);
                }
            }
            for ps in partitions.values_mut() {
                ps.sort_unstable();
            }
            members.push(MemberDescription {
                client_id: text(rd::rd_kafka_MemberDescription_client_id(member)),
                host: text(rd::rd_kafka_MemberDescription_host(member)),
                partitions,
            });
        }
        out.push(GroupDescription {
            group: name,
            state,
            protocol,
            members,
        });
    }
    Ok(out)
}

/// A C string owned by librdkafka, copied ("" for none).
///
/// # Safety
/// `p` is null or a NUL-terminated string live for this call.
unsafe fn text(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
