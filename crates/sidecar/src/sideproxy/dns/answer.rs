//! One DNS message in, what to do with it out: the part of the DNS listener that reads
//! untrusted bytes (fuzzed: `fuzz/fuzz_targets/dns_query.rs`). Parsing and writing are
//! hickory-proto's; nothing here looks at the wire format itself.
//!
//! Only standard queries with exactly one question are answered; anything else (a
//! response, another opcode, no or several questions, bytes that do not parse) is
//! dropped without an answer, as a resolver drops garbage.

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

use super::names::{NameRules, Verdict, normalize};

/// The TTL of the sidecar's own answers for targets.
const LOCAL_TTL: u32 = 60;
/// The UDP payload the sidecar advertises in its own answers (EDNS).
const EDNS_PAYLOAD: u16 = 1232;

/// What to do with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Handling {
    /// Not a query this listener answers: no reply.
    Drop,
    /// A target: this reply, made here.
    Local(Vec<u8>),
    /// A passthrough or allowed name: ask the real resolvers (the message as sent).
    Forward(Question),
    /// Refused: this reply, and the name for the audit log.
    Refused(Vec<u8>, Question),
}

/// The one question of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// Lower case, without the final dot.
    pub name: String,
    /// The record type asked for.
    pub qtype: u16,
}

/// Decide what to do with `packet` (a UDP datagram, or a TCP message without its
/// length).
pub fn handle(packet: &[u8], rules: &NameRules) -> Handling {
    let Ok(query) = Message::from_vec(packet) else {
        return Handling::Drop;
    };
    let meta = &query.metadata;
    if meta.message_type != MessageType::Query
        || meta.op_code != OpCode::Query
        || query.queries.len() != 1
    {
        return Handling::Drop;
    }
    let Some(q) = query.queries.first() else {
        return Handling::Drop;
    };
    let question = Question {
        name: normalize(&q.name().to_ascii()),
        qtype: u16::from(q.query_type()),
    };
    match rules.verdict(&question.name) {
        Verdict::Forward => Handling::Forward(question),
        Verdict::Refuse => match reply(&query, ResponseCode::Refused, Vec::new()) {
            Some(bytes) => Handling::Refused(bytes, question),
            None => Handling::Drop,
        },
        Verdict::Local => {
            let name = q.name().clone();
            let answers = match q.query_type() {
                RecordType::A => rules
                    .v4
                    .map(|ip| record(name, RData::A(A(ip))))
                    .into_iter()
                    .collect(),
                RecordType::AAAA => rules
                    .v6
                    .map(|ip| record(name, RData::AAAA(AAAA(ip))))
                    .into_iter()
                    .collect(),
                // Any other type of a target: the name exists, with no such record.
                _ => Vec::new(),
            };
            match reply(&query, ResponseCode::NoError, answers) {
                Some(bytes) => Handling::Local(bytes),
                None => Handling::Drop,
            }
        }
    }
}

/// The answer to `query` with `code` and `answers`.
fn reply(query: &Message, code: ResponseCode, answers: Vec<Record>) -> Option<Vec<u8>> {
    let mut out = Message::response(query.metadata.id, query.metadata.op_code);
    out.metadata = Metadata::response_from_request(&query.metadata);
    out.metadata.response_code = code;
    out.metadata.recursion_available = true;
    out.metadata.authoritative = code == ResponseCode::NoError;
    out.add_queries(query.queries.iter().cloned());
    out.add_answers(answers);
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        out.set_edns(edns);
    }
    out.to_vec().ok()
}

fn record(name: hickory_proto::rr::Name, data: RData) -> Record {
    Record::from_rdata(name, LOCAL_TTL, data)
}

/// Is `reply` a well-formed answer to the query `asked` (same id, a response, the same
/// question)? What the real resolvers send back is checked before it is relayed.
pub fn answers(reply: &[u8], asked: &[u8]) -> Option<Message> {
    let reply_msg = Message::from_vec(reply).ok()?;
    let asked_msg = Message::from_vec(asked).ok()?;
    let same_question = match (reply_msg.queries.first(), asked_msg.queries.first()) {
        (Some(r), Some(a)) => {
            normalize(&r.name().to_ascii()) == normalize(&a.name().to_ascii())
                && r.query_type() == a.query_type()
        }
        _ => false,
    };
    (reply_msg.metadata.message_type == MessageType::Response
        && reply_msg.metadata.id == asked_msg.metadata.id
        && same_question)
        .then_some(reply_msg)
}

/// The key an answer to `query` is cached under: its question exactly as asked (name
/// in the case sent, type, class) and whether it carried EDNS.
pub fn cache_key(query: &[u8]) -> Option<Vec<u8>> {
    let m = Message::from_vec(query).ok()?;
    let q = m.queries.first()?;
    Some(
        format!(
            "{}|{}|{}|{}",
            q.name().to_ascii(),
            u16::from(q.query_type()),
            u16::from(q.query_class()),
            m.edns.is_some()
        )
        .into_bytes(),
    )
}

/// How long an answer may be cached: its smallest TTL; `None` for an answer without
/// records (negative), `Some(0)` for one that must not be kept (truncated, a server
/// failure).
pub fn cache_ttl(reply: &Message) -> Option<std::time::Duration> {
    let code = reply.metadata.response_code;
    if reply.metadata.truncation
        || !(code == ResponseCode::NoError || code == ResponseCode::NXDomain)
    {
        return Some(std::time::Duration::ZERO);
    }
    reply
        .answers
        .iter()
        .map(|r| r.ttl)
        .min()
        .map(|ttl| std::time::Duration::from_secs(u64::from(ttl)))
}

/// A REFUSED for `asked` (its client is over its rate).
pub fn refused(asked: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(asked).ok()?;
    reply(&query, ResponseCode::Refused, Vec::new())
}

/// A SERVFAIL for `asked` (the real resolvers did not answer).
pub fn servfail(asked: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(asked).ok()?;
    reply(&query, ResponseCode::ServFail, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sideproxy::config::Passthrough;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::net::Ipv4Addr;

    fn rules() -> NameRules {
        NameRules::new(
            &["api.openai.com".to_owned()],
            Passthrough::parse("pypi.org").unwrap(),
            Passthrough::default(),
            &["127.0.0.1".parse().unwrap()],
        )
    }

    fn query(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    #[test]
    fn a_target_is_answered_with_the_sidecars_address() {
        let Handling::Local(bytes) = handle(&query("API.openai.com.", RecordType::A), &rules())
        else {
            panic!("not local");
        };
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::LOCALHOST)));
        // The question comes back as asked (0x20 case randomization survives).
        assert_eq!(m.queries[0].name().to_ascii(), "API.openai.com.");
        // No IPv6 bind address: an AAAA question has no answer, but the name exists.
        let Handling::Local(bytes) = handle(&query("api.openai.com.", RecordType::AAAA), &rules())
        else {
            panic!("not local");
        };
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
    }

    #[test]
    fn other_names_are_refused_and_allowed_ones_forwarded() {
        match handle(
            &query("mzxw6ytb.attacker.example.", RecordType::TXT),
            &rules(),
        ) {
            Handling::Refused(bytes, q) => {
                assert_eq!(q.name, "mzxw6ytb.attacker.example");
                assert_eq!(q.qtype, 16);
                let m = Message::from_vec(&bytes).unwrap();
                assert_eq!(m.metadata.response_code, ResponseCode::Refused);
                assert_eq!(m.metadata.id, 4242);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            handle(&query("pypi.org.", RecordType::A), &rules()),
            Handling::Forward(Question {
                name: "pypi.org".into(),
                qtype: 1
            })
        );
    }

    #[test]
    fn what_is_not_one_standard_query_is_dropped() {
        assert_eq!(handle(b"", &rules()), Handling::Drop);
        assert_eq!(handle(&[0xff; 11], &rules()), Handling::Drop);
        let mut bytes = query("api.openai.com.", RecordType::A);
        bytes.truncate(bytes.len() - 3);
        assert_eq!(handle(&bytes, &rules()), Handling::Drop);
        let mut two = Message::from_vec(&query("a.example.", RecordType::A)).unwrap();
        two.add_query(Query::query(
            Name::from_ascii("b.example.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(handle(&two.to_vec().unwrap(), &rules()), Handling::Drop);
        let mut response = Message::from_vec(&query("pypi.org.", RecordType::A)).unwrap();
        response.metadata.message_type = MessageType::Response;
        assert_eq!(
            handle(&response.to_vec().unwrap(), &rules()),
            Handling::Drop
        );
    }

    #[test]
    fn relayed_answers_must_match_the_question() {
        let asked = query("pypi.org.", RecordType::A);
        let mut reply = Message::from_vec(&asked).unwrap();
        reply.metadata.message_type = MessageType::Response;
        assert!(answers(&reply.to_vec().unwrap(), &asked).is_some());
        reply.metadata.id = 1;
        assert!(answers(&reply.to_vec().unwrap(), &asked).is_none());
        let other = query("evil.example.", RecordType::A);
        let mut reply = Message::from_vec(&other).unwrap();
        reply.metadata.message_type = MessageType::Response;
        assert!(answers(&reply.to_vec().unwrap(), &asked).is_none());
    }
}
