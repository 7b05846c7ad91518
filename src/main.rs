use std::process::ExitCode;

// glibc's malloc spent a fifth of the daemon's time in its arena locks and consolidation.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    primed::cli::main()
}
