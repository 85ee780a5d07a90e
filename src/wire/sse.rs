//! Server-Sent Events: encoding our own events, and decoding an upstream's event stream.

use bytes::{BufMut, Bytes, BytesMut};

/// One SSE event carrying a JSON-RPC message. `data` must not contain a newline (our frames
/// never do: JSON-RPC text from the wire layer is single-line).
pub fn encode_event(id: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 40);
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"event: message\n");
    for line in data.split(|&b| b == b'\n') {
        out.put_slice(b"data: ");
        out.put_slice(line);
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// The 2025-11-25 priming event: an id and empty data, plus the reconnect delay.
pub fn priming_event(id: &str, retry_ms: u64) -> Bytes {
    Bytes::from(format!("id: {id}\nretry: {retry_ms}\ndata: \n\n"))
}

/// A parsed event from an upstream stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    /// The event's `id:` field, if any.
    pub id: Option<String>,
    /// The event's `event:` field, if any.
    pub event: Option<String>,
    /// Its `data:` lines, joined by newlines.
    pub data: Bytes,
}

/// Incremental SSE decoder (WHATWG rules: fields per line, blank line dispatches). Any
/// `max_event` is valid, `usize::MAX` (no limit) included.
pub struct SseDecoder {
    buf: BytesMut,
    data: BytesMut,
    id: Option<String>,
    event: Option<String>,
    max: usize,
    /// An event outgrew `max`: its remaining lines are dropped up to the next blank line.
    discarding: bool,
    /// A line outgrew `max` before its end arrived: its bytes are dropped up to its newline,
    /// so a peer that never sends one cannot make us buffer without bound.
    skipping_line: bool,
}

impl SseDecoder {
    /// A decoder that refuses events over `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            data: BytesMut::new(),
            id: None,
            event: None,
            max: max_event,
            discarding: false,
            skipping_line: false,
        }
    }

    /// The id of the last event seen, for `Last-Event-ID` on reconnect.
    pub fn last_event_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Feeds bytes as they arrive; complete events are then ready to be taken.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Next complete event; `Err` when one event exceeds the size limit.
    pub fn next_event(&mut self) -> Result<Option<Event>, String> {
        loop {
            let Some(nl) = memchr::memchr(b'\n', &self.buf) else {
                if self.skipping_line {
                    self.buf.clear();
                } else if self.buf.len().saturating_add(self.data.len()) > self.max {
                    // Reported once per event, like an event whose data lines outgrew it.
                    self.buf.clear();
                    self.data.clear();
                    self.skipping_line = true;
                    if !std::mem::replace(&mut self.discarding, true) {
                        return Err(format!("SSE event over {} bytes", self.max));
                    }
                }
                return Ok(None);
            };
            let mut line = self.buf.split_to(nl + 1);
            if std::mem::take(&mut self.skipping_line) {
                continue; // the end of a line already dropped
            }
            line.truncate(nl);
            if line.last() == Some(&b'\r') {
                line.truncate(line.len() - 1);
            }
            if line.is_empty() {
                if std::mem::take(&mut self.discarding) {
                    self.data.clear();
                    self.event = None;
                    continue;
                }
                let mut data = std::mem::take(&mut self.data);
                if data.last() == Some(&b'\n') {
                    data.truncate(data.len() - 1);
                }
                if data.is_empty() {
                    // Nothing to dispatch (a priming event); its id still counts for resuming.
                    self.event = None;
                    continue;
                }
                return Ok(Some(Event {
                    id: self.id.clone(),
                    event: self.event.take(),
                    data: data.freeze(),
                }));
            }
            if line[0] == b':' {
                continue; // comment / keep-alive
            }
            let (field, value) = match memchr::memchr(b':', &line) {
                Some(c) => {
                    let v = &line[c + 1..];
                    (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &b""[..]),
            };
            match field {
                b"data" if self.discarding => {}
                b"data" => {
                    self.data.extend_from_slice(value);
                    self.data.put_u8(b'\n');
                    if self.data.len() > self.max {
                        // Report it once and drop the rest of this event (found by the fuzzer:
                        // the event used to be handed out whole at its blank line).
                        self.data.clear();
                        self.discarding = true;
                        return Err(format!("SSE event over {} bytes", self.max));
                    }
                }
                b"id" => self.id = Some(String::from_utf8_lossy(value).into_owned()),
                b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode() {
        let mut d = SseDecoder::new(1024);
        d.push(&priming_event("0-0", 1000));
        d.push(&encode_event(Some("0-1"), b"{\"a\":1}"));
        d.push(b": keep-alive\n\ndata: x\r\ndata: y\r\n");
        let e = d.next_event().unwrap().unwrap();
        assert_eq!(
            (e.id.as_deref(), &e.data[..]),
            (Some("0-1"), &b"{\"a\":1}"[..])
        );
        assert_eq!(d.next_event().unwrap(), None);
        d.push(b"\r\n");
        assert_eq!(&d.next_event().unwrap().unwrap().data[..], b"x\ny");
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut d = SseDecoder::new(8);
        d.push(b"data: 0123456789\n");
        assert!(d.next_event().is_err());
    }

    #[test]
    fn a_line_without_end_is_dropped_as_it_arrives() {
        let mut d = SseDecoder::new(8);
        d.push(b"data: 0123456789");
        assert!(d.next_event().is_err());
        d.push(b"id: looks-like-a-field");
        assert_eq!(d.next_event().unwrap(), None, "reported once");
        assert!(d.buf.is_empty(), "nothing of it is kept");
        d.push(b"\ndata: x\n\ndata: ok\n\n");
        assert_eq!(&d.next_event().unwrap().unwrap().data[..], b"ok");
        assert_eq!(d.last_event_id(), None, "the dropped line set no field");
    }

    #[test]
    fn no_limit_is_a_limit_like_any_other() {
        let mut d = SseDecoder::new(usize::MAX);
        d.push(b"data: 01234");
        assert_eq!(d.next_event().unwrap(), None);
        d.push(b"56789\n\n");
        assert_eq!(&d.next_event().unwrap().unwrap().data[..], b"0123456789");
    }

    #[test]
    fn an_oversized_event_is_dropped_whole_and_the_next_one_decodes() {
        let mut d = SseDecoder::new(8);
        d.push(b"data: 0123456789\ndata: more\n\ndata: ok\n\n");
        assert!(d.next_event().is_err());
        assert_eq!(&d.next_event().unwrap().unwrap().data[..], b"ok");
    }
}
