//! The driver's structured logs name the run and the step of everything said while a step is
//! carried out (the same `run_id` field as the dashboard's request spans), so one run can be
//! followed through a JSON log with a filter on one field.

mod engine_common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use engine_common::Harness;
use lockstep::engine::machine::RunStatus;
use lockstep::engine::testkit::noop_plan;

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_step_event_the_driver_applies_is_logged_with_its_run_and_step_ids() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut h = Harness::new().await;
    h.start();
    let run = h.started_run(noop_plan(3, true, &[])).await;
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    h.stop().await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let applied: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["fields"]["message"] == "step event applied")
        .collect();
    let mut steps: Vec<String> = applied
        .iter()
        .map(|v| {
            assert_eq!(v["span"]["name"], "step", "{v}");
            assert_eq!(v["span"]["run_id"], run.id.as_str(), "{v}");
            v["span"]["step_id"].as_str().unwrap().to_string()
        })
        .collect();
    steps.dedup();
    assert_eq!(steps, ["s0000", "s0001", "s0002"], "{text}");
    assert!(
        applied.iter().all(|v| v["fields"]["event"].is_string()),
        "each line names the event: {text}"
    );
}
