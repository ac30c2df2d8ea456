//! SASL authentication as a state machine without I/O: [`Authenticator`] says which mechanism to
//! ask for in `SaslHandshake` and computes each `SaslAuthenticate` payload from the broker's last
//! answer; the connection sends them. PLAIN sends the credentials once; SCRAM-SHA-256/512 follow
//! RFC 5802 (client-first, server-first, client-final with the proof, server-final with the
//! signature we verify).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::digest::KeyInit;
use hmac::digest::core_api::BlockSizeUser;
use hmac::{Mac, SimpleHmac};
use sha2::{Digest, Sha256, Sha512};

use super::KafkaSasl;
use crate::error::BackendError;

/// The SCRAM hash of a mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScramHashKind {
    Sha256,
    Sha512,
}

/// Where an authentication stands.
enum State {
    /// PLAIN: the credentials are the first and only message.
    Plain,
    /// SCRAM, before the client-first message.
    ScramStart(ScramHashKind),
    /// SCRAM, waiting for the server-first message.
    ScramFirstSent {
        hash: ScramHashKind,
        client_nonce: String,
        first_bare: String,
    },
    /// SCRAM, waiting for the server-final message carrying this signature.
    ScramFinalSent { server_signature: Vec<u8> },
    /// Nothing left to send.
    Done,
}

/// One authentication of one connection.
pub(crate) struct Authenticator {
    mechanism: &'static str,
    username: String,
    password: String,
    state: State,
}

impl Authenticator {
    /// The authentication `sasl` asks for; `None` without SASL.
    pub(crate) fn new(sasl: &KafkaSasl) -> Option<Self> {
        let (mechanism, username, password, state) = match sasl {
            KafkaSasl::None => return None,
            KafkaSasl::Plain { username, password } => ("PLAIN", username, password, State::Plain),
            KafkaSasl::ScramSha256 { username, password } => (
                "SCRAM-SHA-256",
                username,
                password,
                State::ScramStart(ScramHashKind::Sha256),
            ),
            KafkaSasl::ScramSha512 { username, password } => (
                "SCRAM-SHA-512",
                username,
                password,
                State::ScramStart(ScramHashKind::Sha512),
            ),
        };
        Some(Self {
            mechanism,
            username: username.clone(),
            password: password.clone(),
            state,
        })
    }

    /// The mechanism name for `SaslHandshake`.
    pub(crate) fn mechanism(&self) -> &'static str {
        self.mechanism
    }

    /// The first `SaslAuthenticate` payload.
    pub(crate) fn first_message(&mut self) -> Vec<u8> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Plain => format!("\0{}\0{}", self.username, self.password).into_bytes(),
            State::ScramStart(hash) => {
                let mut nonce_bytes = [0_u8; 24];
                rand::fill(&mut nonce_bytes);
                let client_nonce = B64.encode(nonce_bytes);
                let first_bare = format!("n={},r={client_nonce}", escape_username(&self.username));
                let message = format!("n,,{first_bare}").into_bytes();
                self.state = State::ScramFirstSent {
                    hash,
                    client_nonce,
                    first_bare,
                };
                message
            }
            // Only called once, right after `new`.
            other => {
                self.state = other;
                Vec::new()
            }
        }
    }

    /// The payload answering the broker's `server` bytes, or `None` when authentication is
    /// complete (and, for SCRAM, the server proved it knows the password).
    pub(crate) fn next_message(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::ScramFirstSent {
                hash,
                client_nonce,
                first_bare,
            } => {
                let server_first = String::from_utf8(server.to_vec())
                    .map_err(|_| BackendError::auth("SCRAM server-first message is not UTF-8"))?;
                let step = ScramStep::parse(&server_first, &client_nonce)?;
                let (client_final, server_signature) = match hash {
                    ScramHashKind::Sha256 => {
                        step.client_final::<Sha256>(&first_bare, &server_first, &self.password)?
                    }
                    ScramHashKind::Sha512 => {
                        step.client_final::<Sha512>(&first_bare, &server_first, &self.password)?
                    }
                };
                self.state = State::ScramFinalSent { server_signature };
                Ok(Some(client_final.into_bytes()))
            }
            State::ScramFinalSent { server_signature } => {
                let server_final = String::from_utf8_lossy(server).into_owned();
                match attribute(&server_final, 'v') {
                    Some(v)
                        if B64.decode(v).ok().as_deref() == Some(server_signature.as_slice()) =>
                    {
                        Ok(None)
                    }
                    _ => Err(BackendError::auth(format!(
                        "SCRAM server signature did not verify: {server_final}"
                    ))),
                }
            }
            State::Plain | State::ScramStart(_) | State::Done => Ok(None),
        }
    }
}

/// The SCRAM hash functions we speak (SHA-256 and SHA-512).
trait ScramHash: Digest + BlockSizeUser + Clone + Sync {}
impl<T: Digest + BlockSizeUser + Clone + Sync> ScramHash for T {}

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
    fn parse(server_first: &str, client_nonce: &str) -> Result<Self, BackendError> {
        let bad = |what: &str| {
            BackendError::auth(format!("SCRAM server-first message {what}: {server_first}"))
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
    ) -> Result<(String, Vec<u8>), BackendError> {
        let mac_err = |_| BackendError::auth("invalid HMAC key");
        let mut salted = vec![0_u8; <H as Digest>::output_size()];
        pbkdf2::pbkdf2::<SimpleHmac<H>>(
            password.as_bytes(),
            &self.salt,
            self.iterations,
            &mut salted,
        )
        .map_err(mac_err)?;
        let hmac = |key: &[u8], data: &[u8]| -> Result<Vec<u8>, BackendError> {
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
