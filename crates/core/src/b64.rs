//! Standard base64 with padding, decoded the way Go's `encoding/base64` does.
//!
//! Go's `StdEncoding` skips `\r` and `\n` anywhere in the input and insists on padding;
//! URL-safe characters are an error.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Standard base64 with padding.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decode strictly (no line breaks allowed).
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(text)
}

/// Decode a JSON `[]byte` field: line breaks are ignored, padding is required.
pub fn decode_go_bytes(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if !text.contains(['\r', '\n']) {
        return STANDARD.decode(text);
    }
    let cleaned = Zeroizing::new(text.replace(['\r', '\n'], ""));
    STANDARD.decode(cleaned.as_bytes())
}

/// Decode a sealed secret from a header or the command line: surrounding whitespace is
/// trimmed first, as Go's `strings.TrimSpace` does.
pub fn decode_token(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    decode_go_bytes(text.trim())
}
