//! Issue 21: a campaign's stages run in order, as an invariant of the engine. Through the engine
//! and the store on a real SQLite file with the driver running: stage 2's run can be neither
//! created nor started before stage 1's run has succeeded, whoever asks, and each refusal
//! changes nothing.

mod engine_common;

use std::collections::BTreeMap;

use engine_common::Harness;
use lockstep::engine::machine::{RunEvent, RunStatus};
use lockstep::engine::store::campaigns::{
    CampaignTarget, NewCampaign, NewStage, ServerVersions, StageRun,
};
use lockstep::engine::store::NewRun;
use lockstep::engine::testkit::{approver, noop_plan, operator};
use lockstep::engine::{EngineError, Refusal};

fn estate(version: &str) -> Vec<ServerVersions> {
    vec![ServerVersions {
        name: "DC1".into(),
        version: version.into(),
        windows: Some("2016".into()),
        sql_server: Some("2016".into()),
    }]
}

fn stage(runbook: &str, version: &str) -> NewStage {
    NewStage {
        runbook: runbook.into(),
        params: BTreeMap::new(),
        servers: vec!["DC1".into()],
        reason: format!("{runbook} comes here"),
        section: "Upgrade the Data Center".into(),
        estimate_secs: 60,
        estate_after: estate(version),
    }
}

fn two_stages() -> NewCampaign {
    NewCampaign {
        data_center: "test".into(),
        target: CampaignTarget {
            connected: Some("8.11".into()),
            ..CampaignTarget::default()
        },
        stages: vec![stage("first", "8.10"), stage("second", "8.11")],
    }
}

fn stage_run(ticket: &str) -> StageRun {
    StageRun {
        run: NewRun {
            change_ticket: ticket.into(),
            window_start: None,
            window_end: None,
            plan: noop_plan(2, true, &["DC1"]),
        },
        servers: vec!["DC1".into()],
        found: estate("8.10"),
    }
}

fn approve_start() -> RunEvent {
    RunEvent::ApproveStart {
        actor: approver("carl"),
        comment: "go".into(),
    }
}

fn submit() -> RunEvent {
    RunEvent::Submit {
        actor: operator("olga"),
    }
}

fn out_of_order(r: &Result<impl std::fmt::Debug, EngineError>, stage: i64, why: &str) {
    match r {
        Err(EngineError::Refused(Refusal::StageOutOfOrder {
            stage: s, why: w, ..
        })) => {
            assert_eq!(*s, stage, "{r:?}");
            assert!(w.contains(why), "`{w}` does not say `{why}`");
        }
        other => panic!("expected the campaign order refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn stage_two_is_refused_until_stage_one_has_succeeded_and_again_once_it_is_undone() {
    let mut h = Harness::new().await;
    h.start();
    let olga = operator("olga");
    let now = 1_000;
    let c = h
        .store
        .create_campaign(two_stages(), &olga, now)
        .await
        .unwrap();

    // Stage 2 first: refused, and nothing is written.
    let before = h.store.all_events().await.unwrap().len();
    let r = h
        .store
        .create_stage_run(&c.id, 2, stage_run("CHG-2"), &olga, now)
        .await;
    out_of_order(&r, 2, "stage 1 (first) has no run yet");
    assert_eq!(h.store.all_events().await.unwrap().len(), before);
    assert!(h.store.runs().await.unwrap().is_empty());

    // Stage 1's run exists but has not run: stage 2 still waits.
    let one = h
        .store
        .create_stage_run(&c.id, 1, stage_run("CHG-1"), &olga, now)
        .await
        .unwrap();
    let r = h
        .store
        .create_stage_run(&c.id, 2, stage_run("CHG-2"), &olga, now)
        .await;
    out_of_order(&r, 2, "its run");
    // A second run of a stage whose run is alive is a conflict, not a second run.
    let r = h
        .store
        .create_stage_run(&c.id, 1, stage_run("CHG-1b"), &olga, now)
        .await;
    assert!(matches!(r, Err(EngineError::Conflict(_))), "{r:?}");

    // Stage 1 runs to success; then stage 2 is created and submitted.
    h.engine.run_event(&one.id, submit()).await.unwrap();
    h.engine.run_event(&one.id, approve_start()).await.unwrap();
    h.run_reaches(&one.id, RunStatus::Succeeded).await;
    let two = h
        .store
        .create_stage_run(&c.id, 2, stage_run("CHG-2"), &olga, now)
        .await
        .unwrap();
    h.engine.run_event(&two.id, submit()).await.unwrap();

    // Stage 1 is undone before stage 2 starts: the start approval is refused through the
    // engine, with the reason, and stage 2's run still waits for its approval.
    h.engine
        .run_event(
            &one.id,
            RunEvent::Undo {
                actor: olga.clone(),
                reason: "rolled back after a finding".into(),
            },
        )
        .await
        .unwrap();
    let before = h.store.run_events(&two.id).await.unwrap().len();
    let r = h.engine.run_event(&two.id, approve_start()).await;
    out_of_order(&r, 2, "stage 1 (first) has not succeeded");
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.starts_with("stage 2 of campaign c-") && msg.contains("run in order"),
        "{msg}"
    );
    let after = h.store.run(&two.id).await.unwrap();
    assert_eq!(after.status, RunStatus::AwaitingStartApproval);
    assert_eq!(h.store.run_events(&two.id).await.unwrap().len(), before);
    h.stop().await;
}

#[tokio::test]
async fn a_campaign_in_order_is_recorded_and_closes_when_every_stage_succeeded() {
    let mut h = Harness::new().await;
    h.start();
    let olga = operator("olga");
    // Only an operator plans a campaign.
    let r = h
        .store
        .create_campaign(two_stages(), &lockstep::engine::Actor::new("vera", &[]), 1)
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::MissingRole { .. }))),
        "{r:?}"
    );
    let c = h
        .store
        .create_campaign(two_stages(), &olga, 1)
        .await
        .unwrap();
    assert_eq!(c.state, "open");
    assert_eq!(
        h.store.campaigns(Some("test")).await.unwrap(),
        std::slice::from_ref(&c)
    );
    assert!(h.store.campaigns(Some("other")).await.unwrap().is_empty());

    let mut runs = Vec::new();
    for ordinal in 1..=2 {
        let run = h
            .store
            .create_stage_run(&c.id, ordinal, stage_run("CHG-9"), &olga, 2)
            .await
            .unwrap();
        assert!(!h.store.close_campaign_if_done(&c.id, 3).await.unwrap());
        h.engine.run_event(&run.id, submit()).await.unwrap();
        h.engine.run_event(&run.id, approve_start()).await.unwrap();
        h.run_reaches(&run.id, RunStatus::Succeeded).await;
        runs.push(run.id);
    }
    let detail = h.store.campaign(&c.id).await.unwrap();
    assert_eq!(detail.stages.len(), 2);
    assert_eq!(detail.stages[0].run_id.as_deref(), Some(runs[0].as_str()));
    assert_eq!(detail.stages[1].run_status, Some(RunStatus::Succeeded));
    // What stage 1 left behind is the estate stage 2 was re-planned against.
    assert_eq!(detail.stages[0].actual_after, Some(estate("8.10")));
    assert_eq!(detail.stages[1].actual_after, None);
    assert!(detail.next_stage().is_none());

    // The engine closed the campaign in the transaction that completed its last stage's run:
    // nobody had to open the campaign page, and closing again changes nothing.
    assert!(!h.store.close_campaign_if_done(&c.id, 5).await.unwrap());
    assert_eq!(
        h.store.campaign(&c.id).await.unwrap().campaign.state,
        "done"
    );

    let events = h.store.all_events().await.unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e.kind.as_str().starts_with("campaign."))
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "campaign.created",
            "campaign.stage_run",
            "campaign.stage_run",
            "campaign.done"
        ]
    );
    let linked = events
        .iter()
        .find(|e| e.kind == "campaign.stage_run")
        .unwrap();
    assert_eq!(linked.run_id.as_deref(), Some(runs[0].as_str()));
    assert_eq!(linked.payload["stage"], 1);
    assert_eq!(linked.actor, "olga");
    h.stop().await;
}

#[tokio::test]
async fn a_stage_whose_run_was_aborted_gets_a_new_run() {
    let h = Harness::new().await;
    let olga = operator("olga");
    let c = h
        .store
        .create_campaign(two_stages(), &olga, 1)
        .await
        .unwrap();
    let first = h
        .store
        .create_stage_run(&c.id, 1, stage_run("CHG-1"), &olga, 2)
        .await
        .unwrap();
    h.store
        .apply_run_event(&first.id, &submit(), 3)
        .await
        .unwrap();
    h.store
        .apply_run_event(
            &first.id,
            &RunEvent::Abort {
                actor: olga.clone(),
                reason: "the window was cancelled".into(),
            },
            4,
        )
        .await
        .unwrap();
    let again = h
        .store
        .create_stage_run(&c.id, 1, stage_run("CHG-1b"), &olga, 5)
        .await
        .unwrap();
    assert_ne!(again.id, first.id);
    let detail = h.store.campaign(&c.id).await.unwrap();
    assert_eq!(detail.stages[0].run_id.as_deref(), Some(again.id.as_str()));
    let event = h
        .store
        .run_events(&again.id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "campaign.stage_run")
        .unwrap();
    assert_eq!(event.payload["replaces"], first.id.as_str());
}
