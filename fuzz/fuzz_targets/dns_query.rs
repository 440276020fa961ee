//! The sidecar's DNS entry point (`DNS_ADDRESS`): any datagram through `answer::handle`
//! never panics; a reply it makes parses back as a response to the same id; a question
//! it forwards is for a name the rules allow. `answers` (checking a resolver's reply)
//! on the input against itself and split in two.

#![no_main]

use std::sync::LazyLock;

use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use tokenizer::sideproxy::config::Passthrough;
use tokenizer::sideproxy::dns::answer::{Handling, answers, handle};
use tokenizer::sideproxy::dns::names::{NameRules, Verdict};

static RULES: LazyLock<NameRules> = LazyLock::new(|| {
    NameRules::new(
        &["api.openai.com".to_owned()],
        Passthrough::parse("pypi.org,*.pythonhosted.org").expect("passthrough"),
        Passthrough::parse("*.corp.example").expect("allow"),
        &["127.0.0.1".parse().expect("ip"), "::1".parse().expect("ip")],
    )
});

fuzz_target!(|data: &[u8]| {
    match handle(data, &RULES) {
        Handling::Drop => {}
        Handling::Local(reply) | Handling::Refused(reply, _) => {
            let m = Message::from_vec(&reply).expect("our reply parses");
            assert_eq!(m.metadata.message_type, MessageType::Response);
            assert_eq!(Some(&m.metadata.id.to_be_bytes()[..]), data.get(..2));
        }
        Handling::Forward(q) => assert_eq!(RULES.verdict(&q.name), Verdict::Forward),
    }
    let _ = answers(data, data);
    let mid = data.len() / 2;
    let _ = answers(&data[..mid], &data[mid..]);
});
