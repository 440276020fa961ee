use serde_json::{Value, json};

use super::*;

fn parse(v: Value) -> Result<Secret, SecretError> {
    Secret::from_json(v.to_string().as_bytes())
}

fn round_trip(v: Value) -> Value {
    let secret = parse(v).expect("parses");
    let again = Secret::from_json(secret.to_json().as_bytes()).expect("re-parses");
    assert_eq!(secret, again);
    serde_json::from_str(&secret.to_json()).unwrap()
}

#[test]
fn go_examples_round_trip() {
    let examples = [
        json!({"inject_processor":{"token":"T","fmt":"%s","dst":"x-api-key"},"fly_src_auth":{"allowed_orgs":["ORG"],"allowed_apps":["APP"],"allowed_instances":null},"allowed_hosts":["api.anthropic.com"]}),
        json!({"sigv4_processor":{"access_key":"AK","secret_key":"SK","no_swap":true},"no_auth":{}}),
        json!({"multi_processor":[{"inject_processor":{"token":"x","dst":"A"}},{"inject_processor":{"token":"y","dst":"B"}}],"bearer_auth":{"digest":"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="}}),
    ];
    for e in examples {
        let out = round_trip(e.clone());
        for key in e.as_object().unwrap().keys() {
            assert!(out.get(key).is_some(), "{key} lost: {out}");
        }
    }
}

#[test]
fn every_go_processor_and_auth_key_round_trips() {
    let pem = b64::encode(b"-----BEGIN PRIVATE KEY-----\nMC4=\n-----END PRIVATE KEY-----\n");
    let processors = [
        json!({"inject_processor":{"token":"t","fmt":"Bearer %s","allowed_fmt":["Bearer %s"],"dst":"X","allowed_dst":["X"]}}),
        json!({"inject_hmac_processor":{"key":"dHJ1c3RubzI=","hash":"sha256"}}),
        json!({"inject_body_processor":{"token":"t","placeholder":"<<T>>"}}),
        json!({"oauth2_processor":{"token":{"access_token":"a","refresh_token":"r"}}}),
        json!({"oauth2_body_processor":{"token":{"access_token":"a"},"placeholder":"P"}}),
        json!({"sigv4_processor":{"access_key":"AK","secret_key":"SK","no_swap":false}}),
        json!({"jwt_processor":{"private_key":pem,"email":"e@x","sub":"s","scopes":"a b","token_url":"https://t"}}),
        json!({"client_credentials_processor":{"client_id":"id","client_secret":"cs","token_url":"https://t","scopes":"s"}}),
        json!({"github_app_processor":{"private_key":pem,"app_id":"123456","installation_id":"789012","token_url":""}}),
        json!({"multi_processor":[]}),
    ];
    let auths = [
        json!({"bearer_auth":{"digest":"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="}}),
        json!({"macaroon_auth":{"key":"a2V5"}}),
        json!({"flyio_macaroon_auth":{"access":{"action":"r","orgid":1,"appid":2,"sourceMachine":"m"}}}),
        json!({"fly_src_auth":{"allowed_orgs":["o"],"allowed_apps":[],"allowed_instances":null}}),
        json!({"no_auth":{}}),
    ];
    for p in &processors {
        for a in &auths {
            let mut obj = p.as_object().unwrap().clone();
            obj.extend(a.as_object().unwrap().clone());
            let input = Value::Object(obj);
            let out = round_trip(input.clone());
            let pk = p.as_object().unwrap().keys().next().unwrap();
            let ak = a.as_object().unwrap().keys().next().unwrap();
            assert_eq!(out[pk], input[pk], "{pk}");
            if ak != "fly_src_auth" {
                assert_eq!(out[ak], input[ak], "{ak}");
            }
        }
    }
}

#[test]
fn exactly_one_auth_and_one_processor() {
    let two_auth =
        json!({"inject_processor":{"token":"t"},"no_auth":{},"bearer_auth":{"digest":""}});
    assert!(matches!(parse(two_auth), Err(SecretError::Json(m)) if m.contains("bad auth config")));
    let no_auth = json!({"inject_processor":{"token":"t"}});
    assert!(matches!(parse(no_auth), Err(SecretError::Json(m)) if m.contains("bad auth config")));
    let null_auth = json!({"inject_processor":{"token":"t"},"no_auth":null,"bearer_auth":{}});
    assert!(parse(null_auth).is_ok());
    let two_proc = json!({"inject_processor":{"token":"t"},"oauth2_processor":{},"no_auth":{}});
    assert!(
        matches!(parse(two_proc), Err(SecretError::Json(m)) if m.contains("bad processor config"))
    );
    let unknown_proc = json!({"teleport_processor":{"token":"t"},"no_auth":{}});
    assert!(parse(unknown_proc).is_err());
    let multi_bad =
        json!({"multi_processor":[{"inject_processor":{},"oauth2_processor":{}}],"no_auth":{}});
    assert!(parse(multi_bad).is_err());
}

#[test]
fn empty_lists_survive_and_absent_stays_absent() {
    let out = round_trip(json!({
        "inject_processor":{"token":"t","allowed_fmt":[],"allowed_dst":[]},
        "no_auth":{},
        "allowed_hosts":[]
    }));
    assert_eq!(out["allowed_hosts"], json!([]));
    assert_eq!(out["inject_processor"]["allowed_fmt"], json!([]));
    assert_eq!(out["inject_processor"]["allowed_dst"], json!([]));
    let out =
        round_trip(json!({"inject_processor":{"token":"t"},"no_auth":{},"allowed_hosts":null}));
    assert!(out.get("allowed_hosts").is_none());
}

#[test]
fn unknown_keys_are_ignored_and_case_is_folded() {
    let s = parse(json!({
        "Inject_Processor":{"TOKEN":"t","Dst":"X"},
        "NO_AUTH":{},
        "comment":"ignored",
        "Allowed_Hosts":["a"]
    }))
    .unwrap();
    assert_eq!(s.hosts.allowed_hosts, Some(vec!["a".to_owned()]));
    let ProcessorConfig::Inject(c) = &s.processor else {
        panic!("inject")
    };
    assert_eq!(c.token.expose(), "t");
    assert_eq!(c.fmt_dst.dst, "X");
}

#[test]
fn bad_values_are_refused_without_quoting_them() {
    let bad_b64 =
        json!({"inject_hmac_processor":{"key":"not base64!","hash":"sha256"},"no_auth":{}});
    assert!(parse(bad_b64).is_err());
    let wrong_type = json!({"inject_processor":{"token":["supersecret"]},"no_auth":{}});
    let Err(SecretError::Json(msg)) = parse(wrong_type) else {
        panic!("error")
    };
    assert!(!msg.contains("supersecret"), "{msg}");
    let bad_regex =
        json!({"inject_processor":{"token":"t"},"no_auth":{},"allowed_host_pattern":"("});
    assert!(parse(bad_regex).is_err());
    assert!(Secret::from_json(b"[1]").is_err());
    assert!(Secret::from_json(b"{").is_err());
}

#[test]
fn empty_host_pattern_is_no_validator() {
    let s = parse(json!({"inject_processor":{"token":"t"},"no_auth":{},"allowed_host_pattern":""}))
        .unwrap();
    assert!(s.hosts.is_unrestricted());
}

#[test]
fn stripping_redacts_every_credential() {
    let pem = b64::encode(b"PEMSECRET");
    let secrets = [
        json!({"inject_processor":{"token":"SECRET1"},"bearer_auth":{"digest":b64::encode(b"SECRET2")}}),
        json!({"inject_hmac_processor":{"key":b64::encode(b"SECRET3"),"hash":"sha256"},"macaroon_auth":{"key":b64::encode(b"SECRET4")}}),
        json!({"oauth2_processor":{"token":{"access_token":"SECRET5","refresh_token":"SECRET6"}},"no_auth":{}}),
        json!({"sigv4_processor":{"access_key":"SECRET7","secret_key":"SECRET8"},"no_auth":{}}),
        json!({"jwt_processor":{"private_key":pem,"email":"keep@x"},"no_auth":{}}),
        json!({"client_credentials_processor":{"client_id":"keepid","client_secret":"SECRET9"},"no_auth":{}}),
        json!({"multi_processor":[{"inject_body_processor":{"token":"SECRET10","placeholder":"KEEP"}}],"no_auth":{}}),
    ];
    for s in secrets {
        let secret = parse(s.clone()).unwrap();
        let stripped = secret.stripped_json();
        assert!(!stripped.contains("SECRET"), "{stripped}");
        assert!(
            !stripped.contains(&b64::encode(b"SECRET")[..6]),
            "{stripped}"
        );
        assert!(!stripped.contains(&pem), "{stripped}");
        assert!(stripped.contains("REDACTED"), "{stripped}");
        assert!(!format!("{secret:?}").contains("SECRET"));
    }
    let kept = parse(json!({"jwt_processor":{"private_key":pem,"email":"keep@x"},"no_auth":{}}))
        .unwrap()
        .stripped_json();
    assert!(kept.contains("keep@x"));
}

#[test]
fn seal_and_open() {
    let key = OpenKey::generate();
    let secret = parse(json!({"inject_processor":{"token":"t"},"no_auth":{}})).unwrap();
    let sealed = secret.seal(&key.seal_key());
    let keys = OpenKeys::new(key, vec![]);
    assert_eq!(
        Secret::open(&keys, &format!(" {sealed}\n")).unwrap(),
        secret
    );
    assert_eq!(Secret::open(&keys, "###"), Err(SecretError::Encoding));
    let urlsafe = sealed.replace('+', "-").replace('/', "_");
    if urlsafe != sealed {
        assert_eq!(Secret::open(&keys, &urlsafe), Err(SecretError::Encoding));
    }
    let other = OpenKeys::new(OpenKey::generate(), vec![]);
    assert_eq!(Secret::open(&other, &sealed), Err(SecretError::Decryption));
}
