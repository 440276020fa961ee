//! A push's ref-update commands (`allowed_git_refs`): the reader never panics, reads the
//! same commands whether the body arrives whole or a few bytes at a time, and each
//! command it returns names a ref git would accept; `is_push` on any path.
//!
//! Input: a chunk size byte, then the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenizer::policy::git_refs::{CommandReader, is_push, is_valid_ref};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let mut whole = CommandReader::default();
    whole.advance(body);
    let whole = whole.finish();

    let step = usize::from(chunk.max(1));
    let mut dripped = CommandReader::default();
    let mut end = 0;
    while end < body.len() {
        end = (end + step).min(body.len());
        if dripped.advance(&body[..end]) {
            break;
        }
    }
    let dripped = dripped.finish();
    assert_eq!(whole, dripped, "the same body read in chunks of {step} differs");
    if let Ok(updates) = whole {
        for u in updates {
            assert!(is_valid_ref(&u.name), "{:?}", u.name);
        }
    }
    let _ = is_push(&String::from_utf8_lossy(body), [body]);
});
