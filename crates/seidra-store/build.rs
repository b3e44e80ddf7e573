// Rebuild when a migration file changes: they are embedded with `sqlx::migrate!`.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
