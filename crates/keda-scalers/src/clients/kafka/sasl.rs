//! SASL authentication of a fresh connection: `SaslHandshake` (v1) then `SaslAuthenticate`
//! exchanges. PLAIN sends the credentials once; SCRAM-SHA-256/512 follow RFC 5802 (client-first,
//! server-first, client-final with the proof, server-final with the signature we verify).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hmac::digest::KeyInit;
use hmac::digest::core_api::BlockSizeUser;
use hmac::{Mac, SimpleHmac};
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use sha2::{Digest, Sha256, Sha512};

use super::connection::Open;
use super::{KafkaError, KafkaSasl};

/// Authenticates `open` as `sasl` says; a no-op without SASL.
pub(crate) async fn authenticate(open: &mut Open, sasl: &KafkaSasl) -> Result<(), KafkaError> {
    let (mechanism, username, password) = match sasl {
        KafkaSasl::None => return Ok(()),
        KafkaSasl::Plain { username, password } => ("PLAIN", username, password),
        KafkaSasl::ScramSha256 { username, password } => ("SCRAM-SHA-256", username, password),
        KafkaSasl::ScramSha512 { username, password } => ("SCRAM-SHA-512", username, password),
    };
    let handshake = open
        .call(
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
            (1, 1),
        )
        .await?;
    if handshake.error_code != 0 {
        let enabled: Vec<String> = handshake
            .mechanisms
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(KafkaError::Auth(format!(
            "the broker refused SASL mechanism {mechanism} (error code {}); it offers {enabled:?}",
            handshake.error_code
        )));
    }
    match sasl {
        KafkaSasl::Plain { .. } => {
            let message = format!("\0{username}\0{password}");
            exchange(open, message.into_bytes()).await.map(drop)
        }
        KafkaSasl::ScramSha256 { .. } => scram::<Sha256>(open, username, password).await,
        KafkaSasl::ScramSha512 { .. } => scram::<Sha512>(open, username, password).await,
        KafkaSasl::None => Ok(()),
    }
}

async fn exchange(open: &mut Open, auth_bytes: Vec<u8>) -> Result<Vec<u8>, KafkaError> {
    let response = open
        .call(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(auth_bytes)),
            (0, 2),
        )
        .await?;
    if response.error_code != 0 {
        return Err(KafkaError::Auth(format!(
            "SASL authentication failed: {}",
            response
                .error_message
                .as_deref()
                .unwrap_or("no message from the broker")
        )));
    }
    Ok(response.auth_bytes.to_vec())
}

/// The SCRAM hash functions we speak (SHA-256 and SHA-512).
trait ScramHash: Digest + BlockSizeUser + Clone + Sync {}
impl<T: Digest + BlockSizeUser + Clone + Sync> ScramHash for T {}

async fn scram<H: ScramHash>(
    open: &mut Open,
    username: &str,
    password: &str,
) -> Result<(), KafkaError> {
    let mut nonce_bytes = [0_u8; 24];
    rand::fill(&mut nonce_bytes);
    let client_nonce = B64.encode(nonce_bytes);
    let first_bare = format!("n={},r={client_nonce}", escape_username(username));
    let server_first = exchange(open, format!("n,,{first_bare}").into_bytes()).await?;
    let server_first = String::from_utf8(server_first)
        .map_err(|_| KafkaError::Auth("SCRAM server-first message is not UTF-8".into()))?;
    let step = ScramStep::parse(&server_first, &client_nonce)?;
    let (client_final, server_signature) =
        step.client_final::<H>(&first_bare, &server_first, password)?;
    let server_final = exchange(open, client_final.into_bytes()).await?;
    let server_final = String::from_utf8_lossy(&server_final).into_owned();
    match attribute(&server_final, 'v') {
        Some(v) if B64.decode(v).ok().as_deref() == Some(server_signature.as_slice()) => Ok(()),
        _ => Err(KafkaError::Auth(format!(
            "SCRAM server signature did not verify: {server_final}"
        ))),
    }
}

/// `=` and `,` are escaped in SCRAM user names (RFC 5802 §5.1).
fn escape_username(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        part.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// The parsed server-first message.
#[derive(Debug, PartialEq)]
struct ScramStep {
    nonce: String,
    salt: Vec<u8>,
    iterations: u32,
}

impl ScramStep {
    fn parse(server_first: &str, client_nonce: &str) -> Result<Self, KafkaError> {
        let bad = |what: &str| {
            KafkaError::Auth(format!("SCRAM server-first message {what}: {server_first}"))
        };
        let nonce = attribute(server_first, 'r').ok_or_else(|| bad("has no nonce"))?;
        if !nonce.starts_with(client_nonce) {
            return Err(bad("does not extend our nonce"));
        }
        let salt = attribute(server_first, 's')
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| bad("has no valid salt"))?;
        let iterations = attribute(server_first, 'i')
            .and_then(|i| i.parse::<u32>().ok())
            .filter(|i| *i > 0)
            .ok_or_else(|| bad("has no valid iteration count"))?;
        Ok(Self {
            nonce: nonce.to_owned(),
            salt,
            iterations,
        })
    }

    /// The client-final message and the server signature to expect.
    fn client_final<H: ScramHash>(
        &self,
        client_first_bare: &str,
        server_first: &str,
        password: &str,
    ) -> Result<(String, Vec<u8>), KafkaError> {
        let mac_err = |_| KafkaError::Auth("invalid HMAC key".into());
        let mut salted = vec![0_u8; <H as Digest>::output_size()];
        pbkdf2::pbkdf2::<SimpleHmac<H>>(
            password.as_bytes(),
            &self.salt,
            self.iterations,
            &mut salted,
        )
        .map_err(mac_err)?;
        let hmac = |key: &[u8], data: &[u8]| -> Result<Vec<u8>, KafkaError> {
            let mut mac = <SimpleHmac<H> as KeyInit>::new_from_slice(key).map_err(mac_err)?;
            mac.update(data);
            Ok(mac.finalize().into_bytes().to_vec())
        };
        let client_key = hmac(&salted, b"Client Key")?;
        let stored_key = H::digest(&client_key).to_vec();
        let without_proof = format!("c=biws,r={}", self.nonce);
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac(&stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(&salted, b"Server Key")?;
        let server_signature = hmac(&server_key, auth_message.as_bytes())?;
        Ok((
            format!("{without_proof},p={}", B64.encode(proof)),
            server_signature,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The SHA-256 example exchange of RFC 7677 §3.
    #[test]
    fn scram_sha256_rfc7677_example() {
        let first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let step = ScramStep::parse(server_first, "rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(step.iterations, 4096);
        let (client_final, server_signature) = step
            .client_final::<Sha256>(first_bare, server_first, "pencil")
            .unwrap();
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            B64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn server_first_must_extend_our_nonce() {
        let err = ScramStep::parse("r=other,s=AAAA,i=10", "mine").unwrap_err();
        assert!(err.to_string().contains("does not extend our nonce"));
        assert!(ScramStep::parse("r=mine1,s=AAAA,i=0", "mine").is_err());
        assert!(ScramStep::parse("r=mine1,i=10", "mine").is_err());
    }

    #[test]
    fn usernames_are_escaped() {
        assert_eq!(escape_username("a=b,c"), "a=3Db=2Cc");
    }
}
