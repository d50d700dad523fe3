//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!()` embeds the
//! `migrations/` folder at compile time, and without this a new migration file alone would not
//! make cargo compile the crate again (a binary would then run without it).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
