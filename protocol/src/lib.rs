//! Versioned wire types shared by the Lockstep orchestrator and `lockstep-agent`.
