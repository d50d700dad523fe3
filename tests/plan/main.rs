//! Plans: the seed's ordering rules checked on the dependency closure for the example Data
//! Centers (`ordering`) and for generated inventories (`properties`), and the printed plans pinned
//! as golden files (`golden`; regenerate with `UPDATE_GOLDEN=1 cargo test --test plan golden`).
//! One test binary, one module per concern; `rules` holds the checkers.

mod golden;
mod ordering;
mod properties;
mod rules;
