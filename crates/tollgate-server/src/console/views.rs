//! The layout of every console page and the small pieces of HTML the
//! pages share. maud escapes every value; nothing here writes raw HTML but
//! the SVG of [`super::chart`], which escapes its own text.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use tollgate_core::UnixTime;

use super::session::{CSRF_FIELD, Viewer};

/// A whole page: header with navigation, the content, a footer.
pub(crate) fn page(title: &str, viewer: Option<&Viewer>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · Tollgate" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    span class="brand" { "Tollgate" }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Main" {
                            ul {
                                @if viewer.is_admin() {
                                    li { a href="/console/" { "Users" } }
                                    li { a href="/console/clients" { "Clients" } }
                                    li { a href="/console/keys" { "Keys" } }
                                    li { a href="/console/revocations" { "Revocations" } }
                                    li { a href="/console/config" { "Configuration" } }
                                    li { a href="/console/usage" { "Usage" } }
                                }
                                li { a href="/account/" { "My account" } }
                            }
                        }
                        form class="logout" method="post" action="/account/logout" {
                            (csrf(viewer))
                            span class="who" { (viewer.email()) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(viewer.csrf); }
}

/// A one-button form that posts to `action`.
pub(crate) fn button(viewer: &Viewer, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form class="inline" method="post" action=(action) {
            (csrf(viewer))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A refusal page.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    page(
        &title,
        None,
        html! {
            p class="error" role="alert" { (message) }
            p { a href="/account/" { "My account" } " · " a href="/console/" { "Console" } " · " a href=(super::LOGIN_PATH) { "Sign in" } }
        },
    )
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn when(at: UnixTime) -> String {
    let days = at / 86_400;
    let seconds = at % 86_400;
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        seconds / 3600,
        (seconds % 3600) / 60
    )
}

/// A duration in words: `3 d`, `5 h`, `12 min`, `40 s`.
pub(crate) fn age(seconds: u64) -> String {
    match seconds {
        s if s >= 2 * 86_400 => format!("{} d", s / 86_400),
        s if s >= 2 * 3600 => format!("{} h", s / 3600),
        s if s >= 120 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(age(30), "30 s");
        assert_eq!(age(7200), "2 h");
    }

    #[test]
    fn values_are_escaped() {
        let html = error_page(StatusCode::BAD_REQUEST, "<script>x</script>").into_string();
        assert!(!html.contains("<script>x"));
        assert!(html.contains("&lt;script&gt;"));
    }
}
