//! `lockstep-agent`: runs allowlisted, journaled actions on one Data Center server.
