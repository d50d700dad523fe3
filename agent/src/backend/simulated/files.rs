//! Simulated file edits: the edit is applied to the file's text in the state, and a backup copy
//! is kept beside it under the action's id, as the Windows backend does on disk.

use lockstep_protocol::{Action, Evidence, TextEdit};

use super::SimulatedBackend;
use crate::backend::{edit, ActionCtx, Failure};
use crate::policy::resolve_path;

impl SimulatedBackend {
    pub(super) fn file_replace(
        &self,
        action: &Action,
        path: &str,
        text_edit: &TextEdit,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let p = resolve_path(&self.config, path).map_err(|e| Failure::msg(e.message))?;
        self.update(|s| {
            let Some((stored, text)) = s
                .files
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&p))
                .map(|(k, v)| (k.clone(), v.clone()))
            else {
                return Err(Failure::msg(format!("file `{p}` does not exist")));
            };
            Self::record(s, ctx, action);
            let e = edit::apply(&text, text_edit);
            let backup = if e.replacements > 0 {
                let b = format!(
                    "{stored}.lockstep-{}.bak",
                    ctx.id.as_str().replace(['/', ':', '@', '#'], "_")
                );
                s.files.insert(b.clone(), text);
                s.files.insert(stored.clone(), e.text.clone());
                Some(b)
            } else {
                None
            };
            Ok(Evidence::FileEdited {
                path: stored,
                backup,
                replacements: e.replacements,
                diff: e.diff,
            })
        })?
    }
}
