//! The sandbox helper that `hoist-build` starts for each RUN step, inside
//! new namespaces. It is not meant to be run by hand.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    hoist_build::sandbox::helper_main(&args)
}
