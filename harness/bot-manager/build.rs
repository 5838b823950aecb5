// `sqlx::migrate!` (db.rs) embeds the migrations it finds at compile time, but Cargo does
// not watch the folder: without this, a new migration file is left out until something
// else rebuilds the crate.
fn main() {
    println!("cargo:rerun-if-changed=../../fixtures/migrations");
}
