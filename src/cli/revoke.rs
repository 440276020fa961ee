//! `tokenizer revoke`: add a secret to the fleet's revocations in Redis (`REDIS_URL`);
//! every `serve` instance sharing that Redis refuses it within a second.

use clap::Args;

use super::Failure;
use super::fleet_args::RedisArgs;
use crate::fleet::{self, Keys};
use crate::secret::sealed_digest;

#[derive(Args)]
#[group(id = "what", required = true, multiple = false)]
pub struct RevokeArgs {
    /// The secret's `id`.
    #[arg(long, group = "what")]
    id: Option<String>,
    /// The SHA-256 digest (hex) of the sealed secret, as audit lines show it.
    #[arg(long, group = "what")]
    digest: Option<String>,
    /// The sealed secret itself (its digest is revoked; `-` reads it from stdin).
    #[arg(long, group = "what")]
    sealed: Option<String>,
    #[command(flatten)]
    redis: RedisArgs,
}

pub fn run(args: RevokeArgs) -> Result<(), Failure> {
    let config = args
        .redis
        .config(fleet::FailureMode::Closed)?
        .ok_or_else(|| {
            Failure::Input("REDIS_URL is not set: revoke with REVOKED_SECRETS_FILE".to_owned())
        })?;
    let entry = match (args.id, args.digest, args.sealed) {
        (Some(id), _, _) => id,
        (_, Some(digest), _) => digest,
        (_, _, Some(sealed)) if sealed == "-" => {
            let mut text = zeroize::Zeroizing::new(String::new());
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Failure::Input(format!("reading stdin: {e}")))?;
            sealed_digest(&text)
        }
        (_, _, Some(sealed)) => sealed_digest(&sealed),
        _ => return Err(Failure::Input("give --id, --digest or --sealed".to_owned())),
    };
    let entry = fleet::revocations::entry(&entry).map_err(Failure::Input)?;
    let ca = fleet::read_ca(&config).map_err(|e| Failure::Input(e.to_string()))?;
    let client =
        fleet::client(&config.url, ca.as_deref()).map_err(|e| Failure::Input(e.to_string()))?;
    let runtime = super::runtime::build()?;
    runtime.block_on(async {
        let connect = client.get_multiplexed_async_connection();
        let mut conn = tokio::time::timeout(
            config.timeout.max(std::time::Duration::from_secs(5)),
            connect,
        )
        .await
        .map_err(|_| Failure::Runtime("redis: no answer".to_owned()))?
        .map_err(|e| Failure::Runtime(format!("redis: {e}")))?;
        fleet::revocations::revoke(&mut conn, &Keys::new(&config.prefix), &entry)
            .await
            .map_err(|e| Failure::Runtime(e.to_string()))
    })?;
    super::out::print_line(&format!("revoked {entry}"))?;
    Ok(())
}
