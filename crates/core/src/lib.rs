//! The tokenizer's primitives: what every other part uses and that uses nothing of the
//! tokenizer's own.
//!
//! - [`keys`]: the X25519 open key and seal key, and libsodium-compatible sealed boxes
//!   (Go's `box.SealAnonymous`);
//! - [`hazmat`]: containers for credential material, zeroized on drop, never shown by
//!   `Debug`;
//! - [`b64`]: base64 the way Go's `encoding/base64` reads it;
//! - [`mac`](mod@mac): HMAC-SHA256;
//! - [`percent`]: percent-encoding and decoding in the spellings the proxy needs;
//! - [`glob`]: the one `*`/`**` matcher (paths, URIs, DNS names, claim values);
//! - [`time`]: timestamps (unix seconds or RFC 3339);
//! - [`settings`]: parsing settings (sizes, durations, Go booleans, CIDRs, listen
//!   addresses, the open keys) with one style of error.
//!
//! ```
//! use tokenizer_core::keys::OpenKey;
//!
//! let open = OpenKey::generate();
//! let sealed = open.seal_key().seal_base64(b"{\"hello\":1}");
//! let opened = tokenizer_core::keys::OpenKeys::new(open, vec![])
//!     .open(&tokenizer_core::b64::decode(&sealed).unwrap())
//!     .unwrap();
//! assert_eq!(&opened[..], b"{\"hello\":1}");
//! ```

#![warn(missing_docs)]

pub mod b64;
pub mod glob;
pub mod hazmat;
pub mod keys;
pub mod mac;
pub mod percent;
pub mod settings;
pub mod time;

pub use hazmat::{REDACTED, SecretBytes, SecretString};
pub use keys::{KeyError, OpenError, OpenKey, OpenKeys, SEAL_OVERHEAD, SealKey};

/// Request-time parameters for a secret's processor (`dst`, `fmt`, `msg`, `st`,
/// `placeholder`, …), from the `; {…}` part of a `Proxy-Tokenizer` line.
pub type Params = std::collections::HashMap<String, String>;
