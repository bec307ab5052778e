//! WebSocket frames, RFC 6455, server side, pure (no I/O): reading a player's, and
//! formatting ours (tungstenite's formatter; each of our frames is formatted once and the same
//! bytes go to every player).
//!
//! Every frame a client sends is reported, one [`Frame`] each, data or control, complete
//! message or fragment: the session counts each against the player's rate limit, so a peer
//! cannot make the server work (parse, unmask, answer) without being charged for it, before
//! its hello as after. (tungstenite's reader reports messages, not frames, and queues a pong
//! per ping until a message is written: a peer that never says hello could grow its memory.)
//!
//! The reader holds at most one frame's worth of bytes (the message limit plus a header):
//! [`FrameReader::space`] says how much more the socket may read into it. Faults are refused
//! with the close code RFC 6455 gives them ([`Fault::code`]).

use bytes::{Buf, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame as WsFrame};

/// A frame header is at most 14 bytes (2, an extended length of 8, a mask of 4).
const MAX_HEADER: usize = 14;

/// A WebSocket binary frame (final, unmasked, as a server sends it) carrying `payload`.
pub(crate) fn binary_frame(payload: Vec<u8>) -> Bytes {
    format(WsFrame::message(payload, OpCode::Data(Data::Binary), true))
}

/// The longest [`ack_frame`]: a 2-byte header, the tag and a 5-byte varint.
pub(crate) const ACK_FRAME_MAX: usize = 8;

/// The frame of `ServerMsg::Ack { seq }`, written into `out` (no allocation: one is written per
/// player per tick); returns its length. The same bytes as [`binary_frame`] of its encoding.
pub(crate) fn ack_frame(seq: u32, out: &mut [u8; ACK_FRAME_MAX]) -> usize {
    // PROTOCOL.md: tag 4, then `seq` as a varint; a payload under 126 bytes has a 2-byte header.
    out[2] = 4;
    match seq {
        0..251 => out[3] = seq as u8,
        251..=0xffff => {
            out[3] = 0xfb;
            out[4..6].copy_from_slice(&(seq as u16).to_le_bytes());
        }
        _ => {
            out[3] = 0xfc;
            out[4..8].copy_from_slice(&seq.to_le_bytes());
        }
    }
    let len = ack_frame_len(seq);
    out[0] = 0x82; // FIN, binary
    out[1] = (len - 2) as u8;
    len
}

/// The length of [`ack_frame`]'s frame for `seq`, without writing it (for the byte counts).
pub(crate) fn ack_frame_len(seq: u32) -> usize {
    // Header, tag, then the varint: one byte, or a marker and a u16 or a u32.
    match seq {
        0..251 => 4,
        251..=0xffff => 6,
        _ => 8,
    }
}

/// A ping frame carrying `payload` (at most 125 bytes).
pub(crate) fn ping_frame(payload: &[u8]) -> Bytes {
    format(WsFrame::ping(Bytes::copy_from_slice(payload)))
}

/// A close frame with `code` and `reason` (a reason over 123 bytes is cut, on a character
/// boundary, to fit a control frame).
pub(crate) fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format(WsFrame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].into(),
    })))
}

/// A close frame without a code: the echo of a peer's close that carried none.
pub(crate) fn empty_close_frame() -> Bytes {
    format(WsFrame::close(None))
}

fn format(frame: WsFrame) -> Bytes {
    let mut out = Vec::with_capacity(frame.len());
    // Writing into a Vec cannot fail.
    frame.format(&mut out).expect("formatting into a Vec");
    out.into()
}

/// A pong frame echoing `payload`.
pub(crate) fn pong_frame(payload: Bytes) -> Bytes {
    format(WsFrame::pong(payload))
}

/// What one frame was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The last frame of a binary message: the whole message.
    Binary(Bytes),
    /// The last frame of a text message, which was valid UTF-8 (invalid text is a fault).
    Text,
    /// A data frame that is not the last of its message: nothing to act on yet.
    Fragment,
    /// A ping, with its payload (at most 125 bytes) to echo in the pong.
    Ping(Bytes),
    /// A pong, with its payload.
    Pong(Bytes),
    /// The peer is closing, with its code (`None` when it sent no code).
    Close(Option<u16>),
}

/// A frame that breaks RFC 6455 or our limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Fault {
    /// A message over the limit, known from a frame header or from the fragments so far.
    #[error("message of {size} bytes is over the {max}-byte limit")]
    TooBig {
        /// Its size as far as known.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// Text or a close reason that is not UTF-8.
    #[error("invalid UTF-8 in a {0}")]
    InvalidUtf8(&'static str),
    /// Any other framing error.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
}

impl Fault {
    /// The close code RFC 6455 gives this fault.
    pub(crate) fn code(&self) -> u16 {
        match self {
            Fault::TooBig { .. } => 1009,
            Fault::InvalidUtf8(_) => 1007,
            Fault::Protocol(_) => 1002,
        }
    }
}

/// The bytes read from one player and not yet parsed, and the message being reassembled.
#[derive(Debug)]
pub(crate) struct FrameReader {
    buf: BytesMut,
    /// The opcode and the fragments so far of a message whose last frame has not come.
    partial: Option<(u8, BytesMut)>,
    max_message: usize,
}

impl FrameReader {
    /// A reader for messages of at most `max_message` bytes, starting with `initial` bytes
    /// already read (those that came behind the upgrade request) and room for `capacity`.
    pub(crate) fn new(max_message: usize, initial: &[u8], capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity.max(initial.len()));
        buf.extend_from_slice(initial);
        Self {
            buf,
            partial: None,
            max_message,
        }
    }

    /// Where the socket reads into. Never holds more than one frame past what was parsed.
    pub(crate) fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// How many more bytes the buffer may take: enough for the largest frame allowed, so a
    /// peer cannot make it grow beyond that however it sends.
    pub(crate) fn space(&self) -> usize {
        (self.max_message + MAX_HEADER).saturating_sub(self.buf.len())
    }

    /// Parses the next whole frame, if the buffer holds one.
    pub(crate) fn next(&mut self) -> Result<Option<Frame>, Fault> {
        let Some(header) = Header::parse(&self.buf, self.max_message)? else {
            return Ok(None);
        };
        let total = header.len + header.payload;
        if self.buf.len() < total {
            // The rest is on its way; make sure it fits (the header is already bounded).
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(header.len);
        let mut payload = self.buf.split_to(header.payload);
        unmask(&mut payload, header.mask);
        self.frame(header, payload)
    }

    fn frame(&mut self, header: Header, payload: BytesMut) -> Result<Option<Frame>, Fault> {
        match header.opcode {
            opcode::PING => Ok(Some(Frame::Ping(payload.freeze()))),
            opcode::PONG => Ok(Some(Frame::Pong(payload.freeze()))),
            opcode::CLOSE => close(&payload).map(|code| Some(Frame::Close(code))),
            opcode::CONTINUATION => {
                let Some((kind, mut message)) = self.partial.take() else {
                    return Err(Fault::Protocol("continuation frame without a message"));
                };
                let size = message.len() + payload.len();
                if size > self.max_message {
                    return Err(Fault::TooBig {
                        size: size as u64,
                        max: self.max_message,
                    });
                }
                message.extend_from_slice(&payload);
                if header.fin {
                    message_done(kind, message).map(Some)
                } else {
                    self.partial = Some((kind, message));
                    Ok(Some(Frame::Fragment))
                }
            }
            kind => {
                if self.partial.is_some() {
                    return Err(Fault::Protocol("a new message before the last one ended"));
                }
                if header.fin {
                    message_done(kind, payload).map(Some)
                } else {
                    self.partial = Some((kind, payload));
                    Ok(Some(Frame::Fragment))
                }
            }
        }
    }
}

/// Frame opcodes (RFC 6455, 5.2).
mod opcode {
    pub(super) const CONTINUATION: u8 = 0x0;
    pub(super) const TEXT: u8 = 0x1;
    pub(super) const BINARY: u8 = 0x2;
    pub(super) const CLOSE: u8 = 0x8;
    pub(super) const PING: u8 = 0x9;
    pub(super) const PONG: u8 = 0xa;
}

fn message_done(kind: u8, message: BytesMut) -> Result<Frame, Fault> {
    match kind {
        opcode::BINARY => Ok(Frame::Binary(message.freeze())),
        _ if std::str::from_utf8(&message).is_ok() => Ok(Frame::Text),
        _ => Err(Fault::InvalidUtf8("text message")),
    }
}

/// A close frame's code, checked: a lone byte, a code no endpoint may send, or a reason that
/// is not UTF-8 is a fault.
fn close(payload: &[u8]) -> Result<Option<u16>, Fault> {
    match payload {
        [] => Ok(None),
        [_] => Err(Fault::Protocol("a close frame with a one-byte code")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            // Codes a peer may send (RFC 6455, 7.4); 1005, 1006 and 1015 never go on the wire.
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(Fault::Protocol("a close code that may not be sent"));
            }
            std::str::from_utf8(reason).map_err(|_| Fault::InvalidUtf8("close reason"))?;
            Ok(Some(code))
        }
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header bytes.
    len: usize,
    /// Payload bytes.
    payload: usize,
}

impl Header {
    /// The header at the start of `buf`, or `None` if it is not all there yet.
    fn parse(buf: &[u8], max_message: usize) -> Result<Option<Self>, Fault> {
        let [first, second, ..] = *buf else { return Ok(None) };
        if first & 0x70 != 0 {
            return Err(Fault::Protocol("reserved bits set (no extension was negotiated)"));
        }
        let (fin, opcode) = (first & 0x80 != 0, first & 0x0f);
        let control = match opcode {
            opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => false,
            opcode::CLOSE | opcode::PING | opcode::PONG => true,
            _ => return Err(Fault::Protocol("unknown opcode")),
        };
        if second & 0x80 == 0 {
            return Err(Fault::Protocol("client frames must be masked"));
        }
        let (extra, payload) = match second & 0x7f {
            126 => {
                let Some(b) = buf.get(2..4) else { return Ok(None) };
                let len = u64::from(u16::from_be_bytes([b[0], b[1]]));
                if len < 126 {
                    return Err(Fault::Protocol("length not in its shortest form"));
                }
                (2, len)
            }
            127 => {
                let Some(b) = buf.get(2..10) else { return Ok(None) };
                let len = u64::from_be_bytes(b.try_into().unwrap_or_default());
                if len <= 0xffff || len >> 63 != 0 {
                    return Err(Fault::Protocol("length not in its shortest form"));
                }
                (8, len)
            }
            n => (0, u64::from(n)),
        };
        if control && (!fin || payload > 125) {
            return Err(Fault::Protocol("control frames must be whole and at most 125 bytes"));
        }
        if payload > max_message as u64 {
            return Err(Fault::TooBig {
                size: payload,
                max: max_message,
            });
        }
        let len = 2 + extra + 4;
        let Some(mask) = buf.get(2 + extra..len) else {
            return Ok(None);
        };
        Ok(Some(Self {
            fin,
            opcode,
            mask: mask.try_into().unwrap_or_default(),
            len,
            payload: payload as usize,
        }))
    }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;

    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::Control;

    use super::*;

    /// Parses one server frame the way a client would.
    pub(crate) fn parse(bytes: &[u8]) -> (FrameHeader, &[u8]) {
        let mut cursor = io::Cursor::new(bytes);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().expect("a whole header");
        let start = cursor.position() as usize;
        assert_eq!(start + len as usize, bytes.len(), "exactly one frame");
        (header, &bytes[start..])
    }

    #[test]
    fn an_ack_frame_written_in_place_is_the_encoder_s_frame() {
        use crate::game::Game as _;
        let schema = crate::game::Arena::schema(&crate::game::GameConfig::default());
        for seq in [0, 1, 250, 251, 300, 0xffff, 0x1_0000, u32::MAX] {
            let mut out = [0u8; ACK_FRAME_MAX];
            let len = ack_frame(seq, &mut out);
            assert_eq!(len, ack_frame_len(seq), "seq {seq}");
            let encoded = crate::protocol::ServerMsg::Ack(crate::protocol::Ack { seq }).encode(&schema);
            assert_eq!(&out[..len], &binary_frame(encoded)[..], "seq {seq}");
        }
    }

    #[test]
    fn frames_carry_their_payload_unmasked_with_the_shortest_length() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let payload = vec![7u8; len];
            let frame = binary_frame(payload.clone());
            let header_len = match len {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            assert_eq!(frame.len(), header_len + len);
            let (header, body) = parse(&frame);
            assert!(header.is_final && header.mask.is_none());
            assert_eq!(header.opcode, OpCode::Data(Data::Binary));
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn a_long_close_reason_is_cut_to_fit_a_control_frame() {
        let frame = close_frame(1008, &"é".repeat(100));
        let (header, body) = parse(&frame);
        assert_eq!(header.opcode, OpCode::Control(Control::Close));
        assert!(body.len() <= 125);
        assert_eq!(&body[..2], &1008u16.to_be_bytes());
        assert!(std::str::from_utf8(&body[2..]).is_ok(), "cut on a character boundary");
    }

    /// A masked client frame.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![first];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Frame>, Fault> {
        let mut reader = FrameReader::new(1024, &[], 256);
        let mut frames = Vec::new();
        // Fed one byte at a time: every split point of every frame is exercised.
        for b in bytes {
            reader.buffer().extend_from_slice(&[*b]);
            while let Some(frame) = reader.next()? {
                frames.push(frame);
            }
        }
        Ok(frames)
    }

    #[test]
    fn every_frame_is_reported_and_messages_are_reassembled() {
        let mut bytes = client_frame(0x82, b"whole");
        bytes.extend(client_frame(0x89, b"ping"));
        bytes.extend(client_frame(0x02, b"fra"));
        bytes.extend(client_frame(0x8a, b"pong in between"));
        bytes.extend(client_frame(0x00, b"gm"));
        bytes.extend(client_frame(0x80, b"ents"));
        bytes.extend(client_frame(0x81, "é".as_bytes()));
        bytes.extend(client_frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
        assert_eq!(
            read_all(&bytes).unwrap(),
            [
                Frame::Binary(Bytes::from_static(b"whole")),
                Frame::Ping(Bytes::from_static(b"ping")),
                Frame::Fragment,
                Frame::Pong(Bytes::from_static(b"pong in between")),
                Frame::Fragment,
                Frame::Binary(Bytes::from_static(b"fragments")),
                Frame::Text,
                Frame::Close(Some(1000)),
            ]
        );
    }

    #[test]
    fn faults_get_the_close_code_rfc_6455_gives_them() {
        let mut unmasked = client_frame(0x82, b"x");
        unmasked[1] &= 0x7f;
        let mut long_form = vec![0x82, 0x80 | 126, 0, 5];
        long_form.extend_from_slice(&[0; 4]);
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (client_frame(0x81, &[0xff, 0xfe]), 1007),
            (client_frame(0x88, &[0x03, 0xe8, 0xc3, 0x28]), 1007),
            (client_frame(0x88, &[0x03]), 1002),
            (client_frame(0x88, &[0x03, 0xed]), 1002), // 1005 may not be sent
            (client_frame(0x00, b"orphan"), 1002),
            (client_frame(0xc2, b"rsv1"), 1002),
            (client_frame(0x83, b"opcode 3"), 1002),
            (client_frame(0x09, b"fragmented ping"), 1002),
            (client_frame(0x89, &[0; 126]), 1002),
            (unmasked, 1002),
            (long_form, 1002),
            (client_frame(0x82, &[0; 1025]), 1009),
            (
                [client_frame(0x02, &[0; 1000]), client_frame(0x80, &[0; 25])].concat(),
                1009,
            ),
            ([client_frame(0x02, b"a"), client_frame(0x82, b"b")].concat(), 1002),
        ];
        for (bytes, code) in cases {
            let fault = read_all(&bytes).expect_err("a fault");
            assert_eq!(fault.code(), code, "{fault}");
        }
    }

    #[test]
    fn an_oversize_frame_is_refused_from_its_header_alone() {
        let mut reader = FrameReader::new(1024, &[0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0], 256);
        assert!(matches!(reader.next(), Err(Fault::TooBig { size: 65_536, .. })));
    }

    #[test]
    fn the_buffer_never_holds_more_than_one_frame_beyond_what_was_parsed() {
        let mut reader = FrameReader::new(1024, &[], 256);
        let mut stream = Vec::new();
        for _ in 0..100 {
            stream.extend(client_frame(0x89, &[7; 125]));
        }
        let mut at = 0;
        let mut pings = 0;
        while at < stream.len() {
            let take = reader.space().min(stream.len() - at);
            assert!(take > 0, "no room to make progress");
            reader.buffer().extend_from_slice(&stream[at..at + take]);
            at += take;
            while let Some(frame) = reader.next().unwrap() {
                assert!(matches!(frame, Frame::Ping(p) if p.len() == 125));
                pings += 1;
            }
            assert!(reader.buffer().len() <= 1024 + MAX_HEADER);
        }
        assert_eq!(pings, 100);
    }
}
