# Writes openapi.json beside this file: the OpenAPI 3 description of /api/v1. Edit here, run
# `python3 server/web/api/gen_openapi.py`, commit both; tests/web/api.rs checks every path answers.
import json
S = lambda t, **k: dict(type=t, **k)
ref = lambda n: {"$ref": f"#/components/schemas/{n}"}
err = {"description": "error", "content": {"application/json": {"schema": ref("Error")}}}
def resp(code, desc, schema):
    return {str(code): {"description": desc, "content": {"application/json": {"schema": schema}}}}
def errs(*codes):
    names = {"401": "not authenticated", "403": "the role does not allow it, or four-eyes", "404": "not found",
             "409": "the run or step is in another state", "422": "invalid input, nothing changed"}
    return {c: {"description": names[c], "content": {"application/json": {"schema": ref("Error")}}} for c in codes}
def op(summary, responses, params=None, body=None, tag=None, opid=None):
    o = {"summary": summary, "operationId": opid, "responses": responses}
    if params: o["parameters"] = params
    if body: o["requestBody"] = body
    return o
def pp(name, desc):
    return {"name": name, "in": "path", "required": True, "description": desc, "schema": {"type": "string"}}
def qp(name, desc, t="string"):
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": {"type": t, **({"minimum": 1} if t == "integer" else {})}}
def dq(name, desc):
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": {"type": "string", "pattern": "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$"}}
def jbody(schema, required=True):
    return {"required": required, "content": {"application/json": {"schema": schema}}}

schemas = {
 "Error": S("object", required=["error", "status"], properties={"error": S("string"), "status": S("integer")}),
 "Role": S("string", enum=["viewer", "operator", "approver", "admin"]),
 "Me": S("object", required=["name", "role"], properties={"name": S("string"), "role": ref("Role")}),
 "User": S("object", required=["id", "name", "role", "disabled"], properties={"id": S("integer"), "name": S("string"), "role": ref("Role"), "disabled": S("boolean")}),
 "NewUser": S("object", required=["name", "role", "password"], additionalProperties=False, properties={"name": S("string", minLength=1, maxLength=64, pattern="^[A-Za-z0-9._@-]+$"), "role": ref("Role"), "password": S("string", minLength=8, maxLength=1024, description="NIST 800-63B: at least 8 characters, not a commonly chosen password, not the name"), "person": S("string", maxLength=254, description="the person's verified e-mail (default: the name); one account per person")}),
 "NewToken": S("object", required=["label"], additionalProperties=False, properties={"label": S("string", minLength=1, maxLength=100, pattern="\\S")}),
 "TokenCreated": S("object", required=["token", "label"], properties={"token": S("string"), "label": S("string")}),
 "DataCenterSummary": S("object", required=["name", "uploaded_by", "uploaded_at"], properties={"name": S("string"), "uploaded_by": S("string"), "uploaded_at": S("integer")}),
 "Upload": S("object", required=["toml"], additionalProperties=False, properties={"toml": S("string", minLength=1, description="The inventory file's text")}),
 "Finding": S("object", required=["rule", "severity", "message", "section", "result"], properties={
     "rule": S("string"), "severity": S("string", enum=["error", "warning", "info"]), "server": S("string", nullable=True),
     "message": S("string"), "section": S("string"), "result": S("string", enum=["pass", "fail", "unknown"])}),
 "DataCenterDetail": S("object", required=["name", "inventory", "findings"], properties={"name": S("string"), "inventory": S("object"), "findings": S("array", items=ref("Finding"))}),
 "UploadRefused": S("object", required=["error", "status", "problems"], properties={"error": S("string"), "status": S("integer"), "problems": S("array", items=S("object", required=["field", "message"], properties={"line": S("integer", nullable=True), "field": S("string"), "message": S("string")}))}),
 "Parameter": S("object", required=["name", "description", "allowed", "number"], properties={"name": S("string"), "description": S("string"), "allowed": S("array", items=S("string")), "default": S("string", nullable=True), "number": S("boolean")}),
 "Runbook": S("object", required=["id", "title", "description", "parameters", "steps"], properties={
     "id": S("string"), "title": S("string"), "description": S("string"), "parameters": S("array", items=ref("Parameter")),
     "steps": S("array", items=S("object", required=["id", "title", "section", "phase", "kind", "estimate_secs"], properties={"id": S("string"), "title": S("string"), "section": S("string"), "phase": S("string"), "kind": S("string"), "estimate_secs": S("integer")}))}),
 "RunStatus": S("string", enum=["draft", "awaiting_start_approval", "running", "paused", "succeeded", "failed", "aborted", "undoing", "undone"]),
 "Run": S("object", required=["id", "status", "version", "requester", "change_ticket", "runbook", "inventory", "params", "state", "created_at", "updated_at"], properties={
     "id": S("string"), "status": ref("RunStatus"), "version": S("integer"), "requester": S("string"), "change_ticket": S("string"),
     "window_start": S("integer", nullable=True, description="ms since the epoch"), "window_end": S("integer", nullable=True),
     "runbook": S("string"), "inventory": S("string"), "params": S("object", additionalProperties=S("string")), "state": S("object"),
     "created_at": S("integer"), "updated_at": S("integer")}),
 "Step": S("object", required=["run_id", "id", "seq", "spec", "status", "attempt", "state", "content_hash", "updated_at"], properties={
     "run_id": S("string"), "id": S("string"), "seq": S("integer"), "spec": S("object"), "undo_of": S("string", nullable=True),
     "status": S("string"), "attempt": S("integer"), "state": S("object"), "content_hash": S("string", description="Send back with an approval (content-bound approvals)"), "updated_at": S("integer")}),
 "RunDetail": S("object", required=["run", "steps"], properties={"run": ref("Run"), "steps": S("array", items=ref("Step"))}),
 "CreateRun": S("object", required=["datacenter", "runbook", "change_ticket"], additionalProperties=False, properties={
     "datacenter": S("string", minLength=1), "runbook": S("string", minLength=1), "params": S("object", additionalProperties=S("string")), "change_ticket": S("string", minLength=1, maxLength=200, pattern="\\S"),
     "window_start": S("string", nullable=True, pattern="^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$", description="YYYY-MM-DDTHH:MM, UTC"), "window_end": S("string", nullable=True, pattern="^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")}),
 "RunAction": S("object", additionalProperties=False, properties={"comment": S("string", description="approve: required"), "reason": S("string", description="pause, abort, undo, extend: required"), "until": S("string", description="extend: the change window's new end, like 2026-11-28T01:30 (UTC)"), "finding": S("string", description="override: the preflight finding's key (rule@SERVER), as run.state.preflight names it"), "justification": S("string", description="override: why the finding does not block this run (1 to 2000 characters)")}),
 "StepAction": S("object", additionalProperties=False, properties={"comment": S("string"), "content_hash": S("string"), "note": S("string"), "justification": S("string"), "text": S("string"), "decision": S("string", description="approve: `deny` rejects; resolve: `done` or `failed`")}),
 "Comment": S("object", required=["text"], additionalProperties=False, properties={"text": S("string", minLength=1, maxLength=4000, pattern="\\S"), "step_id": S("string", nullable=True)}),
 "Event": S("object", required=["id", "actor", "at", "kind", "payload", "prev_hash", "hash"], properties={
     "id": S("integer"), "run_id": S("string", nullable=True), "step_id": S("string", nullable=True), "actor": S("string"), "at": S("integer"),
     "kind": S("string"), "payload": {}, "prev_hash": S("string"), "hash": S("string")}),
 "ChainReport": S("object", required=["events"], properties={"events": S("integer"), "last": S("object", nullable=True), "problem": S("object", nullable=True)}),
 "AuditPage": S("object", required=["events", "total", "page", "pages", "chain"], properties={"events": S("array", items=ref("Event")), "total": S("integer"), "page": S("integer"), "pages": S("integer"), "chain": ref("ChainReport")}),
 "LogLine": S("object", required=["id", "run_id", "step_id", "attempt", "at", "text"], properties={"id": S("integer"), "run_id": S("string"), "step_id": S("string"), "attempt": S("integer"), "at": S("integer", description="ms since the epoch"), "text": S("string")}),
 "StepLog": S("object", required=["total", "lines"], properties={"total": S("integer"), "lines": S("array", items=ref("LogLine"))}),
 "AgentFacts": S("object", required=["server", "url", "status"], properties={
     "server": S("string"), "url": S("string"), "status": S("string", enum=["unknown", "online", "offline"]), "checked_at": S("integer", nullable=True),
     "agent_version": S("string", nullable=True), "backend": S("string", nullable=True), "clock_skew": S("integer", nullable=True), "last_error": S("string", nullable=True),
     "facts_received_at": S("integer", nullable=True), "facts_age_secs": S("integer", nullable=True), "facts_stale": S("boolean", nullable=True),
     "facts": S("object", nullable=True, description="lockstep_protocol::SiteFacts: services, services_missing, components, volumes, database_files, sql_accounts, tls_protocols, certificates, windows, sql_server, session_counters, errors")}),
 "Refreshed": S("object", required=["online", "offline", "facts", "problems", "agents"], properties={"online": S("integer"), "offline": S("integer"), "facts": S("integer"), "problems": S("array", items=S("string")), "agents": S("array", items=ref("AgentFacts"))}),
 "Decision": S("object", required=["at", "actor", "verdict", "subject", "comment", "sentence"], properties={k: S("string") for k in ["at", "actor", "verdict", "subject", "comment", "sentence"]}),
 "EvidenceBlock": S("object", required=["title", "facts", "headers", "rows"], properties={"title": S("string"), "facts": S("array", items=S("array", items=S("string"))), "headers": S("array", items=S("string")), "rows": S("array", items=S("array", items=S("string")))}),
 "ChangeRecord": S("object", required=["run_id", "status", "outcome", "change_ticket", "datacenter", "runbook", "seed_chapter", "requested_by", "requested_at", "start_approved_by", "window", "started", "finished", "duration", "planned_duration", "counts", "approvals", "overrides", "manual_tasks", "backups", "steps", "servers", "chain_ok", "chain"], properties={
     **{k: S("string") for k in ["run_id", "status", "outcome", "change_ticket", "datacenter", "runbook", "seed_chapter", "requested_by", "requested_at", "window", "started", "finished", "duration", "planned_duration", "chain"]},
     "change_ticket_url": S("string", nullable=True),
     "start_approved_by": S("array", items=S("string")),
     "counts": S("object", properties={k: S("integer") for k in ["steps", "manual_tasks", "gates", "overrides", "retries", "skipped"]}),
     "approvals": S("array", items=ref("Decision")),
     "overrides": S("array", items=ref("Decision")),
     "manual_tasks": S("array", items=S("object", properties={k: S("string") for k in ["title", "server", "status", "claimed_by", "performed_by", "completed_at", "recorded"]})),
     "backups": S("array", items=S("object", properties={**{k: S("string") for k in ["database", "server", "file", "size", "finished_at"]}, "verified": S("boolean")})),
     "steps": S("array", items=S("object", properties={**{k: S("string") for k in ["id", "title", "server", "section", "phase", "status", "started", "ended", "planned", "actual", "note", "error"]}, "attempts": S("integer"), "evidence": S("array", items=ref("EvidenceBlock"))})),
     "servers": S("array", items=S("object", properties={k: S("string") for k in ["server", "steps", "last_step", "versions"]})),
     "chain_ok": S("boolean")}),
 "ServerVersions": S("object", required=["name", "version"], properties={"name": S("string"), "version": S("string", description="Connected Backup"), "windows": S("string", nullable=True), "sql_server": S("string", nullable=True)}),
 "CampaignTarget": S("object", properties={"connected": S("string", nullable=True), "windows": S("string", nullable=True), "sql_server": S("string", nullable=True)}),
 "Campaign": S("object", required=["id", "data_center", "target", "created_by", "created_at", "state"], properties={
     "id": S("string"), "data_center": S("string"), "target": ref("CampaignTarget"), "created_by": S("string"), "created_at": S("integer", description="ms since the epoch"), "state": S("string", enum=["open", "done"])}),
 "CampaignStage": S("object", required=["ordinal", "runbook", "params", "servers", "reason", "section", "estimate_secs", "estate_after"], properties={
     "ordinal": S("integer", minimum=1), "runbook": S("string"), "params": S("object", additionalProperties=S("string")), "servers": S("array", items=S("string")),
     "reason": S("string", description="why the stage comes where it is, in plain words"), "section": S("string", description="the guide's section"), "estimate_secs": S("integer"),
     "estate_after": S("array", items=ref("ServerVersions"), description="projected by the planner"), "run_id": S("string", nullable=True), "run_status": S("string", nullable=True, description="the stage's run's status (RunStatus)"),
     "actual_after": S("array", nullable=True, items=ref("ServerVersions"), description="the estate found when the next stage's run was created")}),
 "CampaignDetail": S("object", required=["campaign", "stages"], properties={"campaign": ref("Campaign"), "stages": S("array", items=ref("CampaignStage"))}),
 "CreateCampaign": S("object", required=["datacenter", "target"], additionalProperties=False, properties={
     "datacenter": S("string", minLength=1), "target": S("object", additionalProperties=False, properties={"connected": S("string", nullable=True, enum=["8.11", None]), "windows": S("string", nullable=True, enum=["2012 R2", "2016", None]), "sql_server": S("string", nullable=True, enum=["2012 SP4", "2014 SP2", "2016", None])})}),
 "CreateStageRun": S("object", required=["change_ticket"], additionalProperties=False, properties={
     "change_ticket": S("string", minLength=1, maxLength=200, pattern="\\S"),
     "window_start": S("string", nullable=True, pattern="^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$", description="YYYY-MM-DDTHH:MM, UTC"), "window_end": S("string", nullable=True, pattern="^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")}),
 "Report": S("object", required=["record", "run", "steps", "events", "audit_chain_intact"], properties={"record": ref("ChangeRecord"), "run": ref("Run"), "steps": S("array", items=ref("Step")), "events": S("array", items=ref("Event")), "audit_chain_intact": S("boolean")}),
}
run_id = pp("id", "Run id")
paths = {
 "/me": {"get": op("Who the token belongs to", {**resp(200, "the user", ref("Me")), **errs("401")}, opid="me")},
 "/tokens": {"post": op("Create an API token for yourself (shown once)", {**resp(201, "created", ref("TokenCreated")), **errs("401", "403", "422")}, body=jbody(ref("NewToken")), opid="createToken")},
 "/users": {
   "get": op("List accounts (admin)", {**resp(200, "accounts", S("array", items=ref("User"))), **errs("401", "403")}, opid="listUsers"),
   "post": op("Add an account (admin); NIST 800-63B password rules", {**resp(201, "created", ref("User")), **errs("401", "403", "409", "422")}, body=jbody(ref("NewUser")), opid="addUser")},
 "/users/{name}/disable": {"post": op("Disable an account and end its sessions (admin)", {**resp(200, "disabled", ref("User")), **errs("401", "403", "404")}, params=[pp("name", "Account name")], opid="disableUser")},
 "/datacenters": {
   "get": op("List Data Centers", {**resp(200, "current versions", S("array", items=ref("DataCenterSummary"))), **errs("401", "403")}, opid="listDataCenters"),
   "post": op("Store an inventory (operator); refused with every problem named", {**resp(201, "stored", ref("DataCenterDetail")), **errs("401", "403"), "422": {"description": "not stored", "content": {"application/json": {"schema": {"anyOf": [ref("UploadRefused"), ref("Error")]}}}}}, body=jbody(ref("Upload")), opid="uploadDataCenter")},
 "/datacenters/{name}": {"get": op("A Data Center with its preflight findings", {**resp(200, "the Data Center", ref("DataCenterDetail")), **errs("401", "403", "404", "409")}, params=[pp("name", "Data Center name")], opid="getDataCenter")},
 "/runbooks": {"get": op("The runbook catalog", {**resp(200, "runbooks", S("array", items=ref("Runbook"))), **errs("401", "403")}, opid="listRunbooks")},
 "/runbooks/{id}": {"get": op("One runbook with its steps", {**resp(200, "the runbook", ref("Runbook")), **errs("401", "403", "404")}, params=[pp("id", "Runbook id")], opid="getRunbook")},
 "/runs": {
   "get": op("Every run, newest first", {**resp(200, "runs", S("array", items=ref("Run"))), **errs("401", "403")}, opid="listRuns"),
   "post": op("Create a run and submit it for start approval (operator)", {**resp(201, "created", ref("RunDetail")), **errs("401", "403", "409", "422")}, body=jbody(ref("CreateRun")), opid="createRun")},
 "/runs/{id}": {"get": op("A run with its steps", {**resp(200, "the run", ref("RunDetail")), **errs("401", "403", "404")}, params=[run_id], opid="getRun")},
 "/runs/{id}/report": {"get": op("The change record: summary, approvals, overrides, manual tasks, backups, steps with evidence as tables, servers (`record`), and the raw run, steps and events", {**resp(200, "report", ref("Report")), **errs("401", "403", "404")}, params=[run_id], opid="getReport")},
 "/runs/{id}/comments": {"post": op("Comment on a run or one of its steps (operator)", {**resp(201, "the audit event", ref("Event")), **errs("401", "403", "404", "422")}, params=[run_id], body=jbody(ref("Comment")), opid="addComment")},
 "/runs/{id}/{action}": {"post": op("Run control: submit, approve (start; four-eyes), pause, resume, abort, undo", {**resp(200, "the run afterwards", ref("RunDetail")), **errs("401", "403", "404", "409", "422")},
     params=[run_id, {"name": "action", "in": "path", "required": True, "schema": {"type": "string", "enum": ["submit", "approve", "pause", "resume", "abort", "undo", "extend", "override"]}}], body=jbody(ref("RunAction"), required=False), opid="runAction")},
 "/runs/{id}/steps/{step}/log": {"get": op("What the step's executors said (agent actions, SQL Server messages, probe attempts), every attempt, oldest first; at most 200 lines per step", {**resp(200, "the lines", ref("StepLog")), **errs("401", "403", "404")}, params=[run_id, pp("step", "Step id")], opid="getStepLog")},
 "/runs/{id}/steps/{step}/{action}": {"post": op("Step control: approve (or deny), claim, complete, retry, ask again (a denied gate), skip, resolve", {**resp(200, "the step afterwards", ref("Step")), **errs("401", "403", "404", "409", "422")},
     params=[run_id, pp("step", "Step id"), {"name": "action", "in": "path", "required": True, "schema": {"type": "string", "enum": ["approve", "deny", "claim", "complete", "retry", "ask_again", "skip", "resolve"]}}], body=jbody(ref("StepAction"), required=False), opid="stepAction")},
 "/agents": {"get": op("Every registered agent with its last heartbeat and the facts it last reported, with their age", {**resp(200, "agents", S("array", items=ref("AgentFacts"))), **errs("401", "403")}, opid="listAgents")},
 "/agents/refresh": {"post": op("Ask every agent for a heartbeat and its facts now (operator)", {**resp(200, "what the collection found", ref("Refreshed")), **errs("401", "403", "409")}, opid="refreshAgents")},
 "/campaigns": {
   "get": op("Campaigns, newest first (only one Data Center's with `datacenter`)", {**resp(200, "campaigns", S("array", items=ref("Campaign"))), **errs("401", "403", "422")}, params=[qp("datacenter", "Data Center name")], opid="listCampaigns"),
   "post": op("Plan a campaign from the estate as found to a target and record it (operator); a target the guide's procedures cannot reach is refused naming the rule", {**resp(201, "planned", ref("CampaignDetail")), **errs("401", "403", "409", "422")}, body=jbody(ref("CreateCampaign")), opid="createCampaign")},
 "/campaigns/{id}": {"get": op("A campaign with its stages in order, each with its run's status and the estate projected and found after it", {**resp(200, "the campaign", ref("CampaignDetail")), **errs("401", "403", "404")}, params=[pp("id", "Campaign id")], opid="getCampaign")},
 "/campaigns/{id}/stages/{stage}/run": {"post": op("Create a stage's run, re-planned on the estate as found, and submit it for start approval (operator); refused while an earlier stage's run has not succeeded, or when the stage is no longer the next one the estate needs", {**resp(201, "the campaign afterwards", ref("CampaignDetail")), **errs("401", "403", "404", "409", "422")},
     params=[pp("id", "Campaign id"), {"name": "stage", "in": "path", "required": True, "description": "Stage number (1, 2, …)", "schema": {"type": "integer", "minimum": 1}}], body=jbody(ref("CreateStageRun")), opid="createStageRun")},
 "/audit": {"get": op("Audit events (oldest first) with the chain verification", {**resp(200, "a page of events", ref("AuditPage")), **errs("401", "403", "422")},
     params=[qp("run", "Run id"), qp("person", "Actor name"), qp("kind", "Kind prefix"), dq("from", "YYYY-MM-DD (UTC)"), dq("to", "YYYY-MM-DD (UTC), inclusive"), qp("page", "Page (50 events each)", "integer")], opid="audit")},
}
doc = {
 "openapi": "3.0.3",
 "info": {"title": "Lockstep API", "version": "1", "description": "Everything the dashboard can do, for automation. Authenticate with `Authorization: Bearer TOKEN` (create tokens on the dashboard's API tokens page or POST /tokens). Roles (viewer < operator < approver < admin) and four-eyes apply exactly as on the pages."},
 "servers": [{"url": "/api/v1"}],
 "security": [{"bearer": []}],
 "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": schemas},
 "paths": paths,
}
open(__import__("os").path.join(__import__("os").path.dirname(__file__), "openapi.json"), "w").write(json.dumps(doc, indent=1) + "\n")
