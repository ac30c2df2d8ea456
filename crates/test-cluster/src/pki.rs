//! Certificates and keys for one control plane, generated fresh per run (no openssl needed).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::Error;

/// A certificate authority that can issue leaf certificates.
pub struct Authority {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A PEM certificate and its private key.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Authority {
    pub fn new(common_name: &str) -> Result<Self, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A serving certificate for the given DNS names and IP addresses.
    pub fn issue_server(
        &self,
        common_name: &str,
        dns: &[&str],
        ips: &[IpAddr],
    ) -> Result<Leaf, Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, None);
        params.subject_alt_names = dns
            .iter()
            .map(|d| Ok(SanType::DnsName((*d).try_into()?)))
            .chain(ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
            .collect::<Result<_, rcgen::Error>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.sign(params)
    }

    /// A client certificate; `organization` becomes the Kubernetes group.
    pub fn issue_client(
        &self,
        common_name: &str,
        organization: Option<&str>,
    ) -> Result<Leaf, Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, organization);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<Leaf, Error> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Everything the control plane's processes read from disk.
pub struct ClusterPki {
    pub ca: Authority,
    pub front_proxy_ca: Authority,
    pub apiserver: Leaf,
    pub admin: Leaf,
    pub front_proxy_client: Leaf,
    /// Service-account token signing key (PKCS#8) and its public half.
    pub sa_key_pem: String,
    pub sa_pub_pem: String,
}

/// Paths of the files written by [`ClusterPki::write`].
pub struct PkiFiles {
    pub dir: PathBuf,
}

impl PkiFiles {
    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

impl ClusterPki {
    pub fn generate() -> Result<Self, Error> {
        let ca = Authority::new("keda-rs-test-ca")?;
        let front_proxy_ca = Authority::new("keda-rs-test-front-proxy-ca")?;
        let loopback: IpAddr = [127, 0, 0, 1].into();
        let first_service_ip: IpAddr = [10, 0, 0, 1].into();
        let apiserver = ca.issue_server(
            "kube-apiserver",
            &[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ],
            &[loopback, first_service_ip],
        )?;
        let admin = ca.issue_client("test-admin", Some("system:masters"))?;
        let front_proxy_client = front_proxy_ca.issue_client("front-proxy-client", None)?;
        let sa = KeyPair::generate()?;
        Ok(Self {
            ca,
            front_proxy_ca,
            apiserver,
            admin,
            front_proxy_client,
            sa_key_pem: sa.serialize_pem(),
            sa_pub_pem: sa.public_key_pem(),
        })
    }

    pub fn write(&self, dir: &Path) -> Result<PkiFiles, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let files = [
            ("ca.crt", &self.ca.cert_pem),
            ("front-proxy-ca.crt", &self.front_proxy_ca.cert_pem),
            ("apiserver.crt", &self.apiserver.cert_pem),
            ("apiserver.key", &self.apiserver.key_pem),
            ("admin.crt", &self.admin.cert_pem),
            ("admin.key", &self.admin.key_pem),
            ("front-proxy-client.crt", &self.front_proxy_client.cert_pem),
            ("front-proxy-client.key", &self.front_proxy_client.key_pem),
            ("sa.key", &self.sa_key_pem),
            ("sa.pub", &self.sa_pub_pem),
        ];
        for (file, content) in files {
            let path = dir.join(file);
            std::fs::write(&path, content).map_err(|e| Error::io(&path, e))?;
        }
        Ok(PkiFiles {
            dir: dir.to_path_buf(),
        })
    }
}
