//! Runbooks: the built-in catalog, validation of runbook files (one test per error class), what
//! expansion does with selectors, dependencies and placeholders, and the `lockstep runbook` /
//! `lockstep plan` command line. One test binary, one module per concern.

mod catalog;
mod cli;
mod expansion;
mod validation;
