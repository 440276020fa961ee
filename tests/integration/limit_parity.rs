//! One description of `rate_limit` and `max_requests`, two places that keep the counters:
//! this process's table and the fleet's Lua script on a real Redis. The steps in Rust and
//! in Lua agree on every input, and the two whole implementations decide the same
//! sequences of requests the same way (all-or-none, bursts, waits, exhaustion, a table
//! too small for one request).

use std::time::{Duration, Instant};

use tokenizer::fleet::{FailureMode, Fleet, FleetConfig};
use tokenizer::policy::limits::steps::{self, rate_step, use_step};
use tokenizer::policy::{Limit, Limiter, RateLimit, Refusal, Revocations};
use tokenizer_core::SecretString;

use crate::support::fleet::Redis;

/// `steps::LUA` followed by `body`, run with `args` on `redis`.
fn eval(redis: &mut redis::Connection, body: &str, args: &[i64]) -> (i64, i64) {
    let script = redis::Script::new(&format!("{}{body}", steps::LUA));
    let mut call = script.prepare_invoke();
    for a in args {
        call.arg(*a);
    }
    call.invoke(redis).unwrap()
}

#[test]
fn the_rust_and_lua_steps_agree_on_every_input() {
    let server = Redis::start();
    let mut redis = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    const RATE: &str = "
        local ahead, wait = rate_step(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
        return {ahead or -1, wait or -1}";
    const USES: &str = "return {use_step(tonumber(ARGV[1]), tonumber(ARGV[2])) or -1, 0}";

    let micros = [
        0,
        1,
        999,
        1_000,
        333_333,
        666_666,
        1_000_000,
        59_000_000,
        86_400_000_000,
    ];
    let mut cases = 0;
    for &ahead in &micros {
        for &interval in &micros[1..] {
            for &burst in &micros {
                let us = |n: i64| Duration::from_micros(n as u64);
                let rust = match rate_step(us(ahead), us(interval), us(burst)) {
                    Ok(next) => (next.as_micros() as i64, -1),
                    Err(wait) => (-1, wait.as_micros() as i64),
                };
                let lua = eval(&mut redis, RATE, &[ahead, interval, burst]);
                assert_eq!(
                    lua, rust,
                    "rate_step(ahead {ahead} µs, interval {interval} µs, burst {burst} µs)"
                );
                cases += 1;
            }
        }
    }
    for used in 0..5 {
        for max in 0..5 {
            let rust = use_step(used as u64, max as u64).map_or(-1, |n| n as i64);
            assert_eq!(
                eval(&mut redis, USES, &[used, max]).0,
                rust,
                "use_step({used}, {max})"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 9 * 8 * 9 + 25);
}

/// How a decision compares across the two: waits to the second (the clocks differ).
#[derive(Debug, PartialEq)]
enum Decided {
    Admitted,
    Wait(u64),
    Full,
    Exhausted,
}

fn decided(r: Result<(), Refusal>) -> Decided {
    match r {
        Ok(()) => Decided::Admitted,
        Err(Refusal::Wait(d)) => Decided::Wait(d.as_secs_f64().round() as u64),
        Err(Refusal::Full(_)) => Decided::Full,
        Err(Refusal::Exhausted) => Decided::Exhausted,
        Err(Refusal::Unavailable) => panic!("the fleet was unavailable"),
    }
}

fn limit(key: u8, pool: u8, rate: Option<&str>, max: Option<u64>) -> Limit {
    Limit {
        key: [key; 32],
        pool: [pool; 32],
        rate: rate.map(|r| RateLimit::parse(r).unwrap()),
        max_requests: max,
        keep_uses: Duration::from_secs(3600),
    }
}

#[tokio::test]
async fn the_fleet_and_one_process_decide_every_sequence_alike() {
    let server = Redis::start();
    let a = limit(1, 1, Some("3/min"), None);
    let b = limit(2, 1, None, Some(2));
    let c = limit(3, 2, None, Some(5));
    let d = limit(4, 2, None, Some(1));
    // (name, counters the table holds, the requests in order: each the limits it carries)
    let sequences: Vec<(&str, usize, Vec<Vec<Limit>>)> = vec![
        ("a burst, then waits", 100, vec![vec![a]; 5]),
        ("uses run out", 100, vec![vec![b]; 4]),
        (
            "one refused limit spends none of the others",
            100,
            vec![
                vec![c, d],
                vec![c, d],
                vec![c],
                vec![c],
                vec![c],
                vec![c],
                vec![c],
            ],
        ),
        (
            "a request needing more counters than the table",
            1,
            vec![vec![a, b]],
        ),
    ];
    for (prefix, (name, capacity, requests)) in sequences.into_iter().enumerate() {
        let local = Limiter::new(capacity);
        let config = FleetConfig {
            url: SecretString::new(server.url()),
            prefix: format!("parity{prefix}:"),
            failure: FailureMode::Closed,
            timeout: Duration::from_secs(2),
            ca_file: None,
        };
        let fleet = Fleet::start(&config, Revocations::default(), capacity).unwrap();
        assert!(fleet.ready(Duration::from_secs(10)).await, "{name}: Redis");
        let mut here = Vec::new();
        let mut there = Vec::new();
        for request in &requests {
            here.push(decided(local.take(request, Instant::now())));
            there.push(decided(fleet.take(request).await.unwrap()));
        }
        assert_eq!(here, there, "{name}: this process vs the fleet");
        // Each sequence shows what it is named for.
        let refusals = here.iter().filter(|d| **d != Decided::Admitted).count();
        assert!(refusals > 0, "{name}: nothing was refused: {here:?}");
    }
}
