//! `GET /`: one self-contained page showing live traffic from `/v1/audit` and
//! `/v1/stats`. With `ADMIN_TOKEN`, open it as `/?token=…`; the page sends the token as a
//! bearer header.

use axum::response::Html;

pub async fn page() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
