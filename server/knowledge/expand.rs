//! Plan expansion: runbook × inventory → a DAG of concrete steps on concrete hosts.
