//! What a sandbox needs to trust the sidecar: a CA bundle (system roots plus the local
//! CA, for tools whose CA variable replaces the system store) and the variables that
//! point every common client at it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// `CA_DIR/bundle.pem`: the system's roots followed by `ca_pem`.
pub fn write_bundle(ca_dir: &Path, ca_pem: &str) -> std::io::Result<PathBuf> {
    let mut bundle = String::new();
    for cert in rustls_native_certs::load_native_certs().certs {
        bundle.push_str(&pem("CERTIFICATE", cert.as_ref()));
    }
    bundle.push_str(ca_pem);
    let path = bundle_path(ca_dir);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bundle)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Where [`write_bundle`] puts the bundle: `CA_DIR/bundle.pem`.
pub fn bundle_path(ca_dir: &Path) -> PathBuf {
    ca_dir.join("bundle.pem")
}

/// Shell `export` lines for a sandbox. `proxy` is the HTTPS_PROXY listener, if any;
/// an unspecified address is shown as loopback.
pub fn exports(ca_dir: &Path, proxy: Option<SocketAddr>) -> String {
    let ca = ca_dir.join("ca.pem");
    let bundle = bundle_path(ca_dir);
    let mut out = String::new();
    if let Some(mut addr) = proxy {
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let url = format!("http://{addr}");
        for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
            let _ = writeln!(out, "export {var}={url}");
        }
        for var in ["NO_PROXY", "no_proxy"] {
            let _ = writeln!(out, "export {var}=localhost,127.0.0.1,::1");
        }
    }
    for var in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        let _ = writeln!(out, "export {var}={}", shell_quote(&bundle));
    }
    let _ = writeln!(out, "export NODE_EXTRA_CA_CERTS={}", shell_quote(&ca));
    out
}

/// `export VAR=dummy` for every SDK variable of the presets whose hosts are among the
/// `TARGETS` list (`host=ENVVAR,…`): the dummy has the real key's shape, because some SDKs
/// refuse a key without its usual prefix. The sidecar replaces it on the way out.
pub fn dummy_keys(targets: &str) -> String {
    let mut out = String::new();
    let mut seen: Vec<&str> = Vec::new();
    for entry in tokenizer_core::settings::comma_list(targets) {
        let host = entry.split_once('=').map_or(entry, |(h, _)| h).trim();
        let Some(preset) = tokenizer_secret::presets::Preset::for_host(host) else {
            continue;
        };
        for var in preset.env {
            if !seen.contains(var) {
                seen.push(var);
                let _ = writeln!(out, "export {var}={}", preset.dummy_key());
            }
        }
    }
    out
}

fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@".contains(&b))
    {
        return text;
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// PEM armour, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_point_at_the_bundle_and_proxy() {
        let text = exports(Path::new("/ca dir"), Some("0.0.0.0:3128".parse().unwrap()));
        assert!(text.contains("export HTTPS_PROXY=http://127.0.0.1:3128\n"));
        assert!(text.contains("export SSL_CERT_FILE='/ca dir/bundle.pem'\n"));
        assert!(text.contains("export NODE_EXTRA_CA_CERTS='/ca dir/ca.pem'\n"));
        let plain = exports(Path::new("/ca"), None);
        assert!(!plain.contains("PROXY"));
        assert!(plain.contains("export GIT_SSL_CAINFO=/ca/bundle.pem\n"));
    }

    #[test]
    fn targets_with_a_preset_get_dummy_keys_of_the_real_shape() {
        let text = dummy_keys("api.openai.com=OPENAI_SEALED,api.github.com=GH,internal.example=X");
        assert!(
            text.contains("export OPENAI_API_KEY=sk-proj-tokenizerDUMMY"),
            "{text}"
        );
        assert!(
            text.contains("export GH_TOKEN=ghp_tokenizerDUMMY"),
            "{text}"
        );
        assert!(
            text.contains("export GITHUB_TOKEN=ghp_tokenizerDUMMY"),
            "{text}"
        );
        assert!(!text.contains("internal"), "{text}");
        assert_eq!(dummy_keys(""), "");
    }

    #[test]
    fn pem_wraps_lines() {
        let text = pem("CERTIFICATE", &[0u8; 100]);
        assert!(text.lines().all(|l| l.len() <= 64));
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
    }
}
