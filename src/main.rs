fn main() -> std::process::ExitCode {
    // Before any thread starts (see its documentation); it changes speed, never results.
    clirlab::model::kernels::tune_malloc();
    match clirlab::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
