//! Usage events (issue 12, CONTRACT §5): the rules a batch of usage events
//! must keep, written once for the token service (which refuses a batch
//! that breaks one, storing none of it) and the SDK (which never sends
//! one), and the periods reports are counted in.
//!
//! An event is one admitted tool call ([`crate::wire::UsageEvent`]); its
//! idempotency key is (`service`, `instance`, `seq`). Reports count calls
//! per user, tool, plan and hour (the store's aggregate), so a report's
//! period is whole hours ([`Period`]); `group_by=day` groups those hours by
//! UTC day ([`day_key`]).

use crate::plans::Plans;
use crate::wire::{MAX_USAGE_BATCH, UsageEvent};
use crate::{Error, UnixTime};

/// How far ahead of the receiver's clock an event's `at` may be (clock
/// skew between the reporting service and the token service).
pub const MAX_FUTURE_SKEW: u64 = 5 * 60;

/// How old an event may be when it arrives: a service's spool keeps
/// events while the token service is unreachable, for at most this long.
pub const MAX_EVENT_AGE: u64 = 7 * DAY;

/// Longest `service`, `instance`, `user`, `tool` or `plan`, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Largest idempotency sequence number (the stores keep signed 64-bit
/// integers).
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// Seconds in an hour: the unit usage is counted in.
pub const HOUR: u64 = 3600;

/// Seconds in a day.
pub const DAY: u64 = 24 * HOUR;

/// How a usage report groups its calls (`group_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UsageGroup {
    /// By tool name.
    Tool,
    /// By UTC day (`YYYY-MM-DD`).
    Day,
    /// By the plan the calls were admitted under.
    Plan,
}

impl UsageGroup {
    /// The `group_by` value: `tool`, `day` or `plan`.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageGroup::Tool => "tool",
            UsageGroup::Day => "day",
            UsageGroup::Plan => "plan",
        }
    }

    /// The group a `group_by` value names.
    pub fn parse(text: &str) -> Option<UsageGroup> {
        match text {
            "tool" => Some(UsageGroup::Tool),
            "day" => Some(UsageGroup::Day),
            "plan" => Some(UsageGroup::Plan),
            _ => None,
        }
    }
}

/// Why a usage batch (or one of its events) is refused. The sentence
/// ([`std::fmt::Display`]) names the event by its position in the batch
/// and the rule, never the event's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageProblem {
    /// The batch holds no event.
    Empty,
    /// The batch holds more than [`MAX_USAGE_BATCH`] events.
    TooMany,
    /// Event `index` has a `field` that is empty, longer than
    /// [`MAX_NAME_BYTES`] or not visible ASCII.
    BadName {
        /// Position in the batch, from 0.
        index: usize,
        /// The field.
        field: &'static str,
    },
    /// Event `index` has a `seq` above [`MAX_SEQ`].
    SeqTooLarge {
        /// Position in the batch, from 0.
        index: usize,
    },
    /// Event `index` happened more than [`MAX_FUTURE_SKEW`] after now.
    InFuture {
        /// Position in the batch, from 0.
        index: usize,
    },
    /// Event `index` happened more than [`MAX_EVENT_AGE`] before now.
    TooOld {
        /// Position in the batch, from 0.
        index: usize,
    },
    /// Event `index` names a tool no plan has.
    UnknownTool {
        /// Position in the batch, from 0.
        index: usize,
    },
    /// Event `index` names a plan that does not exist.
    UnknownPlan {
        /// Position in the batch, from 0.
        index: usize,
    },
    /// Event `index` is reported under another service's name than the
    /// caller's client id.
    ForeignService {
        /// Position in the batch, from 0.
        index: usize,
    },
}

impl UsageProblem {
    /// The position of the event refused, when one is.
    pub fn index(&self) -> Option<usize> {
        match *self {
            UsageProblem::Empty | UsageProblem::TooMany => None,
            UsageProblem::BadName { index, .. }
            | UsageProblem::SeqTooLarge { index }
            | UsageProblem::InFuture { index }
            | UsageProblem::TooOld { index }
            | UsageProblem::UnknownTool { index }
            | UsageProblem::UnknownPlan { index }
            | UsageProblem::ForeignService { index } => Some(index),
        }
    }
}

impl std::fmt::Display for UsageProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(index) = self.index() {
            write!(f, "usage event {index}: ")?;
        }
        match self {
            UsageProblem::Empty => write!(f, "the usage batch holds no event"),
            UsageProblem::TooMany => write!(
                f,
                "a usage batch holds at most {MAX_USAGE_BATCH} events; send the rest in another"
            ),
            UsageProblem::BadName { field, .. } => write!(
                f,
                "`{field}` must be 1 to {MAX_NAME_BYTES} visible ASCII characters"
            ),
            UsageProblem::SeqTooLarge { .. } => write!(f, "`seq` is larger than {MAX_SEQ}"),
            UsageProblem::InFuture { .. } => write!(
                f,
                "`at` is more than {MAX_FUTURE_SKEW} s in the future (check the clock)"
            ),
            UsageProblem::TooOld { .. } => write!(
                f,
                "`at` is more than {} days in the past; such events are no longer accepted",
                MAX_EVENT_AGE / DAY
            ),
            UsageProblem::UnknownTool { .. } => write!(f, "no plan has this tool"),
            UsageProblem::UnknownPlan { .. } => write!(f, "there is no plan with this name"),
            UsageProblem::ForeignService { .. } => {
                write!(f, "`service` must be the caller's client id")
            }
        }
    }
}

impl std::error::Error for UsageProblem {}

/// Whether `text` can be a name in a usage event.
fn is_name(text: &str) -> bool {
    (1..=MAX_NAME_BYTES).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks one event at position `index` against the rules, at `now`
/// ([`Error::InvalidUsage`] names the rule broken).
/// `service`: the client id the events must be reported under, when the
/// caller is known.
pub fn check_event(
    index: usize,
    event: &UsageEvent,
    now: UnixTime,
    plans: &Plans,
    service: Option<&str>,
) -> Result<(), Error> {
    problem_of(index, event, now, plans, service).map_err(Error::InvalidUsage)
}

fn problem_of(
    index: usize,
    event: &UsageEvent,
    now: UnixTime,
    plans: &Plans,
    service: Option<&str>,
) -> Result<(), UsageProblem> {
    for (field, value) in [
        ("service", &event.service),
        ("instance", &event.instance),
        ("user", &event.user),
        ("tool", &event.tool),
        ("plan", &event.plan),
    ] {
        if !is_name(value) {
            return Err(UsageProblem::BadName { index, field });
        }
    }
    if service.is_some_and(|service| service != event.service) {
        return Err(UsageProblem::ForeignService { index });
    }
    if event.seq > MAX_SEQ {
        return Err(UsageProblem::SeqTooLarge { index });
    }
    if event.at > now.saturating_add(MAX_FUTURE_SKEW) {
        return Err(UsageProblem::InFuture { index });
    }
    if event.at < now.saturating_sub(MAX_EVENT_AGE) {
        return Err(UsageProblem::TooOld { index });
    }
    if !plans.contains(&event.plan) {
        return Err(UsageProblem::UnknownPlan { index });
    }
    if !plans.iter().any(|plan| plan.allows_tool(&event.tool)) {
        return Err(UsageProblem::UnknownTool { index });
    }
    Ok(())
}

/// Checks a whole batch (its size, then each event in order, see
/// [`check_event`]): the first problem found.
pub fn check_batch(
    events: &[UsageEvent],
    now: UnixTime,
    plans: &Plans,
    service: Option<&str>,
) -> Result<(), Error> {
    if events.is_empty() {
        return Err(Error::InvalidUsage(UsageProblem::Empty));
    }
    if events.len() > MAX_USAGE_BATCH {
        return Err(Error::InvalidUsage(UsageProblem::TooMany));
    }
    events
        .iter()
        .enumerate()
        .try_for_each(|(index, event)| check_event(index, event, now, plans, service))
}

/// The start of the hour `at` falls in.
pub fn hour_of(at: UnixTime) -> UnixTime {
    at - at % HOUR
}

/// A report's period in whole hours: `from` rounded down, `to` rounded up
/// to the hour; the hours `h` with `from <= h < to` are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First hour counted (inclusive).
    pub from: UnixTime,
    /// End (exclusive; a whole hour).
    pub to: UnixTime,
}

impl Period {
    /// The whole hours covering `[from, to)`; `None` when `from >= to`.
    pub fn covering(from: UnixTime, to: UnixTime) -> Option<Period> {
        if from >= to {
            return None;
        }
        let to = to
            .checked_next_multiple_of(HOUR)
            .unwrap_or(hour_of(u64::MAX));
        Some(Period {
            from: hour_of(from),
            to,
        })
    }
}

/// The UTC date (`YYYY-MM-DD`) of day number `day` (days since
/// 1970-01-01, i.e. `at / DAY`).
pub fn day_key(day: u64) -> String {
    // Civil from days (H. Hinnant's algorithm), for days after the epoch.
    let z = i128::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A moment as a report's bound: Unix seconds (`1733270400`), a UTC date
/// (`2024-12-04`, its midnight) or an RFC 3339 time
/// (`2024-12-04T10:00:00Z`).
pub fn parse_moment(text: &str) -> Option<UnixTime> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    if text.len() == 10 {
        return crate::config::parse_rfc3339(&format!("{text}T00:00:00Z"));
    }
    crate::config::parse_rfc3339(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn event(seq: u64) -> UsageEvent {
        UsageEvent {
            service: "chat-backend".into(),
            instance: "i-1".into(),
            seq,
            user: "u1".into(),
            tool: "search".into(),
            plan: "free".into(),
            at: NOW,
        }
    }

    #[test]
    fn a_good_batch_passes_and_each_rule_names_the_event() {
        let plans = Plans::builtin();
        let good = vec![event(1), event(2)];
        assert_eq!(
            check_batch(&good, NOW, &plans, Some("chat-backend")),
            Ok(())
        );
        assert_eq!(check_batch(&good, NOW, &plans, None), Ok(()));
        // `debug` is the developer plan's only; any plan's tool is known.
        let mut debug = event(3);
        debug.tool = "debug".into();
        assert_eq!(check_batch(&[debug], NOW, &plans, None), Ok(()));

        assert_eq!(
            check_batch(&[], NOW, &plans, None),
            Err(Error::InvalidUsage(UsageProblem::Empty))
        );
        let many = vec![event(1); MAX_USAGE_BATCH + 1];
        assert_eq!(
            check_batch(&many, NOW, &plans, None),
            Err(Error::InvalidUsage(UsageProblem::TooMany))
        );
        let full = vec![event(1); MAX_USAGE_BATCH];
        assert_eq!(check_batch(&full, NOW, &plans, None), Ok(()));

        type Change = fn(&mut UsageEvent);
        let cases: [(Change, UsageProblem); 11] = [
            (
                |e| e.user = String::new(),
                UsageProblem::BadName {
                    index: 1,
                    field: "user",
                },
            ),
            (
                |e| e.tool = "a b".into(),
                UsageProblem::BadName {
                    index: 1,
                    field: "tool",
                },
            ),
            (
                |e| e.instance = "x".repeat(MAX_NAME_BYTES + 1),
                UsageProblem::BadName {
                    index: 1,
                    field: "instance",
                },
            ),
            (
                |e| e.plan = "fré".into(),
                UsageProblem::BadName {
                    index: 1,
                    field: "plan",
                },
            ),
            (
                |e| e.service = "other".into(),
                UsageProblem::ForeignService { index: 1 },
            ),
            (
                |e| e.seq = MAX_SEQ + 1,
                UsageProblem::SeqTooLarge { index: 1 },
            ),
            (
                |e| e.at = NOW + MAX_FUTURE_SKEW + 1,
                UsageProblem::InFuture { index: 1 },
            ),
            (
                |e| e.at = NOW - MAX_EVENT_AGE - 1,
                UsageProblem::TooOld { index: 1 },
            ),
            (
                |e| e.tool = "teleport".into(),
                UsageProblem::UnknownTool { index: 1 },
            ),
            (
                |e| e.plan = "platinum".into(),
                UsageProblem::UnknownPlan { index: 1 },
            ),
            (|e| e.at = u64::MAX, UsageProblem::InFuture { index: 1 }),
        ];
        for (change, problem) in cases {
            let mut bad = event(2);
            change(&mut bad);
            let batch = vec![event(1), bad];
            assert_eq!(
                check_batch(&batch, NOW, &plans, Some("chat-backend")),
                Err(Error::InvalidUsage(problem))
            );
            assert!(
                problem.to_string().starts_with("usage event 1: "),
                "{problem}"
            );
        }
        // The edges of the window are accepted.
        let mut edge = event(1);
        edge.at = NOW + MAX_FUTURE_SKEW;
        let mut old = event(2);
        old.at = NOW - MAX_EVENT_AGE;
        assert_eq!(check_batch(&[edge, old], NOW, &plans, None), Ok(()));
    }

    #[test]
    fn sentences_never_carry_the_event_text() {
        let plans = Plans::builtin();
        let mut bad = event(1);
        bad.tool = "secret-tool-name".into();
        let problem = check_batch(&[bad], NOW, &plans, None).unwrap_err();
        assert!(!problem.to_string().contains("secret"), "{problem}");
    }

    #[test]
    fn periods_are_whole_hours_and_days_are_utc_dates() {
        assert_eq!(
            Period::covering(3601, 7201),
            Some(Period {
                from: 3600,
                to: 10_800
            })
        );
        assert_eq!(
            Period::covering(3600, 7200),
            Some(Period {
                from: 3600,
                to: 7200
            })
        );
        assert_eq!(Period::covering(7200, 7200), None);
        assert_eq!(Period::covering(7201, 7200), None);
        assert!(Period::covering(0, u64::MAX).is_some());
        assert_eq!(day_key(0), "1970-01-01");
        assert_eq!(day_key(NOW / DAY), "2023-11-14");
        assert_eq!(day_key(11_016), "2000-02-29");
        assert_eq!(day_key(19_782), "2024-02-29");
        assert_eq!(hour_of(NOW), 1_699_999_200);
    }

    #[test]
    fn moments_are_seconds_dates_or_rfc3339() {
        assert_eq!(parse_moment("1700000000"), Some(NOW));
        assert_eq!(parse_moment("2023-11-14"), Some(1_699_920_000));
        assert_eq!(parse_moment("2023-11-14T22:13:20Z"), Some(NOW));
        assert_eq!(parse_moment("2023-11-14T23:13:20+01:00"), Some(NOW));
        for bad in ["", "yesterday", "2023-13-01", "-5", "2023-11-14T25:00:00Z"] {
            assert_eq!(parse_moment(bad), None, "{bad}");
        }
    }

    #[test]
    fn groups_round_trip() {
        for group in [UsageGroup::Tool, UsageGroup::Day, UsageGroup::Plan] {
            assert_eq!(UsageGroup::parse(group.as_str()), Some(group));
        }
        assert_eq!(UsageGroup::parse("user"), None);
    }
}
