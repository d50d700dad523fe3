//! What plan expansion does with selectors, dependency filters, conditions, placeholders and
//! parameters, shown on small runbooks written here.

use std::collections::BTreeMap;

use lockstep::knowledge::expand::{expand, PlanError};
use lockstep::knowledge::inventory::Inventory;
use lockstep::knowledge::operation::{Operation, ServiceSet, SqlOperation};
use lockstep::knowledge::runbook::{parse, Catalog, Runbook};

const MIRRORED: &str = r#"
name = "Test mirrored"
topology = "mirrored"

[[servers]]
name = "DC1"
fqdn = "dc1.test.local"
side = "primary"
roles = ["registry", "directory"]
connected_version = "8.8.6"
windows = "2012 R2"
sql_server = "2014 SP2"

[[servers]]
name = "DC2"
fqdn = "dc2.test.local"
side = "secondary"
roles = ["registry", "directory"]
connected_version = "8.8.6"
windows = "2012 R2"
sql_server = "2016"

[[servers]]
name = "WEB1"
fqdn = "web1.test.local"
side = "primary"
roles = ["support-center", "management-api"]
connected_version = "8.8.6"
windows = "2012 R2"

[servers.certificate]
common_name = "portal.test.com"
issuer = "trusted-ca"
port = 8443
"#;

fn inventory() -> Inventory {
    Inventory::parse(MIRRORED).unwrap_or_else(|e| panic!("{e}"))
}

fn runbook(steps: &str, params: &str) -> Runbook {
    let text = format!("id = \"t\"\ntitle = \"T\"\ndescription = \"d\"\n{params}\n{steps}");
    parse("t.toml", &text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn step(id: &str, extra: &str) -> String {
    format!(
        "[[steps]]\nid = \"{id}\"\ntitle = \"{id}\"\nsection = \"Upgrade the Data Center\"\nphase = \"P\"\nkind = \"manual\"\nestimate = \"1m\"\ninstructions = \"x\"\n{extra}\n"
    )
}

fn no_params() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn a_step_whose_dependency_is_left_out_waits_for_what_that_dependency_waited_for() {
    let rb = runbook(
        &[
            step("first", ""),
            step(
                "skipped",
                "when = { topology = [\"standalone\"] }\ndepends_on = [\"first\"]",
            ),
            step("last", "depends_on = [\"skipped\"]"),
        ]
        .concat(),
        "",
    );
    let plan = expand(&rb, &inventory(), &no_params()).unwrap();
    assert!(plan.step("skipped").is_none());
    assert_eq!(plan.step("last").unwrap().depends_on, ["first"]);
}

#[test]
fn a_fanned_out_step_has_one_instance_per_server_with_stable_ids() {
    let rb = runbook(
        &step("stop", "target = { database = true }")
            .replace("title = \"stop\"", "title = \"stop on {host}\""),
        "",
    );
    let plan = expand(&rb, &inventory(), &no_params()).unwrap();
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["stop@DC1", "stop@DC2"]);
    assert_eq!(plan.step("stop@DC2").unwrap().host.as_deref(), Some("DC2"));
    assert_eq!(plan.step("stop@DC2").unwrap().title, "stop on DC2");
}

#[test]
fn pick_one_binds_a_single_step_to_the_first_server_primary_side_first() {
    let rb = runbook(
        &step("one", "target = { database = true, pick = \"one\" }"),
        "",
    );
    let plan = expand(&rb, &inventory(), &no_params()).unwrap();
    assert_eq!(plan.steps.len(), 1);
    assert_eq!(
        (plan.steps[0].id.as_str(), plan.steps[0].host.as_deref()),
        ("one", Some("DC1"))
    );
}

#[test]
fn at_host_links_instances_on_the_same_server_and_at_side_those_on_the_same_side() {
    let rb = runbook(
        &[
            step("a", "target = { database = true }"),
            step(
                "b",
                "target = { database = true }\ndepends_on = [\"a@host\"]",
            ),
            step(
                "c",
                "target = { roles = [\"support-center\"] }\ndepends_on = [\"a@side\"]",
            ),
        ]
        .concat(),
        "",
    );
    let plan = expand(&rb, &inventory(), &no_params()).unwrap();
    assert_eq!(plan.step("b@DC2").unwrap().depends_on, ["a@DC2"]);
    assert_eq!(plan.step("c@WEB1").unwrap().depends_on, ["a@DC1"]);
}

#[test]
fn a_star_dependency_waits_for_everything_above_but_not_for_other_star_steps() {
    let rb = runbook(
        &[
            step("a", "target = { database = true }"),
            step("b", ""),
            step("v1", "depends_on = [\"*\"]"),
            step("v2", "depends_on = [\"*\"]"),
        ]
        .concat(),
        "",
    );
    let plan = expand(&rb, &inventory(), &no_params()).unwrap();
    assert_eq!(plan.step("v2").unwrap().depends_on, ["a@DC1", "a@DC2", "b"]);
    assert!(!plan.runs_after("v2", "v1"));
}

#[test]
fn placeholders_are_filled_per_server() {
    let rb = runbook(
        &[
            "[[steps]]\nid = \"redirect\"\ntitle = \"r\"\nsection = \"Redirect Web Services Applications to Another Server\"\nphase = \"P\"\nkind = \"agent\"\nestimate = \"1m\"\ninstructions = \"x\"\ntarget = { database = true }\noperation = { op = \"redirect\", value = \"registry_connect\", to_server = \"{registry.other}\" }\n",
            "[[steps]]\nid = \"bind\"\ntitle = \"b\"\nsection = \"Install the SSL Certificate\"\nphase = \"P\"\nkind = \"agent\"\nestimate = \"1m\"\ninstructions = \"x\"\ntarget = { roles = [\"management-api\"] }\noperation = { op = \"iis_https_binding\", port = \"{host.https_port}\", common_name = \"{host.cn}\" }\n",
            "[[steps]]\nid = \"checkdb\"\ntitle = \"c\"\nsection = \"Upgrade SQL Server\"\nphase = \"P\"\nkind = \"sql\"\nestimate = \"1m\"\ninstructions = \"x\"\ntarget = { database = true }\noperation = { op = \"sql\", sql = \"check_db\", databases = \"{host.databases}\" }\n",
        ]
        .concat(),
        "",
    );
    let plan = expand(&rb, &inventory(), &no_params()).unwrap();
    let to = |id: &str| match &plan.step(id).unwrap().operation {
        Operation::Redirect { to_server, .. } => to_server.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (to("redirect@DC1"), to("redirect@DC2")),
        ("DC2".to_string(), "DC1".to_string())
    );
    assert_eq!(
        plan.step("bind@WEB1").unwrap().operation,
        Operation::IisHttpsBinding {
            port: 8443,
            common_name: "portal.test.com".into()
        }
    );
    assert_eq!(
        plan.step("checkdb@DC1").unwrap().operation,
        Operation::Sql(SqlOperation::CheckDb {
            databases: vec![
                "master".into(),
                "model".into(),
                "msdb".into(),
                "Directory".into(),
                "Registry".into()
            ]
        })
    );
}

#[test]
fn a_selector_below_a_release_leaves_out_servers_already_on_it() {
    let rb = runbook(
        &step("upgrade", "target = { database = true, sql_below = \"{param.target}\" }"),
        "[[parameters]]\nname = \"target\"\ndescription = \"d\"\nallowed = [\"2014 SP2\", \"2016\"]\n",
    );
    let params: BTreeMap<String, String> = [("target".to_string(), "2016".to_string())].into();
    let plan = expand(&rb, &inventory(), &params).unwrap();
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["upgrade@DC1"], "DC2 already runs SQL Server 2016");
}

#[test]
fn a_number_parameter_fills_a_numeric_field() {
    let rb = runbook(
        "[[steps]]\nid = \"bind\"\ntitle = \"b\"\nsection = \"Install the SSL Certificate\"\nphase = \"P\"\nkind = \"agent\"\nestimate = \"1m\"\ninstructions = \"x\"\ntarget = { roles = [\"management-api\"] }\noperation = { op = \"iis_https_binding\", port = \"{param.port}\", common_name = \"{host.fqdn}\" }\n",
        "[[parameters]]\nname = \"port\"\ndescription = \"d\"\ndefault = \"443\"\nnumber = true\n",
    );
    let params: BTreeMap<String, String> = [("port".to_string(), "9443".to_string())].into();
    let plan = expand(&rb, &inventory(), &params).unwrap();
    assert_eq!(
        plan.steps[0].operation,
        Operation::IisHttpsBinding {
            port: 9443,
            common_name: "web1.test.local".into()
        }
    );
    let bad: BTreeMap<String, String> = [("port".to_string(), "https".to_string())].into();
    assert!(
        matches!(expand(&rb, &inventory(), &bad), Err(PlanError::Parameter(m)) if m.contains("whole number"))
    );
}

#[test]
fn a_manual_step_without_an_operation_carries_its_instructions() {
    let rb = runbook(
        &step("m", "target = { pick = \"one\", roles = [\"registry\"] }"),
        "",
    );
    let plan = expand(&rb, &inventory(), &no_params()).unwrap();
    assert_eq!(
        plan.steps[0].operation,
        Operation::Manual {
            instructions: "x".into()
        }
    );
}

#[test]
fn parameters_are_checked_before_anything_is_planned() {
    let catalog = Catalog::builtin().unwrap();
    let sql = catalog.get("upgrade-sql-server").unwrap();
    let inv = inventory();
    let err = |kv: &[(&str, &str)]| {
        let p: BTreeMap<String, String> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        expand(sql, &inv, &p).expect_err("refused").to_string()
    };
    assert!(
        err(&[]).contains("needs `--param target=VALUE`"),
        "{}",
        err(&[])
    );
    assert!(
        err(&[("target", "2019")]).contains("is not allowed"),
        "{}",
        err(&[("target", "2019")])
    );
    assert!(err(&[("target", "2016"), ("colour", "red")]).contains("no parameter `colour`"));
}

#[test]
fn uninstalling_a_component_the_data_center_does_not_have_is_refused() {
    let catalog = Catalog::builtin().unwrap();
    let rb = catalog.get("uninstall-datatransfer-api").unwrap();
    let p: BTreeMap<String, String> = [("server".to_string(), "WEB1".to_string())].into();
    let e = expand(rb, &inventory(), &p).expect_err("WEB1 hosts no DataTransfer API");
    assert!(matches!(e, PlanError::NoTarget { .. }), "{e}");
    assert!(e.to_string().contains("datatransfer-api"), "{e}");
}

#[test]
fn the_upgrade_rewrites_stop_the_connected_services_set() {
    let catalog = Catalog::builtin().unwrap();
    let plan = expand(
        catalog.get("upgrade-8.11").unwrap(),
        &inventory(),
        &no_params(),
    )
    .unwrap();
    assert_eq!(
        plan.step("stop-services@DC1").unwrap().operation,
        Operation::ServicesStop {
            services: ServiceSet::Connected
        }
    );
    assert!(
        plan.step("stop-services@DC2").is_none(),
        "the secondary keeps running while the primary is upgraded"
    );
}

#[test]
fn a_server_placeholder_in_a_step_bound_to_no_server_is_refused_when_the_runbook_loads() {
    let text = format!(
        "id = \"t\"\ntitle = \"T\"\ndescription = \"d\"\n{}",
        step("once", "").replace("title = \"once\"", "title = \"once on {host}\"")
    );
    let errors = parse("t.toml", &text).expect_err("no server to fill {host} with");
    assert_eq!(errors[0].field, "steps[0].title", "{}", errors[0]);
}

#[test]
fn pair_all_roles_and_absent_narrow_what_is_planned() {
    let clustered = Inventory::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clustered.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let rb = runbook(
        &[
            step("pair-one", "target = { pair = \"pair-1\" }"),
            step(
                "both-apis",
                "target = { all_roles = [\"support-center\", \"management-api\"] }",
            ),
            step(
                "no-reporting",
                "when = { absent = { roles = [\"reporting-services\"] } }",
            ),
            step(
                "with-reporting",
                "when = { exists = { roles = [\"reporting-services\"] } }",
            ),
        ]
        .concat(),
        "",
    );
    let plan = expand(&rb, &clustered, &no_params()).unwrap();
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "pair-one@NWDIR1A",
            "pair-one@NWDIR1B",
            "both-apis@NWWEB1",
            "with-reporting"
        ]
    );
}
