//! Knowledge: what Lockstep knows about a Data Center and the vendor's procedure. Pure: no IO
//! beyond reading files.

pub mod campaign;
pub mod expand;
pub mod inventory;
pub mod operation;
pub mod parameter;
pub mod plan;
pub mod preflight;
pub mod role;
pub mod runbook;
pub mod template;
