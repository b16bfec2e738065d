//! A small incremental parser for `text/event-stream` (the WHATWG
//! Server-Sent Events format), enough for the revocation feed: `id`,
//! `event` and `data` fields, comments (keep-alives), blank-line dispatch.
//!
//! Lines end in `\n` or `\r\n` (what the token service sends); a line over
//! 64 KiB is an error rather than unbounded memory.

/// The longest line accepted.
const MAX_LINE: usize = 64 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event` field, `message` when absent.
    pub event: String,
    /// The `data` lines joined by `\n`.
    pub data: String,
    /// The last `id` seen (the stream's last event id).
    pub id: Option<String>,
}

/// The line is too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineTooLong;

#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    last_id: Option<String>,
    started: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        let mut events = Vec::new();
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(offset) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + offset;
            let mut line = &self.buf[start..end];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(events)
    }

    fn line(&mut self, mut line: &str) -> Option<SseEvent> {
        if !self.started {
            self.started = true;
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            return data.map(|data| SseEvent {
                event: event.unwrap_or_else(|| "message".to_owned()),
                data,
                id: self.last_id.clone(),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunks_comments_and_crlf() {
        let mut p = SseParser::default();
        assert!(
            p.push(b": keep-alive\n\nid: 7\r\nevent: revoc")
                .unwrap()
                .is_empty()
        );
        let events = p.push(b"ation\ndata: {\"a\":\ndata: 1}\n\n").unwrap();
        assert_eq!(
            events,
            [SseEvent {
                event: "revocation".into(),
                data: "{\"a\":\n1}".into(),
                id: Some("7".into())
            }]
        );
        let events = p.push(b"data:x\n\n").unwrap();
        assert_eq!(events[0].event, "message");
        assert_eq!(events[0].id.as_deref(), Some("7"), "the last id persists");
    }

    #[test]
    fn a_line_without_end_is_bounded() {
        let mut p = SseParser::default();
        assert_eq!(p.push(&vec![b'a'; MAX_LINE + 1]), Err(LineTooLong));
    }
}
