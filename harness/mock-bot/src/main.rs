//! `mock-bot`: see the library for the environment it reads and the events it writes.

fn main() -> std::process::ExitCode {
    mock_bot::main()
}
