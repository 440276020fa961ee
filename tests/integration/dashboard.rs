//! The admin dashboard in a real browser: headless Chromium loads `/`, runs its
//! script against `/v1/stats` and `/v1/audit`, and the resulting DOM shows the traffic.

use serde_json::json;

use crate::support::cdp::Browser;
use crate::support::{Env, inject};

/// Chromium flags for a closed network and no profile (Debian's `chromium`).
const CHROMIUM: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=4000",
];

fn chromium(args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args(CHROMIUM)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("chromium is installed (.ci/run installs Debian's chromium)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_live_traffic_in_chromium() {
    // fly-proxy's signing key: one request carries a verified Fly-Src, which the
    // dashboard shows as its caller.
    let fly = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let dir = tempfile::tempdir().unwrap();
    let fly_pub = dir.path().join("fly-src.pub");
    std::fs::write(&fly_pub, hex::encode(fly.verifying_key().as_bytes())).unwrap();
    let fly_pub = fly_pub.display().to_string();
    let e = Env::builder()
        .names(&["api.test"])
        .flags(&[
            "--admin-address",
            "127.0.0.1:0",
            "--admin-token",
            "dash",
            "--use-flysrc",
            "--flysrc-public-key-file",
            &fly_pub,
            "--flysrc-proxy-nets",
            "127.0.0.0/8",
        ])
        .start()
        .await;
    let sealed = e.seal(&inject("sk-dashboard-credential-123", "pw"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let src = format!("instance=m8e2;app=sandbox;org=dash-org;ts={now}");
    let sig = {
        use ed25519_dalek::Signer;
        ::tokenizer::secret::b64::encode(&fly.sign(src.as_bytes()).to_bytes())
    };
    for (path, auth, flysrc) in [
        ("/allowed-one", "Bearer pw", true),
        ("/allowed-two", "Bearer pw", false),
        ("/denied", "Bearer no", false),
    ] {
        let mut headers = vec![("proxy-authorization", auth)];
        if flysrc {
            headers.extend([
                ("fly-src", src.as_str()),
                ("fly-src-signature", sig.as_str()),
            ]);
        }
        e.get(path, &[&sealed], &headers).await;
    }
    // The entries are recorded as each response ends.
    let admin = e.admin().with_token("dash");
    admin.audit("", 3).await;
    // An old-style link: the page moves the token into the tab's session storage.
    let url = admin.url("/?token=dash");

    let dom = tokio::task::spawn_blocking({
        let url = url.clone();
        move || String::from_utf8(chromium(&["--dump-dom", &url]).stdout).unwrap()
    })
    .await
    .unwrap();
    // The script filled the table from /v1/audit and the totals from /v1/stats.
    assert!(dom.contains("<tr data-decision=\"allowed\">"), "{dom}");
    assert!(dom.contains("<tr data-decision=\"denied\">"), "{dom}");
    for text in [
        "/allowed-one",
        "/allowed-two",
        "/denied",
        "api.test",
        "d-denied",
        "live · 3 recent requests",
        // The verified Fly-Src, as the caller.
        "dash-org/sandbox/m8e2",
    ] {
        assert!(dom.contains(text), "{text} missing from\n{dom}");
    }
    assert!(dom.contains("data-decision=\"total\"><b>3</b>"), "{dom}");
    assert!(!dom.contains("sk-dashboard-credential-123"));

    // A screenshot, kept under target/ for people to look at.
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    let _ = std::fs::remove_file(&shot);
    tokio::task::spawn_blocking({
        let shot = shot.clone();
        move || {
            chromium(&[
                "--window-size=1280,720",
                &format!("--screenshot={}", shot.display()),
                &url,
            ])
        }
    })
    .await
    .unwrap();
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );

    // Without the token: a sign-in form that says what to enter, not a bare 401.
    let bare = admin.url("/");
    let dom = tokio::task::spawn_blocking(move || {
        String::from_utf8(chromium(&["--dump-dom", &bare]).stdout).unwrap()
    })
    .await
    .unwrap();
    assert!(
        dom.contains("id=\"signin\" autocomplete=\"off\" class=\"shown\""),
        "{dom}"
    );
    assert!(dom.contains("sign in with the ADMIN_TOKEN"), "{dom}");
    assert!(!dom.contains("/allowed-one"));
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_keeps_the_token_out_of_the_url() {
    let e = Env::builder()
        .names(&["api.test"])
        .flags(&[
            "--admin-address",
            "127.0.0.1:0",
            "--admin-token",
            "dash-token-77",
        ])
        .start()
        .await;
    let sealed = e.seal(&inject("sk-dashboard-credential-456", "pw"));
    // A long reason, to see it wrap rather than be cut off.
    let long_path = format!("/{}", "a".repeat(300));
    e.get("/ok", &[&sealed], &[("proxy-authorization", "Bearer pw")])
        .await;
    e.get(
        &long_path,
        &[&sealed],
        &[("proxy-authorization", "Bearer wrong")],
    )
    .await;
    e.admin().with_token("dash-token-77").audit("", 2).await;
    let mut page = Browser::open(&e.admin().url("/")).await;
    page.wait_for("document.getElementById('signin').classList.contains('shown')")
        .await;
    // A wrong token: refused, and the form says so.
    page.eval("document.getElementById('token').value = 'nope'; document.getElementById('signin').requestSubmit(); true").await;
    page.wait_for("document.getElementById('signin-note').textContent.includes('refused')")
        .await;
    // The right one: the traffic shows, and the token is in no URL.
    page.eval("document.getElementById('token').value = 'dash-token-77'; document.getElementById('signin').requestSubmit(); true").await;
    page.wait_for("document.querySelectorAll('#rows tr').length >= 2")
        .await;
    assert_eq!(
        page.eval("location.href.includes('dash-token-77')").await,
        json!(false)
    );
    assert_eq!(
        page.eval("document.getElementById('token').value").await,
        json!("")
    );
    // The reason cell wraps.
    assert_eq!(
        page.eval("getComputedStyle(document.querySelector('td.reason')).whiteSpace")
            .await,
        json!("normal")
    );
    // Still signed in after a reload (the tab's session storage), then signed out.
    page.reload().await;
    page.wait_for("document.querySelectorAll('#rows tr').length >= 2")
        .await;
    page.eval("document.getElementById('signout').click(); true")
        .await;
    page.wait_for("document.getElementById('signin').classList.contains('shown')")
        .await;
    // An old `?token=` link signs in and leaves the address bar clean.
    let mut old = Browser::open(&e.admin().url("/?token=dash-token-77")).await;
    old.wait_for("document.querySelectorAll('#rows tr').length >= 2")
        .await;
    assert_eq!(old.eval("location.search").await, json!(""));
    let html = old.eval("document.documentElement.outerHTML").await;
    assert!(!html.to_string().contains("sk-dashboard-credential-456"));
}
