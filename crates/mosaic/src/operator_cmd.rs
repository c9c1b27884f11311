//! `mosaic operator create`: operator users, stored (argon2) in the
//! metadata database of the data directory — platform-level, no tenant —
//! on either backend. They sign in at `POST /services/operator/v1/login`.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Create an operator user; prints one JSON object.
    Create {
        #[command(flatten)]
        common: crate::Common,
        #[arg(long)]
        username: String,
        /// At least 12 characters.
        #[arg(long, env = "MOSAIC_OPERATOR_PASSWORD")]
        password: String,
    },
}

pub async fn run(cmd: OperatorCommand) -> Result<(), String> {
    match cmd {
        OperatorCommand::Create {
            common,
            username,
            password,
        } => {
            let p = crate::open(&common).await?;
            let created = p.operators.create(&username, &password).await;
            let created = match created {
                Ok(c) => {
                    let detail = serde_json::json!({"username": c.username});
                    if let Err(e) = p
                        .operators
                        .audit("cli", "operator.create", "operator", detail)
                        .await
                    {
                        tracing::warn!(error = %e.message, "platform audit entry was not written");
                    }
                    Ok(c)
                }
                Err(e) => Err(e),
            };
            p.close();
            let c = created.map_err(crate::cli_error)?;
            println!(
                "{}",
                serde_json::json!({"operator_id": c.operator_id, "username": c.username})
            );
            Ok(())
        }
    }
}
