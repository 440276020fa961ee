//! The msgpack that superfly/macaroon writes: vmihailenco/msgpack with structs as arrays and
//! compact integers, i.e. always the smallest form (fixint/u8…/u64, fixstr/str8…,
//! bin8…, fixarray/array16…).
//!
//! Writing is `rmp::encode` into a `ByteBuf`, which picks the smallest forms exactly as
//! Go does. Reading uses `rmp` for markers, integers and array lengths; what `rmp` lacks
//! is written here: borrowing str/bin payloads, skipping a value of any type (to keep a
//! caveat body's bytes exactly as received, for the MAC), and rendering an unknown body
//! as JSON for `inspect`. `rmpv` would do the last two by building a value tree; a
//! skipper that only moves a cursor is shorter and allocates nothing. Nesting is capped
//! so a hostile token cannot exhaust the stack.

use rmp::Marker;
use rmp::decode;
use rmp::encode::{self, ByteBuf};
use serde_json::Value;

use super::MacaroonError;
use tokenizer_core::b64;

/// Deepest nesting accepted inside a caveat body.
const MAX_DEPTH: usize = 32;

type Result<T> = std::result::Result<T, MacaroonError>;

/// Appends msgpack values to a buffer, smallest form first.
#[derive(Default)]
pub(super) struct Writer(ByteBuf);

/// A cursor over msgpack bytes.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

// === impl Writer ===

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn array_len(&mut self, len: usize) {
        let Ok(_) = encode::write_array_len(&mut self.0, wire_len(len));
    }

    pub fn uint(&mut self, value: u64) {
        let Ok(_) = encode::write_uint(&mut self.0, value);
    }

    pub fn sint(&mut self, value: i64) {
        let Ok(_) = encode::write_sint(&mut self.0, value);
    }

    pub fn str(&mut self, value: &str) {
        let Ok(_) = encode::write_str_len(&mut self.0, wire_len(value.len()));
        self.raw(value.as_bytes());
    }

    pub fn bin(&mut self, value: &[u8]) {
        let Ok(_) = encode::write_bin_len(&mut self.0, wire_len(value.len()));
        self.raw(value);
    }

    pub fn bool(&mut self, value: bool) {
        let Ok(()) = encode::write_bool(&mut self.0, value);
    }

    /// Already-encoded msgpack.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.0.as_mut_vec().extend_from_slice(bytes);
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.0.into_vec()
    }
}

/// msgpack lengths are 32-bit. Everything encoded here comes from a request header or
/// the command line, both far below 4 GiB, so the conversion cannot fail.
#[allow(clippy::expect_used)] // cannot fail: see the comment at the call
fn wire_len(len: usize) -> u32 {
    u32::try_from(len).expect("msgpack values here are far below 4 GiB")
}

// === impl Reader ===

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn array_len(&mut self) -> Result<usize> {
        let len = decode::read_array_len(&mut self.rest)
            .map_err(|_| MacaroonError::Malformed("expected an array"))?;
        Ok(len as usize)
    }

    pub fn uint(&mut self) -> Result<u64> {
        decode::read_int(&mut self.rest)
            .map_err(|_| MacaroonError::Malformed("expected an unsigned integer"))
    }

    pub fn int(&mut self) -> Result<i64> {
        decode::read_int(&mut self.rest)
            .map_err(|_| MacaroonError::Malformed("expected an integer"))
    }

    pub fn bool(&mut self) -> Result<bool> {
        decode::read_bool(&mut self.rest).map_err(|_| MacaroonError::Malformed("expected a bool"))
    }

    /// A bin or str payload; nil reads as empty. Go's decoder accepts all three for both
    /// `[]byte` and `string` fields.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = match self.marker()? {
            Marker::Null => 0,
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 | Marker::Bin8 => self.be_len(1)?,
            Marker::Str16 | Marker::Bin16 => self.be_len(2)?,
            Marker::Str32 | Marker::Bin32 => self.be_len(4)?,
            _ => return Err(MacaroonError::Malformed("expected bytes or a string")),
        };
        self.take(len)
    }

    /// A UTF-8 string (str, bin or nil).
    pub fn string(&mut self) -> Result<String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| MacaroonError::Malformed("string is not UTF-8"))
    }

    /// A `[]string`; nil reads as empty, as a nil Go slice.
    pub fn strings(&mut self) -> Result<Vec<String>> {
        if self.rest.first() == Some(&0xc0) {
            self.rest = &self.rest[1..];
            return Ok(Vec::new());
        }
        let len = self.array_len()?;
        // Each element takes at least one byte: do not trust the length for capacity.
        let mut out = Vec::with_capacity(len.min(self.rest.len()));
        for _ in 0..len {
            out.push(self.string()?);
        }
        Ok(out)
    }

    /// The bytes of the next value, whatever its type, exactly as they are.
    pub fn raw_value(&mut self) -> Result<&'a [u8]> {
        let start = self.rest;
        self.skip(MAX_DEPTH)?;
        Ok(&start[..start.len() - self.rest.len()])
    }

    /// The next value as JSON, the way Go's `encoding/json` shows a msgpack value decoded
    /// into `interface{}`: bin as base64, map keys as strings, extensions as null.
    pub fn json(&mut self) -> Result<Value> {
        self.json_at(MAX_DEPTH)
    }

    fn skip(&mut self, depth: usize) -> Result<()> {
        let depth = depth
            .checked_sub(1)
            .ok_or(MacaroonError::Malformed("nested too deeply"))?;
        let (scalar, items) = match self.marker()? {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                (0, 0)
            }
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::FixStr(n) => (usize::from(n), 0),
            Marker::Str8 | Marker::Bin8 => (self.be_len(1)?, 0),
            Marker::Str16 | Marker::Bin16 => (self.be_len(2)?, 0),
            Marker::Str32 | Marker::Bin32 => (self.be_len(4)?, 0),
            Marker::FixArray(n) => (0, usize::from(n)),
            Marker::Array16 => (0, self.be_len(2)?),
            Marker::Array32 => (0, self.be_len(4)?),
            Marker::FixMap(n) => (0, 2 * usize::from(n)),
            Marker::Map16 => (0, self.be_len(2)?.saturating_mul(2)),
            Marker::Map32 => (0, self.be_len(4)?.saturating_mul(2)),
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (1 + self.be_len(1)?, 0),
            Marker::Ext16 => (1 + self.be_len(2)?, 0),
            Marker::Ext32 => (1 + self.be_len(4)?, 0),
            Marker::Reserved => return Err(MacaroonError::Malformed("reserved msgpack byte")),
        };
        self.take(scalar)?;
        // Each item is at least one byte, so a lying length fails fast on the input's end.
        for _ in 0..items {
            self.skip(depth)?;
        }
        Ok(())
    }

    fn json_at(&mut self, depth: usize) -> Result<Value> {
        let depth = depth
            .checked_sub(1)
            .ok_or(MacaroonError::Malformed("nested too deeply"))?;
        let Some(&first) = self.rest.first() else {
            return Err(MacaroonError::Malformed("truncated"));
        };
        let value = match Marker::from_u8(first) {
            Marker::Null => {
                self.marker()?;
                Value::Null
            }
            Marker::True | Marker::False => Value::Bool(self.bool()?),
            Marker::FixNeg(_) | Marker::I8 | Marker::I16 | Marker::I32 | Marker::I64 => {
                Value::from(self.int()?)
            }
            Marker::FixPos(_) | Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64 => {
                Value::from(self.uint()?)
            }
            Marker::F32 => Value::from(f64::from(
                decode::read_f32(&mut self.rest)
                    .map_err(|_| MacaroonError::Malformed("bad float"))?,
            )),
            Marker::F64 => Value::from(
                decode::read_f64(&mut self.rest)
                    .map_err(|_| MacaroonError::Malformed("bad float"))?,
            ),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                Value::String(String::from_utf8_lossy(self.bytes()?).into_owned())
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                Value::String(b64::encode(self.bytes()?))
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let len = self.array_len()?;
                let mut items = Vec::with_capacity(len.min(self.rest.len()));
                for _ in 0..len {
                    items.push(self.json_at(depth)?);
                }
                Value::Array(items)
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let len = decode::read_map_len(&mut self.rest)
                    .map_err(|_| MacaroonError::Malformed("expected a map"))?;
                let mut map = serde_json::Map::new();
                for _ in 0..len {
                    let key = match self.json_at(depth)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    map.insert(key, self.json_at(depth)?);
                }
                Value::Object(map)
            }
            _ => {
                self.skip(depth + 1)?;
                Value::Null
            }
        };
        Ok(value)
    }

    fn marker(&mut self) -> Result<Marker> {
        let (&byte, rest) = self
            .rest
            .split_first()
            .ok_or(MacaroonError::Malformed("truncated"))?;
        self.rest = rest;
        Ok(Marker::from_u8(byte))
    }

    /// A big-endian length of `width` bytes.
    fn be_len(&mut self, width: usize) -> Result<usize> {
        let bytes = self.take(width)?;
        Ok(bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if len > self.rest.len() {
            return Err(MacaroonError::Malformed("truncated"));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }
}
