//! Records per second through a 1-step plan on a real broker (`FLOWC_BENCH_BROKER`: Apache
//! Kafka by default, or tansu; started here), against a raw rdkafka pipe with the same hops on
//! the same broker in the same run:
//!
//!   flowc:    pipeline.bench.inputs → [step] → model.bench-id.inputs → [model call] →
//!             model.bench-id.outputs → [output] → pipeline.bench.outputs
//!   baseline: raw.in → [relay] → raw.model.inputs → [relay + the same gRPC model call] →
//!             raw.model.outputs → [relay] → raw.out
//!
//! Both commit like flowc does (batch, wait for acknowledgements, then commit) and call the
//! same in-process reference model server with up to 16 calls in flight. The raw relays use
//! the broker's fastest raw client settings (benches/common `RawSettings`), flowc its own.
//! Each side runs `ROUNDS` times over `RECORDS` records after a warm-up; the medians and their
//! ratio are printed (goal: flowc/baseline >= 0.7).
//!
//!   cargo bench --bench broker
//!   (FLOWC_BENCH_RECORDS, FLOWC_BENCH_ROUNDS to change; FLOWC_BENCH_X=key=value,… adds
//!    librdkafka properties to the worker's clients)

use std::time::Instant;

use prost::Message as _;

mod common;

use common::env_usize;

fn payload() -> Vec<u8> {
    common::request().encode_to_vec()
}

fn main() {
    // Enough records that the fixed ~0.6 s of producing and reading a round does not dominate.
    let records = env_usize("FLOWC_BENCH_RECORDS", 30_000);
    let rounds = env_usize("FLOWC_BENCH_ROUNDS", 3);
    // The reference model server and one worker in process; the raw pipe beside it.
    let bench = common::Bench::start();
    let bootstrap = bench.bootstrap.clone();
    let raw = common::RAW;

    let value = payload();
    let p = common::producer(&bootstrap, 2);
    let flowc_in = "seldon.default.pipeline.bench.inputs";
    let flowc_out = "seldon.default.pipeline.bench.outputs";
    // Warm up: groups joined, connections open.
    common::produce(&p, flowc_in, "warm", 50, &value, Some("bench"));
    common::produce(&p, raw[0], "warm", 50, &value, Some("bench"));
    common::await_keys(&bootstrap, flowc_out, "warm", 50);
    common::await_keys(&bootstrap, raw[3], "warm", 50);

    let (mut flowc_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (name, input, output, rates) in [
            ("flowc", flowc_in, flowc_out, &mut flowc_rates),
            ("raw", raw[0], raw[3], &mut raw_rates),
        ] {
            let tag = format!("r{round}");
            let started = Instant::now();
            common::produce(&p, input, &tag, records, &value, Some("bench"));
            let done = common::await_keys(&bootstrap, output, &tag, records);
            let secs = (done - started).as_secs_f64();
            let rate = records as f64 / secs;
            println!("round {round} {name:>5}: {records} records in {secs:.2} s = {rate:.0} records/s");
            rates.push(rate);
        }
    }
    let (f, r) = (common::median(flowc_rates), common::median(raw_rates));
    println!(
        "median flowc {f:.0} records/s, raw rdkafka pipe {r:.0} records/s, ratio {:.2} (goal >= 0.7)",
        f / r
    );
    drop(p);
    bench.finish();
}
