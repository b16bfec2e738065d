//! `sqlx::migrate!` embeds `migrations/` at compile time; without this a new
//! migration file alone does not rebuild the crate, and binaries built
//! before it run without it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
