//! One macaroon: `[nonce, location, caveats, tail]`, its text form and its HMAC chain.
//!
//! - Nonce: `[kid bin, rnd bin, proof bool]`, or the legacy `[kid, rnd]`.
//! - Text: `fm2_` + standard base64 (padded) of the msgpack; `fm1r_`/`fm1a_` are read too.
//! - Chain: `t = HMAC(key, nonce)`, then `t = HMAC(t, 0x92 ‖ type ‖ body)` per caveat,
//!   then, for proof macaroons, `t = HMAC("proof-signature-finalization", t)`; the
//!   token is genuine when `t` equals the tail (compared in constant time).
//!
//! The nonce and caveats are MACed as the bytes received, so a token from any encoder
//! verifies; minted ones use the smallest msgpack forms, byte for byte what Go writes.

use std::fmt;

use crypto_box::aead::OsRng;
use crypto_box::aead::rand_core::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::wire::{Reader, Writer};
use super::{Caveat, CaveatSet, MacaroonError, strip_scheme};
use tokenizer_core::{REDACTED, b64};

/// The label of tokens this code writes.
const LABEL: &str = "fm2";
/// Labels read as macaroons: v2, and v1 permission and discharge tokens.
const LABELS: [&str; 3] = ["fm2", "fm1r", "fm1a"];
/// Key of the last HMAC step of proof macaroons.
const FINALIZATION_KEY: &[u8] = b"proof-signature-finalization";
/// Random bytes in a new nonce.
const RND_LEN: usize = 16;

type Tail = Zeroizing<[u8; 32]>;

/// A decoded macaroon. Its caveats are not trusted until [`Macaroon::verify`] says so.
#[derive(Clone, PartialEq, Eq)]
pub struct Macaroon {
    nonce: Nonce,
    location: String,
    caveats: CaveatSet,
    tail: Tail,
}

/// Who minted the macaroon (`kid`), plus randomness.
#[derive(Clone, PartialEq, Eq)]
struct Nonce {
    kid: Vec<u8>,
    /// `None` for the legacy two-field nonce, which has no proof flag.
    proof: Option<bool>,
    /// The nonce's msgpack as received or minted: the MAC chain starts from these bytes.
    raw: Vec<u8>,
}

// === impl Macaroon ===

impl Macaroon {
    /// A macaroon without caveats: a fresh random nonce naming `kid`, signed with `key`.
    pub fn new(key: &[u8], kid: &[u8], location: &str) -> Self {
        let nonce = Nonce::random(kid);
        let tail = hmac(key, &nonce.raw);
        Self {
            nonce,
            location: location.to_owned(),
            caveats: CaveatSet::new(),
            tail,
        }
    }

    /// Parse one token: `fm2_…` (or `fm1r_`/`fm1a_`), optionally after `FlyV1 `/`Bearer `.
    pub fn decode(token: &str) -> Result<Self, MacaroonError> {
        let token = strip_scheme(token);
        if token.contains(',') {
            return Err(MacaroonError::Malformed(
                "several tokens where one was expected",
            ));
        }
        let Some(payload) = payload(token) else {
            return Err(MacaroonError::Malformed("not an fm2_ token"));
        };
        Self::from_base64(payload)
    }

    /// Parse the base64 after the label.
    pub(super) fn from_base64(payload: &str) -> Result<Self, MacaroonError> {
        let bytes = b64::decode_go_bytes(payload)
            .map(Zeroizing::new)
            .map_err(|_| MacaroonError::Malformed("bad base64"))?;
        Self::from_bytes(&bytes)
    }

    /// Parse the msgpack form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MacaroonError> {
        let mut r = Reader::new(bytes);
        if r.array_len()? != 4 {
            return Err(MacaroonError::Malformed("a macaroon has 4 fields"));
        }
        let nonce = Nonce::read(&mut r)?;
        let location = r.string()?;
        let caveats = CaveatSet::read(&mut r)?;
        let tail: [u8; 32] = r
            .bytes()?
            .try_into()
            .map_err(|_| MacaroonError::Malformed("tail is not 32 bytes"))?;
        if !r.is_empty() {
            return Err(MacaroonError::Malformed("trailing bytes"));
        }
        Ok(Self {
            nonce,
            location,
            caveats,
            tail: Zeroizing::new(tail),
        })
    }

    /// The msgpack form. The token is a bearer credential: callers must not log it.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.array_len(4);
        w.raw(&self.nonce.raw);
        w.str(&self.location);
        self.caveats.write(&mut w);
        w.bin(&self.tail[..]);
        Zeroizing::new(w.into_vec())
    }

    /// `fm2_<base64>`, one token of a `FlyV1` header.
    pub fn encode(&self) -> String {
        format!("{LABEL}_{}", b64::encode(&self.to_bytes()))
    }

    /// `FlyV1 fm2_<base64>`: a whole `Proxy-Authorization` value, as Go's
    /// `ToAuthorizationHeader` writes it.
    pub fn to_header(&self) -> String {
        format!("{} {}", super::SCHEME, self.encode())
    }

    /// Who issued it: [`super::LOCATION`] for tokenizer's macaroons, the third party's
    /// location for a discharge.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The key id in the nonce (tokenizer's is `sha256(key)[:16]`).
    pub fn kid(&self) -> &[u8] {
        &self.nonce.kid
    }

    /// A proof macaroon's tail is finalized: no caveats can be added.
    pub fn is_proof(&self) -> bool {
        self.nonce.proof == Some(true)
    }

    /// The caveats, unverified: use [`Macaroon::verify`] before trusting them.
    pub fn unverified_caveats(&self) -> &CaveatSet {
        &self.caveats
    }

    /// Add caveats; anyone can, no key needed. Caveats already present are skipped.
    pub fn attenuate(&mut self, caveats: Vec<Caveat>) -> Result<(), MacaroonError> {
        if self.is_proof() {
            return Err(MacaroonError::Finalized);
        }
        self.add(caveats);
        Ok(())
    }

    /// Add caveats to a macaroon that is not a proof.
    pub(super) fn add(&mut self, caveats: Vec<Caveat>) {
        for caveat in caveats {
            if let Some(packed) = self.caveats.push_new(caveat) {
                self.tail = hmac(&self.tail[..], packed);
            }
        }
    }

    /// Check the HMAC chain with `key`, and each third-party caveat against
    /// `discharges` (as superfly/macaroon does): the caveats the request must satisfy —
    /// this token's, less the third-party ones, plus those of the discharge that
    /// satisfied each. The third party's key is not needed: a third-party caveat's
    /// verifier key is the discharge's root key sealed under this token's own chain.
    pub fn verify_discharged(
        &self,
        key: &[u8],
        discharges: &[&Macaroon],
    ) -> Result<CaveatSet, MacaroonError> {
        self.verify_chain(key, discharges, None)
    }

    /// `parent`: the SHA-256 of every chain value of the token this one discharges.
    fn verify_chain(
        &self,
        key: &[u8],
        discharges: &[&Macaroon],
        parent: Option<&[[u8; 32]]>,
    ) -> Result<CaveatSet, MacaroonError> {
        let mut mac = hmac(key, &self.nonce.raw);
        let mut bind_ids = vec![sha256(&mac[..])];
        let mut third_party: Vec<(&[u8], Tail)> = Vec::new();
        let mut effective = CaveatSet::new();
        for (caveat, packed) in self.caveats.entries() {
            match caveat {
                Caveat::ThirdParty {
                    verifier_key,
                    ticket,
                    ..
                } => {
                    let root =
                        open_sealed(&mac, verifier_key).ok_or(MacaroonError::BadSignature)?;
                    third_party.push((ticket, root));
                }
                Caveat::BindToParent(prefix) => {
                    let bound =
                        parent.is_some_and(|ids| ids.iter().any(|id| id.starts_with(prefix)));
                    if !bound {
                        return Err(MacaroonError::WrongParent);
                    }
                }
                other => effective.push_packed(other.clone(), packed),
            }
            mac = hmac(&mac[..], packed);
            bind_ids.push(sha256(&mac[..]));
        }
        if self.is_proof() {
            mac = hmac(FINALIZATION_KEY, &mac[..]);
        }
        if !bool::from(mac.ct_eq(&*self.tail)) {
            return Err(MacaroonError::BadSignature);
        }
        for (ticket, root) in third_party {
            let mut refusal = MacaroonError::NoDischarge;
            let mut discharged = None;
            for discharge in discharges.iter().filter(|d| d.kid() == ticket) {
                // No discharges of discharges: a third-party caveat in one fails.
                match discharge.verify_chain(&root[..], &[], Some(&bind_ids)) {
                    Ok(caveats) => {
                        discharged = Some(caveats);
                        break;
                    }
                    Err(e) => refusal = e,
                }
            }
            effective.extend(discharged.ok_or(refusal)?);
        }
        Ok(effective)
    }

    /// Check the HMAC chain with `key`; the caveats, now trusted, if it holds.
    pub fn verify(&self, key: &[u8]) -> Result<&CaveatSet, MacaroonError> {
        let mut mac = hmac(key, &self.nonce.raw);
        for packed in self.caveats.packed() {
            mac = hmac(&mac[..], packed);
        }
        if self.is_proof() {
            mac = hmac(FINALIZATION_KEY, &mac[..]);
        }
        if bool::from(mac.ct_eq(&*self.tail)) {
            Ok(&self.caveats)
        } else {
            Err(MacaroonError::BadSignature)
        }
    }
}

impl fmt::Debug for Macaroon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Macaroon")
            .field("location", &self.location)
            .field("kid", &hex::encode(&self.nonce.kid))
            .field("proof", &self.is_proof())
            .field("caveats", &self.caveats)
            .field("tail", &REDACTED)
            .finish()
    }
}

// === impl Nonce ===

impl Nonce {
    /// Three fields, `proof` false: what Go's `macaroon.New` makes.
    fn random(kid: &[u8]) -> Self {
        let mut rnd = [0u8; RND_LEN];
        OsRng.fill_bytes(&mut rnd);
        let mut w = Writer::new();
        w.array_len(3);
        w.bin(kid);
        w.bin(&rnd);
        w.bool(false);
        Self {
            kid: kid.to_vec(),
            proof: Some(false),
            raw: w.into_vec(),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, MacaroonError> {
        let raw = r.raw_value()?;
        let mut fields = Reader::new(raw);
        let with_proof = match fields.array_len()? {
            2 => false,
            3 => true,
            _ => return Err(MacaroonError::Malformed("a nonce has 2 or 3 fields")),
        };
        let kid = fields.bytes()?.to_vec();
        fields.bytes()?; // rnd
        let proof = if with_proof {
            Some(fields.bool()?)
        } else {
            None
        };
        Ok(Self {
            kid,
            proof,
            raw: raw.to_vec(),
        })
    }
}

// === helpers ===

/// The base64 of a token whose label marks it as a macaroon.
pub(super) fn payload(token: &str) -> Option<&str> {
    let (label, rest) = token.split_once('_')?;
    LABELS.contains(&label).then_some(rest)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(data).into()
}

/// superfly/macaroon's `unseal`: `nonce(12) ‖ ChaCha20-Poly1305(key)(plaintext)`; the
/// 32-byte plaintext, or `None` when it does not open.
pub(super) fn open_sealed(key: &[u8; 32], sealed: &[u8]) -> Option<Tail> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    if sealed.len() < 13 {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(12);
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(key.into());
    let plain = Zeroizing::new(cipher.decrypt(nonce.into(), ciphertext).ok()?);
    <[u8; 32]>::try_from(&plain[..]).ok().map(Zeroizing::new)
}

fn hmac(key: &[u8], data: &[u8]) -> Tail {
    tokenizer_core::mac::hmac_sha256(key, &[data])
}
