//! Charts as SVG drawn by the server: horizontal bars, one per group, with
//! the figures also in a table beside them (for screen readers and for
//! copying). Only presentation attributes, no `style`: the page's CSP holds.

use maud::{Markup, html};

/// Width of the drawing area in SVG units (it scales to the page).
const WIDTH: u64 = 600;
/// Height of one bar's row.
const ROW: u64 = 28;
/// Room for the labels on the left.
const LABEL: u64 = 160;

/// A bar chart of `rows` (label, count) titled `title`, and its table.
pub(crate) fn bars(title: &str, unit: &str, rows: &[(String, u64)]) -> Markup {
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let height = ROW * rows.len().max(1) as u64 + 8;
    let span = WIDTH - LABEL - 70;
    html! {
        figure class="chart" {
            figcaption { (title) }
            @if rows.is_empty() {
                p class="empty" { "Nothing recorded in this period." }
            } @else {
                svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {height}"))
                    role="img" aria-label=(format!("{title}: bar chart")) {
                    @for (i, (label, count)) in rows.iter().enumerate() {
                        @let y = 4 + ROW * i as u64;
                        @let length = (span * count / max).max(1);
                        text x=(LABEL - 8) y=(y + 18) text-anchor="end" class="label" { (label) }
                        rect x=(LABEL) y=(y + 4) width=(length) height=(ROW - 8) rx="3" class="bar" {}
                        text x=(LABEL + length + 6) y=(y + 18) class="value" { (count) }
                    }
                }
                table class="figures" {
                    thead { tr { th scope="col" { "Group" } th scope="col" class="num" { (unit) } } }
                    tbody {
                        @for (label, count) in rows {
                            tr { td { (label) } td class="num" { (count) } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_bars_scale() {
        let svg = bars(
            "Calls",
            "calls",
            &[("<b>".to_owned(), 10), ("search".to_owned(), 5)],
        )
        .into_string();
        assert!(svg.contains("&lt;b&gt;"));
        assert!(svg.contains("width=\"370\""));
        assert!(svg.contains("width=\"185\""));
        assert!(!svg.contains("style="));
    }

    #[test]
    fn an_empty_chart_says_so() {
        assert!(
            bars("Calls", "calls", &[])
                .into_string()
                .contains("Nothing recorded")
        );
    }
}
