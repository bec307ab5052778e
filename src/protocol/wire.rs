//! The encoding's primitives, written and read by hand: bincode 2's standard configuration
//! (little endian, variable-length integers), byte for byte.
//!
//! Why by hand: since protocol v3 what follows an entity's kind depends on the game's schema,
//! which bincode's derives cannot see. Reading by hand also makes every message canonical by
//! construction: [`Reader`] refuses a varint that is not in its shortest form, so the old
//! decode-then-re-encode check is gone, and it never allocates more than the bytes still to
//! read could fill.

use thiserror::Error;

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("truncated: the message ends inside a value")]
    Truncated,
    /// A varint longer than it needs to be, or a 128-bit prefix (`fe`, `ff`).
    #[error("non-canonical varint")]
    NonCanonical,
    /// A value that does not fit its field.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// A tag or index the protocol does not define.
    #[error("unknown {0}")]
    Unknown(&'static str),
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in a string")]
    Utf8,
    /// Bytes after the message.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// A value the protocol forbids (the reason says which).
    #[error("{0}")]
    Invalid(&'static str),
}

/// Appends encoded values to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    /// A varint: `v < 251` in one byte, else `fb`/`fc`/`fd` and 2, 4 or 8 bytes LE.
    pub(crate) fn varint(&mut self, v: u64) {
        match v {
            0..=250 => self.0.push(v as u8),
            251..=0xffff => {
                self.0.push(0xfb);
                self.0.extend_from_slice(&(v as u16).to_le_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.0.push(0xfc);
                self.0.extend_from_slice(&(v as u32).to_le_bytes());
            }
            _ => {
                self.0.push(0xfd);
                self.0.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.varint(u64::from(v));
    }

    /// A signed 32-bit value, zigzag-encoded then as a varint.
    pub(crate) fn i32(&mut self, v: i32) {
        self.u32(((v << 1) ^ (v >> 31)) as u32);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }

    /// An `Option<u32>`: `00`, or `01` and the number (a checksum).
    pub(crate) fn option_u32(&mut self, v: Option<u32>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u32(v);
            }
            None => self.u8(0),
        }
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
}

/// Reads values from a message, refusing anything but the canonical encoding.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Fails unless everything was read.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        // Each prefix is followed by a value that needs it: a value that fits a shorter form
        // must use that form.
        let (v, shortest) = match self.u8()? {
            b @ 0..=250 => return Ok(u64::from(b)),
            0xfb => {
                let v = u64::from(u16::from_le_bytes(self.array()?));
                (v, v >= 251)
            }
            0xfc => {
                let v = u64::from(u32::from_le_bytes(self.array()?));
                (v, v > 0xffff)
            }
            0xfd => {
                let v = u64::from_le_bytes(self.array()?);
                (v, v > 0xffff_ffff)
            }
            _ => return Err(DecodeError::NonCanonical), // fe, ff: 128-bit prefixes
        };
        if shortest {
            Ok(v)
        } else {
            Err(DecodeError::NonCanonical)
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint()?).map_err(|_| DecodeError::OutOfRange("u32"))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        let z = self.u32()?;
        Ok(((z >> 1) as i32) ^ -((z & 1) as i32))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Unknown("bool value")),
        }
    }

    /// An option's tag: `00` none, `01` some.
    pub(crate) fn option(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Unknown("option tag")),
        }
    }

    /// A string of at most `max` bytes.
    pub(crate) fn str(&mut self, max: usize) -> Result<String, DecodeError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(DecodeError::OutOfRange("string length"));
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Utf8)
    }

    /// A count of elements each at least `min_size` bytes long: refused at once if the bytes
    /// left could not hold them, so a hostile count never makes the reader allocate.
    pub(crate) fn count(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n.saturating_mul(min_size.max(1) as u64) > self.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(v: u64) -> Vec<u8> {
        let mut w = Writer::default();
        w.varint(v);
        w.0
    }

    #[test]
    fn varints_round_trip_in_their_shortest_form() {
        for v in [0, 1, 250, 251, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let bytes = varint(v);
            let mut r = Reader::new(&bytes);
            assert_eq!(r.varint(), Ok(v));
            r.finish().unwrap();
        }
        assert_eq!(varint(250), [250]);
        assert_eq!(varint(251), [0xfb, 251, 0]);
        assert_eq!(varint(1000), [0xfb, 0xe8, 0x03]);
    }

    #[test]
    fn longer_forms_and_wide_prefixes_are_refused() {
        for bytes in [
            &[0xfb, 5, 0][..],
            &[0xfc, 0xff, 0xff, 0, 0],
            &[0xfd, 1, 0, 0, 0, 0, 0, 0, 0],
            &[0xfe],
            &[0xff],
        ] {
            assert_eq!(Reader::new(bytes).varint(), Err(DecodeError::NonCanonical), "{bytes:?}");
        }
    }

    #[test]
    fn zigzag_matches_the_documented_mapping() {
        for (v, z) in [
            (0, 0u32),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (80, 160),
            (-3, 5),
            (i32::MIN, u32::MAX),
        ] {
            let mut w = Writer::default();
            w.i32(v);
            assert_eq!(Reader::new(&w.0).u32(), Ok(z));
            assert_eq!(Reader::new(&w.0).i32(), Ok(v));
        }
    }

    #[test]
    fn counts_that_the_bytes_cannot_hold_fail_without_allocating() {
        assert_eq!(
            Reader::new(&[0xfc, 0, 0, 0, 0x10]).count(1),
            Err(DecodeError::Truncated)
        );
        assert_eq!(Reader::new(&[3, 0, 0]).count(1), Err(DecodeError::Truncated));
        assert_eq!(Reader::new(&[2, 0, 0]).count(1), Ok(2));
        assert_eq!(
            Reader::new(&[2, 0x61, 0x61]).str(1),
            Err(DecodeError::OutOfRange("string length"))
        );
    }
}
