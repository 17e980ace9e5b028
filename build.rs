//! `CLIRLAB_OFFLINE=1` at build time sets `cfg(clirlab_offline)`, under which the tests that
//! download registry packages are reported as ignored (not passed).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(clirlab_offline)");
    println!("cargo::rerun-if-env-changed=CLIRLAB_OFFLINE");
    if std::env::var("CLIRLAB_OFFLINE").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=clirlab_offline");
    }
}
