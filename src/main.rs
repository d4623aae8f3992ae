use std::process::ExitCode;

#[actix_web::main]
async fn main() -> ExitCode {
    sessiond::cli::main().await
}
