use std::sync::Arc;

use super::*;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn generates_then_loads_and_keeps_the_key_private() {
    let dir = tempfile::tempdir().unwrap();
    let targets = names(&["api.openai.com", "api.github.com"]);
    let (ca, how) = CertificateAuthority::load_or_generate(dir.path(), &targets).unwrap();
    assert_eq!(how, Provenance::Generated);
    assert_eq!(
        ca.permitted(),
        ["api.github.com", "api.openai.com", "localhost"]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (again, how) = CertificateAuthority::load_or_generate(dir.path(), &targets).unwrap();
    assert_eq!(how, Provenance::Loaded);
    assert_eq!(again.cert_pem(), ca.cert_pem());
}

#[test]
fn regenerates_when_targets_no_longer_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) =
        CertificateAuthority::load_or_generate(dir.path(), &names(&["api.openai.com"])).unwrap();
    // A subdomain of a permitted name still fits.
    let (_, how) =
        CertificateAuthority::load_or_generate(dir.path(), &names(&["eu.api.openai.com"])).unwrap();
    assert_eq!(how, Provenance::Loaded);
    let (second, how) =
        CertificateAuthority::load_or_generate(dir.path(), &names(&["api.anthropic.com"])).unwrap();
    assert_eq!(how, Provenance::Regenerated);
    assert_ne!(first.cert_pem(), second.cert_pem());
    assert!(name_fits(second.permitted(), "api.anthropic.com"));
}

#[test]
fn refuses_half_pairs_garbage_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
    assert!(matches!(
        CertificateAuthority::load_or_generate(dir.path(), &[]),
        Err(CaError::HalfPair(..))
    ));
    std::fs::write(dir.path().join("ca-key.pem"), "not a key").unwrap();
    assert!(matches!(
        CertificateAuthority::load_or_generate(dir.path(), &[]),
        Err(CaError::Invalid { .. })
    ));
    let other = tempfile::tempdir().unwrap();
    for bad in ["", "a..b", "bad name", "*.x.com", "1.2.3.4:443"] {
        assert!(
            CertificateAuthority::load_or_generate(other.path(), &names(&[bad])).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn refuses_a_ca_without_name_constraints() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("ca-key.pem"), key.serialize_pem()).unwrap();
    let err = CertificateAuthority::load_or_generate(dir.path(), &[])
        .err()
        .unwrap();
    assert!(err.to_string().contains("no name constraints"), "{err}");
}

#[test]
fn cache_forges_only_known_names_and_reuses_leaves() {
    let ca = CertificateAuthority::generate(&names(&["api.test", "localhost"])).unwrap();
    let cache = CertCache::new(ca, names(&["api.test", "localhost"]), 8);
    let a = cache.get("api.test").unwrap();
    let b = cache.get("API.TEST.").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(cache.get("other.test").is_none());
    assert_eq!(a.cert.len(), 2, "leaf plus CA");
}

#[test]
fn cache_is_bounded() {
    let list = names(&["a.test", "b.test", "c.test"]);
    let ca = CertificateAuthority::generate(&list).unwrap();
    let cache = CertCache::new(ca, list, 2);
    cache.warm();
    assert!(cache.len() <= 2);
    assert!(cache.get("c.test").is_some());
}

#[test]
fn refuses_a_key_from_another_pair_and_names_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_generate(dir.path(), &names(&["api.test"])).unwrap();
    let other = KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("ca-key.pem"), other.serialize_pem()).unwrap();
    let err = CertificateAuthority::load_or_generate(dir.path(), &names(&["api.test"]))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("ca-key.pem") && err.contains("does not belong"),
        "{err}"
    );
    std::fs::write(dir.path().join("ca-key.pem"), "garbage").unwrap();
    let err = CertificateAuthority::load_or_generate(dir.path(), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("ca-key.pem"), "{err}");
}
