//! Request-header authentication, as an aggregated apiserver does it.
//!
//! The aggregator connects with its front-proxy client certificate (signed by the
//! `requestheader-client-ca-file` CA, CN in `requestheader-allowed-names`) and passes the
//! authenticated end user in `X-Remote-User`. rustls has already verified the chain during the
//! handshake (unauthenticated clients are let through so probes work); what remains, per request,
//! is the pure decision in [`authorize`].

/// What the TLS handshake established about the client; computed once per connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PeerIdentity {
    /// No client certificate was presented.
    #[default]
    Anonymous,
    /// A client certificate that chains to the request-header CA (rustls verified it).
    Verified {
        /// The leaf's subject CN (the last one, as Go reads it), if it has one.
        common_name: Option<String>,
    },
}

impl PeerIdentity {
    /// The identity for a verified peer chain (leaf first), as rustls reports it.
    pub fn from_verified_chain(chain: Option<&[rustls_pki_types::CertificateDer<'_>]>) -> Self {
        match chain.and_then(<[_]>::first) {
            Some(leaf) => Self::Verified {
                common_name: common_name(leaf.as_ref()),
            },
            None => Self::Anonymous,
        }
    }
}

/// Who may read metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAuthPolicy {
    /// No request-header CA configured: every request is accepted (local development only).
    Open,
    /// A client certificate from the request-header CA, with a CN in `allowed_names` (any CN
    /// when empty), and a non-empty `X-Remote-User`.
    RequestHeader {
        /// `requestheader-allowed-names`.
        allowed_names: Vec<String>,
    },
}

/// Why a metrics read was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No client certificate (→ 401).
    #[error("a client certificate signed by the request-header CA is required")]
    NoClientCertificate,
    /// The certificate is valid but its CN is not an allowed name (→ 403).
    #[error("client certificate common name {0:?} is not in requestheader-allowed-names")]
    NameNotAllowed(String),
    /// The front proxy did not say who the user is (→ 401).
    #[error("the X-Remote-User header is required")]
    NoRemoteUser,
}

impl Denied {
    /// The HTTP status for this refusal.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::NameNotAllowed(_) => 403,
            Self::NoClientCertificate | Self::NoRemoteUser => 401,
        }
    }
}

/// Decides whether a metrics read from `peer` carrying `remote_user` (the `X-Remote-User`
/// header, if present and valid UTF-8) is allowed under `policy`.
///
/// # Errors
/// The [`Denied`] reason; [`Denied::status_code`] gives the HTTP status.
pub fn authorize(
    policy: &ClientAuthPolicy,
    peer: &PeerIdentity,
    remote_user: Option<&str>,
) -> Result<(), Denied> {
    let ClientAuthPolicy::RequestHeader { allowed_names } = policy else {
        return Ok(());
    };
    let PeerIdentity::Verified { common_name } = peer else {
        return Err(Denied::NoClientCertificate);
    };
    if !allowed_names.is_empty() {
        let cn = common_name.as_deref().unwrap_or_default();
        if !allowed_names.iter().any(|allowed| allowed == cn) {
            return Err(Denied::NameNotAllowed(cn.to_owned()));
        }
    }
    match remote_user.map(str::trim) {
        Some(user) if !user.is_empty() => Ok(()),
        _ => Err(Denied::NoRemoteUser),
    }
}

/// The subject common name of a DER certificate (the last CN attribute, as Go's `pkix.Name`
/// keeps it). `None` for malformed input or a subject without a string CN.
pub fn common_name(cert_der: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];

    let (tag, certificate, _) = read_tlv(cert_der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = read_tlv(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // version [0] EXPLICIT is optional.
    let (tag, _, after) = read_tlv(rest)?;
    if tag == 0xA0 {
        rest = after;
    }
    // serialNumber, signature, issuer, validity; then subject.
    for _ in 0..4 {
        let (_, _, after) = read_tlv(rest)?;
        rest = after;
    }
    let (tag, mut subject, _) = read_tlv(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut found = None;
    while !subject.is_empty() {
        let (tag, mut rdn, after) = read_tlv(subject)?;
        subject = after;
        if tag != SET {
            return None;
        }
        while !rdn.is_empty() {
            let (tag, attribute, after) = read_tlv(rdn)?;
            rdn = after;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value) = read_tlv(attribute)?;
            if tag == OID && oid == CN_OID {
                let (tag, bytes, _) = read_tlv(value)?;
                if let Some(cn) = decode_string(tag, bytes) {
                    found = Some(cn);
                }
            }
        }
    }
    found
}

/// One DER tag-length-value: `(tag, contents, remaining input)`. Definite lengths up to 4 bytes.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut len = 0_usize;
        for _ in 0..count {
            let (&b, after) = rest.split_first()?;
            len = len.checked_mul(256)?.checked_add(usize::from(b))?;
            rest = after;
        }
        len
    };
    if len > rest.len() {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// ASN.1 string types a CN may use.
fn decode_string(tag: u8, bytes: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, T61String (as Go: bytes taken as is), IA5String.
        0x0c | 0x13 | 0x14 | 0x16 => String::from_utf8(bytes.to_vec()).ok(),
        // BMPString: UTF-16BE.
        0x1e => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn verified(cn: &str) -> PeerIdentity {
        PeerIdentity::Verified {
            common_name: Some(cn.to_owned()),
        }
    }

    fn request_header(names: &[&str]) -> ClientAuthPolicy {
        ClientAuthPolicy::RequestHeader {
            allowed_names: names.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    #[test]
    fn open_policy_accepts_anything() {
        assert_eq!(
            authorize(&ClientAuthPolicy::Open, &PeerIdentity::Anonymous, None),
            Ok(())
        );
    }

    #[test]
    fn request_header_decisions() {
        let front_proxy = request_header(&["front-proxy-client"]);
        let any_cn = request_header(&[]);
        let anonymous = PeerIdentity::Anonymous;
        let no_cn = PeerIdentity::Verified { common_name: None };
        type Case<'a> = (
            &'a ClientAuthPolicy,
            PeerIdentity,
            Option<&'a str>,
            Result<(), Denied>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                &front_proxy,
                verified("front-proxy-client"),
                Some("system:kcm"),
                Ok(()),
            ),
            (
                &front_proxy,
                anonymous.clone(),
                Some("system:kcm"),
                Err(Denied::NoClientCertificate),
            ),
            (
                &front_proxy,
                verified("someone-else"),
                Some("system:kcm"),
                Err(Denied::NameNotAllowed("someone-else".to_owned())),
            ),
            (
                &front_proxy,
                no_cn.clone(),
                Some("u"),
                Err(Denied::NameNotAllowed(String::new())),
            ),
            (
                &front_proxy,
                verified("front-proxy-client"),
                None,
                Err(Denied::NoRemoteUser),
            ),
            (
                &front_proxy,
                verified("front-proxy-client"),
                Some("  "),
                Err(Denied::NoRemoteUser),
            ),
            (&any_cn, verified("whoever"), Some("u"), Ok(())),
            (&any_cn, no_cn, Some("u"), Ok(())),
            (
                &any_cn,
                anonymous,
                Some("u"),
                Err(Denied::NoClientCertificate),
            ),
            // Names are exact: no case folding, no prefixes.
            (
                &front_proxy,
                verified("Front-Proxy-Client"),
                Some("u"),
                Err(Denied::NameNotAllowed("Front-Proxy-Client".to_owned())),
            ),
        ];
        for (policy, peer, user, want) in cases {
            assert_eq!(authorize(policy, &peer, user), want, "{peer:?} {user:?}");
        }
        assert_eq!(Denied::NoClientCertificate.status_code(), 401);
        assert_eq!(Denied::NoRemoteUser.status_code(), 401);
        assert_eq!(Denied::NameNotAllowed(String::new()).status_code(), 403);
    }

    fn cert_with_subject(dn: DistinguishedName) -> Vec<u8> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["x.example".to_owned()]).expect("params");
        params.distinguished_name = dn;
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn common_name_from_rcgen_certificates() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "system:masters");
        dn.push(DnType::CommonName, "front-proxy-client");
        assert_eq!(
            common_name(&cert_with_subject(dn)).as_deref(),
            Some("front-proxy-client")
        );

        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "ünïcode");
        assert_eq!(
            common_name(&cert_with_subject(dn)).as_deref(),
            Some("ünïcode")
        );

        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "no-cn");
        assert_eq!(common_name(&cert_with_subject(dn)), None);

        assert_eq!(
            common_name(&cert_with_subject(DistinguishedName::new())),
            None
        );
    }

    #[test]
    fn identity_from_chain() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "aggregator");
        let der = rustls_pki_types::CertificateDer::from(cert_with_subject(dn));
        assert_eq!(
            PeerIdentity::from_verified_chain(Some(std::slice::from_ref(&der))),
            verified("aggregator")
        );
        assert_eq!(
            PeerIdentity::from_verified_chain(Some(&[])),
            PeerIdentity::Anonymous
        );
        assert_eq!(
            PeerIdentity::from_verified_chain(None),
            PeerIdentity::Anonymous
        );
    }

    #[test]
    fn malformed_der() {
        assert_eq!(common_name(&[]), None);
        assert_eq!(common_name(&[0x30]), None);
        assert_eq!(common_name(&[0x30, 0x80]), None);
        assert_eq!(common_name(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(
            decode_string(0x1e, &[0, 0x41, 0, 0x42]).as_deref(),
            Some("AB")
        );
        assert_eq!(decode_string(0x1e, &[0, 0x41, 0]), None);
        assert_eq!(decode_string(0x02, b"1"), None);
    }

    proptest! {
        #[test]
        fn common_name_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = common_name(&bytes);
        }

        #[test]
        fn common_name_survives_corruption(index in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "front-proxy-client");
            let mut der = cert_with_subject(dn);
            let i = index % der.len();
            der[i] = byte;
            let _ = common_name(&der);
            der.truncate(cut % (der.len() + 1));
            let _ = common_name(&der);
        }
    }
}
