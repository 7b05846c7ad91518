use std::process::ExitCode;

fn main() -> ExitCode {
    primed::cli::main()
}
