//! `GET /`: one self-contained page showing live traffic from `/v1/audit` and
//! `/v1/stats`. With `ADMIN_TOKEN`, the page asks for the token (a sign-in form, shown
//! on the 401), keeps it in the tab's session storage — never in the URL, where history,
//! referrers and screenshots would keep it — and sends it as a bearer header. An old
//! `/?token=…` link still works; the token is taken out of the address bar at once.

use axum::response::Html;

pub async fn page() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
