//! The Windows backend (filled in below).
use super::{ActionCtx, Backend, Failure};
use crate::config::AgentConfig;
use lockstep_protocol::{Action, Evidence};

pub struct WindowsBackend {
    config: AgentConfig,
}

impl WindowsBackend {
    pub fn new(config: &AgentConfig) -> WindowsBackend {
        WindowsBackend {
            config: config.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Backend for WindowsBackend {
    fn name(&self) -> &'static str {
        "windows"
    }
    async fn run(&self, _action: &Action, _ctx: &ActionCtx) -> Result<Evidence, Failure> {
        let _ = &self.config;
        Err(Failure::msg("windows backend not wired yet"))
    }
}
