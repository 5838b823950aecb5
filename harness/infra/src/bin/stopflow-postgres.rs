//! `stopflow-postgres --port P [-c name=value]...`: PostgreSQL as a container's process,
//! for the runtime's `postgres` image (see `infra::postgres::image`). Exits 2 on a bad
//! command line or environment, 1 when the server cannot start, else as the server.

use std::process::ExitCode;

use infra::postgres::image::{ImageArgs, ImageEnv, run};

fn main() -> ExitCode {
    let args = match ImageArgs::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("stopflow-postgres: failed to read the command line: {problem}");
            return ExitCode::from(2);
        }
    };
    let env = match ImageEnv::read(|name| std::env::var(name).ok()) {
        Ok(env) => env,
        Err(problem) => {
            eprintln!("stopflow-postgres: failed to read the environment: {problem}");
            return ExitCode::from(2);
        }
    };
    match run(&args, &env) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            let mut text = err.to_string();
            let mut cause = std::error::Error::source(&err);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            eprintln!("stopflow-postgres: failed to {text}");
            ExitCode::FAILURE
        }
    }
}
